// Package legacy is the token service of seed 004: `/rest/token` hands an
// authenticated user an opaque 40-hex token, as the legacy platform did,
// for services that authenticate by token. Only users with the permission
// "use" on resource "ws:::gen-ws-token", or administrators, may get one.
// Tokens are stored as SHA-256 like PATs. They have their own cap per user
// (not the PAT cap): a client that asks once per run must not lock itself
// out, so by default the oldest legacy token makes room for the new one.
package legacy

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
	"go.uber.org/zap"
)

// The permission that allows getting a legacy token.
const (
	Action   = "use"
	Resource = "ws:::gen-ws-token"
)

// DefaultLifetime is the legacy platform's: 100 years, so old clients
// keep working. Shorten it with legacy_token_ttl.
const DefaultLifetime = 100 * 365 * 24 * time.Hour

// What Issue does when a user already holds Cap.Max legacy tokens.
const (
	// RevokeOldest revokes the user's oldest legacy token (by creation
	// time) to make room, the default: legacy clients ask for a new token
	// on every run and never revoke the old one.
	RevokeOldest = "revoke_oldest"
	// Refuse answers 409 token_limit.
	Refuse = "refuse"
)

// DefaultMax is the default number of legacy tokens a user may hold.
const DefaultMax = 50

// maxEvictions bounds how many times one Issue revokes and retries when
// concurrent requests for the same user keep taking the freed room. Each
// round lets at least one of them through, so a request loses at most as
// many rounds as there are concurrent requests for its user.
const maxEvictions = 64

// Cap is the per-user limit on legacy tokens. It is separate from the PAT
// cap: the store counts each kind of token on its own.
type Cap struct {
	// Max is how many legacy tokens one user may hold (<= 0: no limit).
	Max int
	// Policy is RevokeOldest ("" means RevokeOldest) or Refuse.
	Policy string
}

// Store is the part of the store legacy tokens live in: the tokens and
// the users who own them.
type Store interface {
	store.Users
	store.Tokens
}

// Service issues legacy tokens.
type Service struct {
	store    Store
	uses     *lastuse.Recorder
	acl      *acl.ACL
	cap      Cap
	lifetime time.Duration
	now      func() time.Time
	log      *zap.Logger
	// events gets token.created and the cap's token.revoked (nil: none).
	events events.Emitter
}

// SetEvents makes the service emit lifecycle events to e (nil: none).
// Called while wiring, before the service is used.
func (s *Service) SetEvents(e events.Emitter) { s.events = e }

// NewService returns a Service; uses (may be nil) supplies last uses not
// yet written; lifetime 0 means DefaultLifetime, now nil means time.Now,
// log nil means no log.
func NewService(s Store, uses *lastuse.Recorder, a *acl.ACL, c Cap, lifetime time.Duration, now func() time.Time, log *zap.Logger) *Service {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if now == nil {
		now = time.Now
	}
	if c.Policy == "" {
		c.Policy = RevokeOldest
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Service{store: s, uses: uses, acl: a, cap: c, lifetime: lifetime, now: now, log: log}
}

// Issued is a new legacy token: the secret is shown only here.
type Issued struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
	// ReplacedValidUntil is, after a rotation, until when the secret it
	// replaced works (absent: not a rotation, or it stopped at once).
	ReplacedValidUntil *time.Time `json:"replaced_valid_until,omitempty"`
}

