// Package login checks user names and passwords against the configured
// identity sources: the gateway's own user store ("local", the default) or
// the legacy backend itself ("backend": the gateway asks a configured URL
// with the supplied credentials and treats 2xx as valid), so a legacy
// app's users can get tokens without being copied. Both count failures
// against the same brute-force limits.
package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/jwks"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/users"
)

// Source names.
const (
	Local   = "local"
	Backend = "backend"
)

// Authenticator checks one source.
type Authenticator = users.PasswordChecker

// Sources picks a source by name (the legacy auth-user-type header).
type Sources struct {
	byName map[string]Authenticator
	def    string
}

// NewSources returns the sources; def names the one used when the client
// does not say.
func NewSources(def string, byName map[string]Authenticator) (*Sources, error) {
	if _, ok := byName[def]; !ok {
		return nil, fmt.Errorf("identity source %q is not configured", def)
	}
	return &Sources{byName: byName, def: def}, nil
}

// Names lists the configured sources, the default first, then the others
// by name.
func (s *Sources) Names() []string {
	out := []string{s.def}
	for n := range s.byName {
		if n != s.def {
			out = append(out, n)
		}
	}
	slices.Sort(out[1:])
	return out
}

// Authenticate checks name and password with the source named kind ("":
// the default). An unknown kind is a 400 naming auth-user-type and the
// kinds there are (not the one sent).
func (s *Sources) Authenticate(ctx context.Context, kind, name, password, addr string) (store.User, error) {
	if kind == "" {
		kind = s.def
	}
	a, ok := s.byName[kind]
	if !ok {
		// The value is not echoed: a client that mixed up its headers may
		// have sent its password here, and no shape tells a password.
		return store.User{}, apierr.Field("auth-user-type", fmt.Errorf("unknown user type (this gateway knows %s)", strings.Join(s.Names(), ", ")))
	}
	return a.Authenticate(ctx, name, password, addr)
}

// Default authenticates with the default source.
func (s *Sources) Default() Authenticator { return defaultSource{s} }

type defaultSource struct{ s *Sources }

func (d defaultSource) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	return d.s.Authenticate(ctx, "", name, password, addr)
}

// BackendSource checks credentials against the legacy backend: a GET to
// URL with HTTP Basic; 2xx is valid, 401 and 403 are wrong credentials,
// anything else (or no answer) means the backend is unavailable (503). A
// user seen for the first time is provisioned in the store with Source
// "backend", no password, token_login on and DefaultRoles; a name that
// belongs to one of the gateway's own users is refused (403).
//
// Redirects are never followed, whatever Client's policy: Go's default
// keeps the Authorization header (the user's password) on a redirect to
// the same host, even from https:// to http://. A 3xx answer is a failed
// login (503), logged at Warn once per streak of redirects.
type BackendSource struct {
	URL          string
	Client       *http.Client
	Store        store.Users
	Limiter      *bruteforce.Limiter
	DefaultRoles []string
	Now          func() time.Time
	// Logger gets the redirect warning (nil: none).
	Logger *zap.Logger

	// redirecting is set while the backend answers with redirects.
	redirecting atomic.Bool
}

// PlainRemote reports whether raw is a plain http:// URL to a host that
// is not loopback: credentials sent there cross the network in clear
// text (the rule of jwks.CheckURL, which allows plain http:// only to a
// loopback host).
func PlainRemote(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "http" && jwks.CheckURL(raw, true) != nil
}

// Authenticate implements Authenticator.
func (b *BackendSource) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	canon, nameErr := users.NormalizeName(name)
	account := b.Limiter.Account(canon)
	if nameErr != nil {
		account.Name = "" // a malformed name owns no counter, and is never sent on
	}
	err := b.Limiter.Guard(ctx, account, b.Limiter.Address(addr), func() (bool, error) {
		if nameErr != nil {
			return false, nil
		}
		return b.ask(ctx, name, password)
	}, apierr.ErrBadCredentials)
	if err != nil {
		return store.User{}, err
	}
	return b.provision(ctx, canon)
}

// ask sends the credentials to the backend. The call outlives the client's
// request: once sent, the password is checked whether or not the client
// hangs up, so hanging up must not make the guess an error that counts
// nothing (that would give unlimited guesses at the backend).
func (b *BackendSource) ask(ctx context.Context, name, password string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return false, err
	}
	req.SetBasicAuth(name, password)
	client := *b.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: identity backend: %v", apierr.ErrUnavailable, errors.Unwrap(err))
	}
	resp.Body.Close()
	redirect := resp.StatusCode >= 300 && resp.StatusCode < 400
	if b.redirecting.Swap(redirect) != redirect && redirect && b.Logger != nil {
		// The Location's host only: its path or query might carry anything.
		where := ""
		if loc, err := resp.Location(); err == nil {
			where = loc.Host
		}
		b.Logger.Warn("the identity backend answered with a redirect, which is never followed (the password would go along): "+
			"logins through it fail until identity_backend names the final URL (not logged again until it answers otherwise)",
			zap.Int("status", resp.StatusCode), zap.String("location_host", where))
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return true, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, nil
	}
	return false, fmt.Errorf("%w: identity backend answered %d", apierr.ErrUnavailable, resp.StatusCode)
}

// provision returns the user record, creating it on first login.
func (b *BackendSource) provision(ctx context.Context, name string) (store.User, error) {
	for range 2 {
		u, err := b.Store.GetUser(ctx, name)
		switch {
		case err == nil && u.Disabled:
			return store.User{}, fmt.Errorf("%w: the user is disabled", apierr.ErrForbidden)
		case err == nil && u.Source != Backend:
			// The gateway's own user of that name: its password is checked
			// here, never by the backend.
			return store.User{}, fmt.Errorf("%w: the user is not managed by the identity backend", apierr.ErrForbidden)
		case err == nil:
			return u, nil
		case !errors.Is(err, store.ErrNotFound):
			return store.User{}, apierr.FromStore(err)
		}
		now := b.Now().UTC()
		u = store.User{Name: name, Roles: b.DefaultRoles, TokenLogin: true, Source: Backend, CreatedAt: now, UpdatedAt: now}
		err = b.Store.CreateUser(ctx, u)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, store.ErrUserExists) { // else: created meanwhile; read it
			return store.User{}, apierr.FromStore(err)
		}
	}
	return store.User{}, fmt.Errorf("%w: provisioning user", apierr.ErrUnavailable)
}
