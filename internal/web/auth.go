package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/i18n"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
)

// routes registers every page.
func (u *UI) routes() {
	u.handle("GET", "/assets/{file}", public, u.serveAsset)
	u.handle("GET", "/{$}", public, u.home)
	u.mux.HandleFunc("GET "+u.prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, u.url("/"), http.StatusSeeOther)
	})
	u.handle("GET", "/lang/{lang}", public, u.chooseLanguage)
	u.handle("GET", "/signin", public, u.signInPage)
	u.handle("POST", "/signin", public, u.signIn)
	u.handle("POST", "/signout", signedIn, u.signOut)
	u.handle("GET", "/csrf", signedIn, u.csrfToken)
	u.handle("GET", "/tokens", signedIn, u.tokensPage)
	u.handle("POST", "/tokens", signedIn, u.createToken)
	u.handle("POST", "/tokens/{id}", signedIn, u.updateToken)
	u.handle("POST", "/tokens/{id}/revoke", signedIn, u.revokeToken)
	u.handle("POST", "/tokens/{id}/rotate", signedIn, u.rotateToken)
	u.adminRoutes()
	u.mux.HandleFunc(u.prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		req := &request{w: w, r: r, lang: i18n.Negotiate(cookie(r, LangCookie), r.Header.Get("Accept-Language"))}
		u.fail(req, apierr.ErrNotFound)
	})
}

// home sends a signed-in user to their tokens, anyone else to sign-in.
func (u *UI) home(req *request) error {
	if _, err := u.opts.Sessions.Load(req.r.Context(), req.r); err != nil {
		if !errors.Is(err, session.ErrNoSession) {
			return err
		}
		http.Redirect(req.w, req.r, u.url("/signin"), http.StatusSeeOther)
		return nil
	}
	http.Redirect(req.w, req.r, u.url("/tokens"), http.StatusSeeOther)
	return nil
}

// chooseLanguage remembers the language picked with the page's switch and
// goes back to the page (a link, so it works without script).
func (u *UI) chooseLanguage(req *request) error {
	lang := req.r.PathValue("lang")
	if !i18n.Supported(lang) {
		return apierr.ErrNotFound
	}
	http.SetCookie(req.w, &http.Cookie{
		Name: LangCookie, Value: lang, Path: u.url("/"), MaxAge: 365 * 24 * 3600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: session.IsHTTPS(req.r),
	})
	back := req.r.URL.Query().Get("back")
	if !u.safeNext(back) {
		back = u.url("/")
	}
	http.Redirect(req.w, req.r, back, http.StatusSeeOther)
	return nil
}

type signInData struct {
	Name string
	Next string
	// Sources are the identity sources to pick from (none shown when
	// there is only one); Source is the one picked.
	Sources []string
	Source  string
}

// signInData fills the form's data.
func (u *UI) signInData(name, next, source string) signInData {
	d := signInData{Name: name, Next: next, Source: source}
	if u.opts.Sources != nil {
		if names := u.opts.Sources.Names(); len(names) > 1 {
			d.Sources = names
		}
	}
	return d
}

func (u *UI) signInPage(req *request) error {
	next := u.afterSignIn(req.r.URL.Query().Get("next"))
	v := u.newView(req, "signin.title", "", u.signInData("", next, ""))
	if req.r.URL.Query().Get("ended") != "" {
		v.Message = i18n.T(req.lang, "signin.ended")
	}
	return u.render(req, http.StatusOK, "signin", v)
}

// signIn checks the name and password against the identity source (with
// its brute-force limits) and starts a session. Every refusal but a rate
// limit or an outage reads the same, so the page tells nobody which user
// names exist or are switched off.
func (u *UI) signIn(req *request) error {
	f := req.r.PostForm
	name, next := strings.TrimSpace(f.Get("name")), u.afterSignIn(f.Get("next"))
	source := f.Get("source")
	var user store.User
	var err error
	if u.opts.Sources != nil {
		user, err = u.opts.Sources.Authenticate(req.r.Context(), source, name, f.Get("password"), req.ip)
	} else {
		user, err = u.opts.Logins.Authenticate(req.r.Context(), name, f.Get("password"), req.ip)
	}
	u.opts.Metrics.SignIn(metrics.SignInWeb, err)
	if err != nil {
		if apierr.For(err).Status >= 500 {
			return err
		}
		v := u.newView(req, "signin.title", "", u.signInData(name, next, source))
		status := http.StatusUnauthorized
		v.Message = i18n.T(req.lang, "signin.failed")
		var limited *apierr.RateLimited
		if errors.As(err, &limited) {
			// Locked by the brute-force limits: say when to come back.
			secs := int(limited.RetryAfter.Seconds() + 0.999)
			req.w.Header().Set("Retry-After", strconv.Itoa(secs))
			v.Message, status = i18n.T(req.lang, "err.rate_limited", secs), http.StatusTooManyRequests
		}
		return u.render(req, status, "signin", v)
	}
	// A new id on every sign-in (no fixation); an old session of this
	// browser ends.
	if err := u.opts.Sessions.End(req.r.Context(), req.r); err != nil {
		return err
	}
	value, err := u.opts.Sessions.Start(req.r.Context(), user, req.ip, req.r.UserAgent())
	if err != nil {
		return err
	}
	session.SetCookie(req.w, req.r, value)
	if next == "" {
		next = u.url("/tokens")
	}
	http.Redirect(req.w, req.r, next, http.StatusSeeOther)
	return nil
}

// signOut ends the session everywhere (it is deleted from the store).
func (u *UI) signOut(req *request) error {
	if err := u.opts.Sessions.End(req.r.Context(), req.r); err != nil {
		return err
	}
	session.ClearCookie(req.w, req.r)
	http.Redirect(req.w, req.r, u.url("/signin"), http.StatusSeeOther)
	return nil
}

// csrfToken gives the page's script the session's CSRF token and user, for
// a page loaded before the user signed in again in another tab (the script
// sends the form again only when it is the same user). Only a same-origin
// script can read the answer (no CORS), and the cookie is SameSite=Strict.
func (u *UI) csrfToken(req *request) error {
	req.w.Header().Set("Cache-Control", "no-store")
	jsonbody.Write(req.w, http.StatusOK, map[string]string{"csrf": req.active.CSRF(), "user": req.active.User.Name})
	return nil
}

// safeNext accepts only a path of these pages as a place to go back to,
// so no link can send a user elsewhere after signing in.
func (u *UI) safeNext(next string) bool {
	if next == "" || strings.ContainsAny(next, "\\\r\n\t") || strings.HasPrefix(next, "//") {
		return false
	}
	p, err := url.Parse(next)
	return err == nil && p.Scheme == "" && p.Host == "" && p.Opaque == "" && u.Matches(p.Path) &&
		!strings.HasPrefix(p.Path, u.url("/assets/")) && !strings.Contains(p.Path, "/..")
}

// afterSignIn is where sign-in goes on to: next when it is one of these
// pages (but not sign-in itself), else the token page.
func (u *UI) afterSignIn(next string) string {
	if !u.safeNext(next) || strings.HasPrefix(next, u.url("/signin")) {
		return ""
	}
	return next
}

func queryEscape(s string) string { return url.QueryEscape(s) }
