package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/label"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/scope"
)

// Token statuses shown in the table.
const (
	statusActive   = "active"
	statusExpired  = "expired"
	statusDisabled = "disabled"
)

// tokenRow is one line of the token table.
type tokenRow struct {
	pat.View
	Status string
}

// OtherAddresses are the token's recent addresses other than that of its
// last use, newest first (the page shows them below the last one).
func (r tokenRow) OtherAddresses() []string {
	var out []string
	for _, a := range r.RecentAddresses {
		if r.LastUsedIP == nil || a.IP != *r.LastUsedIP {
			out = append(out, a.IP)
		}
	}
	return out
}

// tokensData is the token management page (seed 000).
type tokensData struct {
	// Allowed: the user may use tokens (token_login); else the page says
	// an administrator has to allow it.
	Allowed bool
	Rows    []tokenRow
	// Scopes are the scopes the site offers.
	Scopes []string
	// Labels are the user's labels, for the dialog's duplicate check.
	Labels []string
	// MaxLabel is the longest label, in characters.
	MaxLabel int
	// Created is a token just made by a form sent without script: shown
	// once on this answer, which is never cached.
	Created *pat.Created
	// ExpiryDays are the offered lifetimes (those the token policy
	// allows).
	ExpiryDays []int
	// NeverAllowed: the token policy lets a token never expire (no
	// maximum lifetime, no required expiry), so "never" is offered.
	NeverAllowed bool
	// MaxWords is the token policy's maximum lifetime in the page's
	// language ("": none): "the longest allowed" is offered instead of
	// "never", and gets the maximum.
	MaxWords string
}

// expiryDays are the lifetimes the dialog offers (seed 000 asks for 7,
// 30, 60 and 90 days, a date, or none).
var expiryDays = []int{7, 30, 60, 90}

func (u *UI) tokensData(req *request) (*tokensData, error) {
	d := &tokensData{Allowed: req.active.User.TokenLogin, Scopes: u.opts.Scopes, MaxLabel: label.MaxLen}
	p := u.opts.Tokens.Policy()
	d.NeverAllowed = p.PATMaxLifetime == 0 && !p.RequireExpiry
	if p.PATMaxLifetime > 0 {
		d.MaxWords = lifetimeWords(req.lang, p.PATMaxLifetime)
	}
	for _, n := range expiryDays {
		if p.PATMaxLifetime == 0 || time.Duration(n)*24*time.Hour <= p.PATMaxLifetime {
			d.ExpiryDays = append(d.ExpiryDays, n)
		}
	}
	if !d.Allowed {
		return d, nil
	}
	views, err := u.opts.Tokens.List(req.r.Context(), req.active.User.Name)
	if err != nil {
		return nil, err
	}
	now := u.now()
	for _, v := range views {
		d.Rows = append(d.Rows, tokenRow{View: v, Status: status(v, now)})
		d.Labels = append(d.Labels, v.Label)
	}
	// Newest first: the token just made is at the top.
	slices.Reverse(d.Rows)
	return d, nil
}

func status(v pat.View, now time.Time) string {
	switch {
	case v.ExpiresAt != nil && !now.Before(*v.ExpiresAt):
		return statusExpired
	case !v.Enabled:
		return statusDisabled
	}
	return statusActive
}

func (u *UI) tokensPage(req *request) error {
	d, err := u.tokensData(req)
	if err != nil {
		return err
	}
	return u.render(req, http.StatusOK, "tokens", u.newView(req, "tokens.title", "tokens", d))
}

// errNoTokenLogin refuses token actions to a user without token_login.
var errNoTokenLogin = fmt.Errorf("%w: token login is not allowed for this user", apierr.ErrForbidden)

// createToken makes a token from the dialog's form. The secret is in the
// answer only: JSON for the script, or the page itself (never cached)
// for a form sent without script.
func (u *UI) createToken(req *request) error {
	if !req.active.User.TokenLogin {
		return errNoTokenLogin
	}
	f := req.r.PostForm
	cr := pat.CreateRequest{Label: f.Get("label"), AllowedIPs: splitList(f.Get("allowed_ips"))}
	scopes, err := u.offeredScopes(f["scopes"])
	if err != nil {
		return err
	}
	cr.Scopes = scopes
	limit := u.opts.Tokens.Policy().PATMaxLifetime
	if cr.ExpiresIn, err = expiresIn(f.Get("expires"), f.Get("expires_date"), f.Get("tz"), u.now(), limit); err != nil {
		return err
	}
	created, err := u.opts.Tokens.Create(req.r.Context(), req.active.User.Name, cr)
	if err != nil {
		return err
	}
	return u.showSecret(req, http.StatusCreated, created, created)
}

// showSecret answers an action whose answer holds a new secret, shown
// once: v as JSON for the script (never cached), or the tokens page
// showing created for a form sent without script.
func (u *UI) showSecret(req *request, status int, v any, created pat.Created) error {
	if wantsJSON(req.r) {
		req.w.Header().Set("Cache-Control", "no-store")
		jsonbody.Write(req.w, status, v)
		return nil
	}
	d, err := u.tokensData(req)
	if err != nil {
		return err
	}
	d.Created = &created
	return u.render(req, status, "tokens", u.newView(req, "tokens.title", "tokens", d))
}