// Issue gives u a new token if u may have one.
func (s *Service) Issue(ctx context.Context, u store.User) (Issued, error) {
	ok, err := s.acl.Allowed(ctx, u, Action, Resource)
	if err != nil {
		return Issued{}, err
	}
	if !ok {
		return Issued{}, fmt.Errorf("%w: the permission %q on %q is required", apierr.ErrForbidden, Action, Resource)
	}
	if !u.TokenLogin {
		return Issued{}, fmt.Errorf("%w: token login is not allowed for this user", apierr.ErrForbidden)
	}
	secret, err := token.NewLegacy()
	if err != nil {
		return Issued{}, err
	}
	id, err := token.NewID()
	if err != nil {
		return Issued{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	t := store.Token{
		ID: id, Owner: u.Name, Kind: store.KindLegacy, Hash: token.Hash(secret), Label: "rest/token",
		Enabled: true, CreatedAt: now, ExpiresAt: now.Add(s.lifetime),
	}
	if err := s.create(ctx, t); err != nil {
		return Issued{}, err
	}
	events.Emit(s.events, events.ForToken(events.WithActor(ctx, u.Name), events.TokenCreated, t, now))
	return Issued{Token: secret, ID: id, ExpiresAt: t.ExpiresAt}, nil
}

// create stores t under the cap. The store checks the cap and inserts in
// one atomic step, so concurrent requests never leave more than Max; with
// RevokeOldest a full cap revokes the oldest legacy token and tries again
// (a concurrent request may take the freed room, hence the bound).
func (s *Service) create(ctx context.Context, t store.Token) error {
	for evicted := 0; ; evicted++ {
		err := s.store.CreateToken(ctx, t, s.cap.Max)
		if !errors.Is(err, store.ErrTokenLimit) {
			return apierr.FromStore(err)
		}
		if s.cap.Policy == Refuse {
			return fmt.Errorf("%w: you already hold %d tokens from this service, the most allowed; revoke one to get another",
				store.ErrTokenLimit, s.cap.Max)
		}
		if evicted == maxEvictions {
			return apierr.FromStore(fmt.Errorf("legacy token for %s: %w", t.Owner, store.ErrConflict))
		}
		if err := s.revokeOldest(ctx, t.Owner); err != nil {
			return err
		}
	}
}

// revokeOldest deletes owner's oldest legacy token through the store's
// normal delete, which announces the revocation to every node. A token
// that a concurrent request deleted first counts as done.
func (s *Service) revokeOldest(ctx context.Context, owner string) error {
	ts, err := s.store.ListTokens(ctx, owner)
	if err != nil {
		return apierr.FromStore(err)
	}
	i := slices.IndexFunc(ts, func(t store.Token) bool { return t.Kind == store.KindLegacy })
	if i < 0 {
		return nil // a concurrent request emptied the room already
	}
	old := ts[i] // ListTokens sorts by CreatedAt then ID
	gone, err := s.store.DeleteToken(ctx, owner, old.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return apierr.FromStore(err)
	}
	ev := events.ForToken(ctx, events.TokenRevoked, gone, s.now().UTC())
	ev.Actor, ev.Data = "system", map[string]any{"reason": "legacy_token_cap"}
	events.Emit(s.events, ev)
	s.log.Info("legacy token cap reached: revoked the oldest legacy token to make room",
		zap.String("user", owner), zap.String("token_id", old.ID), zap.Time("created_at", old.CreatedAt),
		zap.Int("max_legacy_tokens_per_user", s.cap.Max))
	return nil
}

// Usage is a legacy token with its last use: the migration view, so the
// legacy path can be retired with evidence.
type Usage struct {
	Owner        string     `json:"owner"`
	ID           string     `json:"id"`
	Label        string     `json:"label"`
	Enabled      bool       `json:"enabled"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	LastUsedIP   string     `json:"last_used_ip,omitempty"`
	LastUsedHost string     `json:"last_used_host,omitempty"`
	// RecentAddresses are the distinct addresses the token was used from
	// most recently (at most five), newest first, each with its site.
	RecentAddresses []store.AddressUse `json:"recent_addresses"`
}

// Usages lists every legacy token of every user (a user deleted while
// it runs is left out).
func (s *Service) Usages(ctx context.Context) ([]Usage, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	out := []Usage{}
	for _, u := range us {
		ts, err := s.store.ListTokens(ctx, u.Name)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted since the listing, with its tokens.
			continue
		}
		if err != nil {
			return nil, apierr.FromStore(err)
		}
		s.uses.Apply(u.Name, ts)
		for _, t := range ts {
			if t.Kind != store.KindLegacy {
				continue
			}
			row := Usage{Owner: t.Owner, ID: t.ID, Label: t.Label, Enabled: t.Enabled, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
				LastUsedIP: t.LastUsedIP, LastUsedHost: t.LastUsedHost, RecentAddresses: t.RecentAddresses}
			if row.RecentAddresses == nil {
				row.RecentAddresses = []store.AddressUse{}
			}
			if !t.LastUsedAt.IsZero() {
				row.LastUsedAt = &t.LastUsedAt
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// API serves /rest/token, and {Path}/rotate (see ServeRotate).
type API struct {
	Service *Service
	Logins  *login.Sources
	Path    string
	// Tokens rotates a legacy token (ServeRotate); nil: no rotation.
	Tokens *pat.Service
	// Metrics counts the password checks (nil: not counted).
	Metrics *metrics.Set
}

// maxHeader bounds the credential headers.
const maxHeader = 1024

// The credential headers of /rest/token (canonical spelling).
const (
	HeaderUser     = "Auth-User"
	HeaderPassword = "Auth-Pwd"
	HeaderUserType = "Auth-User-Type"
)

// LoginHeaders are the credential headers of /rest/token. They have no
// business on other routes: the handler removes them from every request
// that goes on to an upstream.
var LoginHeaders = []string{HeaderUser, HeaderPassword, HeaderUserType}

// Serve answers a request for Path. Credentials come from HTTP Basic
// (`curl -u user:pwd`) or the headers auth-user, auth-pwd and
// auth-user-type. It returns an error (unwritten) on failure.
func (a *API) Serve(w http.ResponseWriter, r *http.Request, clientIP string) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return apierr.ErrMethodNotAllowed
	}
	kind, name, password, err := credentials(r)
	if err != nil {
		return err
	}
	u, err := a.Logins.Authenticate(r.Context(), kind, name, password, clientIP)
	a.Metrics.SignIn(metrics.SignInRESTToken, err)
	if err != nil {
		return err
	}
	issued, err := a.Service.Issue(r.Context(), u)
	if err != nil {
		return err
	}
	writeIssued(w, r, issued)
	return nil
}

// RotateSuffix follows the /rest/token path for the rotation route.
const RotateSuffix = "/rotate"

// ServeRotate answers POST {Path}/rotate, the rotation of a legacy token
// by its holder: the request presents the legacy token as it does to any
// guarded route (presented checks it as the edge does), optionally with
// the overlap as a query or form parameter ("overlap=1h"; absent:
// pat.DefaultOverlap, "0": the old secret fails at once). The answer is
// the new secret in the shape /rest/token answers (text, or JSON with
// Accept: application/json, which adds id, expires_at and
// replaced_valid_until). A secret that a rotation already replaced may
// not rotate (403).
func (a *API) ServeRotate(w http.ResponseWriter, r *http.Request, presented func(*http.Request) (pat.Presented, error)) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return apierr.ErrMethodNotAllowed
	}
	if a.Tokens == nil {
		return apierr.ErrNotFound
	}
	p, err := presented(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxHeader)
	if err := r.ParseForm(); err != nil {
		return apierr.BadRequest("the form does not parse")
	}
	if len(r.Form["overlap"]) > 1 {
		return apierr.Field("overlap", fmt.Errorf("is repeated"))
	}
	overlap, err := pat.ParseOverlap(r.Form.Get("overlap"))
	if err != nil {
		return err
	}
	if p.Kind != store.KindLegacy {
		return apierr.BadRequest("only legacy tokens are rotated here; use the tokens API for a personal access token")
	}
	rotated, err := a.Tokens.RotateSelf(events.WithActor(r.Context(), p.Owner), p, overlap)
	if err != nil {
		return err
	}
	issued := Issued{Token: rotated.Token, ID: rotated.ID, ReplacedValidUntil: rotated.ReplacedValidUntil}
	if rotated.ExpiresAt != nil {
		issued.ExpiresAt = *rotated.ExpiresAt
	}
	writeIssued(w, r, issued)
	return nil
}

// writeIssued writes a legacy token's secret: JSON when the client asks
// for it, else the bare secret as text.
func writeIssued(w http.ResponseWriter, r *http.Request, issued Issued) {
	if wantsJSON(r) {
		jsonbody.Write(w, http.StatusOK, issued)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(issued.Token))
}

// credentials reads HTTP Basic or the auth-* headers: exactly one form,
// each header once, valid UTF-8, no control characters, bounded length.
func credentials(r *http.Request) (kind, name, password string, err error) {
	if len(r.Header["Authorization"]) > 1 {
		return "", "", "", apierr.ErrMultipleCredentials
	}
	vals := map[string]string{}
	for _, h := range LoginHeaders {
		v := r.Header[h]
		if len(v) > 1 {
			return "", "", "", apierr.Field(strings.ToLower(h), fmt.Errorf("header is repeated"))
		}
		if len(v) == 1 {
			if err := checkHeader(v[0]); err != nil {
				return "", "", "", apierr.Field(strings.ToLower(h), err)
			}
			vals[h] = v[0]
		}
	}
	user, pwd, basic := r.BasicAuth()
	_, hasUser := vals[HeaderUser]
	_, hasPwd := vals[HeaderPassword]
	switch {
	case basic && (hasUser || hasPwd):
		return "", "", "", apierr.ErrMultipleCredentials
	case basic:
		if checkHeader(user) != nil || checkHeader(pwd) != nil {
			return "", "", "", apierr.BadRequest("malformed HTTP Basic credentials")
		}
		return vals[HeaderUserType], user, pwd, nil
	case hasUser && !hasPwd:
		return "", "", "", apierr.Field("auth-pwd", fmt.Errorf("is required with auth-user"))
	case hasPwd && !hasUser:
		return "", "", "", apierr.Field("auth-user", fmt.Errorf("is required with auth-pwd"))
	case hasUser:
		return vals[HeaderUserType], vals[HeaderUser], vals[HeaderPassword], nil
	}
	return "", "", "", apierr.ErrUnauthenticated
}

func checkHeader(v string) error {
	switch {
	case len(v) > maxHeader:
		return fmt.Errorf("is longer than %d bytes", maxHeader)
	case !utf8.ValidString(v):
		return fmt.Errorf("is not valid UTF-8")
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("contains control characters")
	}
	return nil
}

// wantsJSON reports whether the client asked for JSON.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}
