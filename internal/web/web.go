// Package web serves the gateway's own pages under a prefix chosen by the
// site: sign-in, the user's token management (seed 000) and the
// administrator's pages (users, OAuth keys, JWT signing, the OAuth log).
//
// Pages are Go templates with embedded assets and a little plain
// JavaScript; they work without it (plain form posts), and with it the
// forms are sent in the background so that a dialog keeps what was typed
// and shows the server's message next to its field. Every action goes
// through the same services as the JSON and admin APIs.
//
// A signed-in browser holds a session cookie (package session). Every
// state-changing request is a POST that must come from the same origin
// (Origin, or Sec-Fetch-Site) and carry the session's CSRF token; bodies
// are capped; every answer carries a strict Content-Security-Policy.
package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/i18n"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/users"
)

// MaxFormBytes caps a form body; a larger one gets 413.
const MaxFormBytes = 64 << 10

// LangCookie remembers the language chosen with the page's switch.
const LangCookie = "tokengate-lang"

// Options are what the pages need: the services they act through.
type Options struct {
	// Prefix is where the pages live, e.g. "/account" (no trailing slash).
	Prefix string
	// Sessions keeps signed-in browsers.
	Sessions *session.Manager
	// Logins checks user names and passwords (the configured identity
	// source, with its brute-force limits).
	Logins users.PasswordChecker
	// Sources, when set, are the identity sources a user may pick on the
	// sign-in form (the gateway's users, the legacy backend), as
	// /rest/token's auth-user-type does; sign-in then goes through them
	// and Logins is not used.
	Sources *login.Sources
	// Users, Tokens, Clients, Keys, ACL and Audit are the services behind
	// the pages, the same ones the JSON and admin APIs use.
	Users   *users.Service
	Tokens  *pat.Service
	Clients *oauthclient.Clients
	Keys    *keyring.Holder
	ACL     *acl.ACL
	Audit   *audit.Log
	// Scopes are the scopes offered in the "Create token" dialog.
	Scopes []string
	// Logger gets failures the user cannot fix (store outages, bugs).
	Logger *zap.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Metrics counts sign-ins (nil: not counted).
	Metrics *metrics.Set
}

// UI serves the pages.
type UI struct {
	opts   Options
	prefix string
	mux    *http.ServeMux
	pages  *pages
	logger *zap.Logger
	now    func() time.Time
}

// access says who may use a route.
type access int

const (
	public   access = iota // anyone (sign-in, assets)
	signedIn               // any signed-in user
	admin                  // users with the admin role
)

// request is one page request with what the route needs of it.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	lang   string
	ip     string
	active *session.Active // nil on public routes
}

type clientIPKey struct{}

// New builds the pages.
func New(o Options) (*UI, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ps, err := loadPages()
	if err != nil {
		return nil, err
	}
	u := &UI{opts: o, prefix: strings.TrimSuffix(o.Prefix, "/"), mux: http.NewServeMux(), pages: ps, logger: o.Logger, now: o.Now}
	u.routes()
	return u, nil
}

// Matches reports whether path is one of the pages' (the prefix or below).
func (u *UI) Matches(path string) bool {
	return path == u.prefix || strings.HasPrefix(path, u.prefix+"/")
}

// ServeHTTP answers a page request; clientIP is the client address as
// Caddy computed it (trusted_proxies honoured), "" if unknown.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request, clientIP string) {
	setSecurityHeaders(w.Header())
	u.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, clientIP)))
}

// handle registers a route: method and path below the prefix.
func (u *UI) handle(method, path string, acc access, fn func(*request) error) {
	u.mux.HandleFunc(method+" "+u.prefix+path, func(w http.ResponseWriter, r *http.Request) {
		ip, _ := r.Context().Value(clientIPKey{}).(string)
		req := &request{w: w, r: r, ip: ip}
		req.lang = i18n.Negotiate(cookie(r, LangCookie), r.Header.Get("Accept-Language"))
		if err := u.admit(req, acc); err != nil {
			u.fail(req, err)
			return
		}
		if err := fn(req); err != nil {
			u.fail(req, err)
		}
	})
}

// Errors of the request checks, answered by fail.
var (
	errCrossOrigin = errors.New("the form was sent from another site")
	errCSRF        = errors.New("the form's CSRF token is missing or wrong")
	errTooLarge    = errors.New("the form is too large")
	errBadForm     = errors.New("the form could not be read")
	errNotAdmin    = errors.New("the administrator role is needed")
)

// admit runs the checks every route shares: same origin and size for
// POSTs, a session and its CSRF token where the route needs them.
func (u *UI) admit(req *request, acc access) error {
	r := req.r
	if r.Method == http.MethodPost {
		if !sameOrigin(r) {
			return errCrossOrigin
		}
		r.Body = http.MaxBytesReader(req.w, r.Body, MaxFormBytes)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return errTooLarge
			}
			return errBadForm
		}
	}
	if acc == public {
		return nil
	}
	active, err := u.opts.Sessions.Load(r.Context(), r)
	if err != nil {
		return err
	}
	req.active = active
	req.r = r.WithContext(events.WithActor(r.Context(), active.User.Name)) // the events' actor
	if r.Method == http.MethodPost && !active.CheckCSRF(r.PostForm.Get("csrf")) {
		return errCSRF
	}
	if acc == admin && !isAdmin(active) {
		return errNotAdmin
	}
	return nil
}

func isAdmin(a *session.Active) bool {
	if a == nil {
		return false
	}
	for _, r := range a.User.Roles {
		if r == users.RoleAdmin {
			return true
		}
	}
	return false
}

// sameOrigin refuses a state-changing request a browser sent from another
// site: the Origin header, when present, must name this host; without it,
// Sec-Fetch-Site must not say cross-site. (A client that sends neither is
// not a browser acting for someone else: it still needs the CSRF token.)
func sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		o, err := url.Parse(origin)
		if err != nil || o.Host == "" || !strings.EqualFold(o.Host, r.Host) {
			return false
		}
		// Over HTTPS only an https page is ours. (Behind a proxy that ends
		// TLS and is not in trusted_proxies the gateway cannot tell, and
		// the host must do.)
		return !session.IsHTTPS(r) || o.Scheme == "https"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// setSecurityHeaders: no inline script, no framing, no sniffing, nothing
// kept in caches or sent to other sites.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), clipboard-write=(self)")
}

func cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// wantsJSON reports whether the page's script sent the request (it asks
// for JSON and gets field errors to show next to their fields).
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// url returns the path of a page below the prefix.
func (u *UI) url(path string) string { return u.prefix + path }