// offeredScopes keeps the page to the scopes the site offers.
func (u *UI) offeredScopes(asked []string) ([]string, error) {
	scopes, err := scope.Normalize(asked)
	if err != nil {
		return nil, apierr.Field("scopes", err)
	}
	for _, s := range scopes {
		if !slices.Contains(u.opts.Scopes, s) {
			return nil, apierr.Field("scopes", fmt.Errorf("%s is not offered on this site", apierr.Quote(s)))
		}
	}
	return scopes, nil
}

// expiresIn turns the dialog's choice into seconds: a number of days, a
// date (the token works until that day ends in the user's time zone, or
// until the token policy's maximum lifetime limit ends if that is within
// the day; 0: none), or "never".
func expiresIn(choice, date, tz string, now time.Time, limit time.Duration) (*int64, error) {
	var until time.Time
	switch choice {
	case "never":
		return nil, nil
	case "date":
		// The browser's IANA zone; Go refuses names that could leave the
		// zone database. Unknown or absent: UTC.
		loc, err := time.LoadLocation(tz)
		if err != nil {
			loc = time.UTC
		}
		day, err := time.ParseInLocation("2006-01-02", date, loc)
		if err != nil {
			return nil, apierr.Field("expires_date", errors.New("must be a date (YYYY-MM-DD)"))
		}
		until = day.AddDate(0, 0, 1)
		if !until.After(now) {
			return nil, apierr.Field("expires_date", errors.New("must be today or later"))
		}
		if until.Sub(now) > pat.MaxLifetime {
			return nil, apierr.Field("expires_date", fmt.Errorf("must be within %d years", int(pat.MaxLifetime.Hours()/24/365)))
		}
		// The day on which the token policy's maximum lifetime ends is a
		// day the dialog allows: the token ends at the maximum, within
		// that day, not at its end (which is past the maximum).
		if limit > 0 && until.Sub(now) > limit && day.Before(now.Add(limit)) {
			until = now.Add(limit)
		}
	default:
		days, err := strconv.Atoi(choice)
		if err != nil || !slices.Contains(expiryDays, days) {
			return nil, apierr.Field("expires", errors.New("choose one of the offered lifetimes"))
		}
		until = now.AddDate(0, 0, days)
	}
	// Whole seconds, rounded down (the token ends by the end of the day),
	// and at least one: today, chosen in the last second of the day, is
	// still a lifetime the token service takes (rounding gave 0 there).
	secs := max(1, int64(until.Sub(now)/time.Second))
	return &secs, nil
}

// splitList reads a list typed one per line or separated by commas or
// spaces.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' || r == ';' })
}

// updateToken renames a token, switches it on or off, or sets its allowed
// addresses: one action per form.
func (u *UI) updateToken(req *request) error {
	if !req.active.User.TokenLogin {
		return errNoTokenLogin
	}
	f := req.r.PostForm
	var ur pat.UpdateRequest
	switch f.Get("action") {
	case "rename":
		l := f.Get("label")
		ur.Label = &l
	case "enable", "disable":
		on := f.Get("action") == "enable"
		ur.Enabled = &on
	case "allowed_ips":
		ips := splitList(f.Get("allowed_ips"))
		ur.AllowedIPs = &ips
	default:
		return apierr.Field("action", errors.New("must be rename, enable, disable or allowed_ips"))
	}
	view, err := u.opts.Tokens.Update(req.r.Context(), req.active.User.Name, req.r.PathValue("id"), ur)
	if err != nil {
		return err
	}
	return u.done(req, view, "/tokens")
}

// rotateToken gives a token a new secret (pat.Service.Rotate), the old
// one working for the overlap chosen in the dialog. The new secret is in
// the answer only, as on create: JSON for the script, or the page itself
// (never cached) for a form sent without script.
func (u *UI) rotateToken(req *request) error {
	if !req.active.User.TokenLogin {
		return errNoTokenLogin
	}
	overlap, err := pat.ParseOverlap(req.r.PostForm.Get("overlap"))
	if err != nil {
		return err
	}
	rotated, err := u.opts.Tokens.Rotate(req.r.Context(), req.active.User.Name, req.r.PathValue("id"), overlap)
	if err != nil {
		return err
	}
	return u.showSecret(req, http.StatusOK, rotated, pat.Created{Token: rotated.Token, View: rotated.View})
}

// revokeToken deletes a token: it fails on the next request, everywhere.
func (u *UI) revokeToken(req *request) error {
	id := req.r.PathValue("id")
	if err := u.opts.Tokens.Delete(req.r.Context(), req.active.User.Name, id); err != nil {
		return err
	}
	return u.done(req, map[string]string{"revoked": id}, "/tokens")
}

// done answers a successful action: JSON for the script, else back to the
// page (so that reloading it sends nothing again).
func (u *UI) done(req *request, v any, page string) error {
	if wantsJSON(req.r) {
		jsonbody.Write(req.w, http.StatusOK, v)
		return nil
	}
	http.Redirect(req.w, req.r, u.url(page), http.StatusSeeOther)
	return nil
}
