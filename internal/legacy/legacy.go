// Package legacy is the token service of seed 004: `/rest/token` hands an
// authenticated user an opaque 40-hex token, as the legacy platform did,
// for services that authenticate by token. Only users with the permission
// "use" on resource "ws:::gen-ws-token", or administrators, may get one.
// Tokens are stored as SHA-256 like PATs and count among the user's tokens.
package legacy

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// The permission that allows getting a legacy token.
const (
	Action   = "use"
	Resource = "ws:::gen-ws-token"
)

// DefaultLifetime is the legacy platform's: 100 years, so old clients
// keep working. Shorten it with legacy_token_ttl.
const DefaultLifetime = 100 * 365 * 24 * time.Hour

// Service issues legacy tokens.
type Service struct {
	store    store.Store
	uses     *lastuse.Recorder
	acl      *acl.ACL
	limit    int
	lifetime time.Duration
	now      func() time.Time
}

// NewService returns a Service; uses (may be nil) supplies last uses not
// yet written; lifetime 0 means DefaultLifetime, now nil means time.Now,
// limit is the per-user token cap (<= 0: none).
func NewService(s store.Store, uses *lastuse.Recorder, a *acl.ACL, limit int, lifetime time.Duration, now func() time.Time) *Service {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, uses: uses, acl: a, limit: limit, lifetime: lifetime, now: now}
}

// Issued is a new legacy token: the secret is shown only here.
type Issued struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
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
	if err := s.store.CreateToken(ctx, t, s.limit); err != nil {
		return Issued{}, apierr.FromStore(err)
	}
	return Issued{Token: secret, ID: id, ExpiresAt: t.ExpiresAt}, nil
}

// Usage is a legacy token with its last use: the migration view, so the
// legacy path can be retired with evidence.
type Usage struct {
	Owner        string     `json:"owner"`
	ID           string     `json:"id"`
	Enabled      bool       `json:"enabled"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	LastUsedIP   string     `json:"last_used_ip,omitempty"`
	LastUsedHost string     `json:"last_used_host,omitempty"`
}

// Usages lists every legacy token of every user.
func (s *Service) Usages(ctx context.Context) ([]Usage, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	out := []Usage{}
	for _, u := range us {
		ts, err := s.store.ListTokens(ctx, u.Name)
		if err != nil {
			return nil, apierr.FromStore(err)
		}
		s.uses.Apply(u.Name, ts)
		for _, t := range ts {
			if t.Kind != store.KindLegacy {
				continue
			}
			row := Usage{Owner: t.Owner, ID: t.ID, Enabled: t.Enabled, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
				LastUsedIP: t.LastUsedIP, LastUsedHost: t.LastUsedHost}
			if !t.LastUsedAt.IsZero() {
				row.LastUsedAt = &t.LastUsedAt
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// API serves /rest/token.
type API struct {
	Service *Service
	Logins  *login.Sources
	Path    string
}

// maxHeader bounds the credential headers.
const maxHeader = 1024

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
	if err != nil {
		return err
	}
	issued, err := a.Service.Issue(r.Context(), u)
	if err != nil {
		return err
	}
	if wantsJSON(r) {
		jsonbody.Write(w, http.StatusOK, issued)
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(issued.Token))
	return nil
}

// credentials reads HTTP Basic or the auth-* headers: exactly one form,
// each header once, valid UTF-8, no control characters, bounded length.
func credentials(r *http.Request) (kind, name, password string, err error) {
	if len(r.Header["Authorization"]) > 1 {
		return "", "", "", apierr.ErrMultipleCredentials
	}
	vals := map[string]string{}
	for _, h := range []string{"Auth-User", "Auth-Pwd", "Auth-User-Type"} {
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
	_, hasUser := vals["Auth-User"]
	_, hasPwd := vals["Auth-Pwd"]
	switch {
	case basic && (hasUser || hasPwd):
		return "", "", "", apierr.ErrMultipleCredentials
	case basic:
		if checkHeader(user) != nil || checkHeader(pwd) != nil {
			return "", "", "", apierr.BadRequest("malformed HTTP Basic credentials")
		}
		return vals["Auth-User-Type"], user, pwd, nil
	case hasUser && !hasPwd:
		return "", "", "", apierr.Field("auth-pwd", fmt.Errorf("is required with auth-user"))
	case hasPwd && !hasUser:
		return "", "", "", apierr.Field("auth-user", fmt.Errorf("is required with auth-pwd"))
	case hasUser:
		return vals["Auth-User-Type"], vals["Auth-User"], vals["Auth-Pwd"], nil
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
