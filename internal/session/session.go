// Package session keeps the web pages' signed-in browsers: a random id in a cookie, the
// record in the store under the id's hash, idle and absolute lifetimes, a CSRF secret per session.
//
// The store holds only the SHA-256 of the cookie value, so a copy of the
// store opens no session. Every Load reads the session and its user from
// the store: a sign-out, an expiry, a disabled or deleted user or a
// password change (users.Service calls EndUser) ends the session on every
// node at the next request.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// ErrNoSession means that the request has no session: no cookie, unknown, ended, expired,
// or user gone/disabled. The pages answer it by asking the browser to sign in.
var ErrNoSession = errors.New("not signed in")

// Defaults of Options.
const (
	// DefaultIdle is Options.Idle's default.
	DefaultIdle = 30 * time.Minute
	// DefaultAbsolute is Options.Absolute's default.
	DefaultAbsolute = 12 * time.Hour
)

const (
	// secretBytes is the entropy of a cookie value and of a CSRF secret.
	secretBytes = 32
	// maxUserAgent bounds the User-Agent kept with a session, in bytes.
	maxUserAgent = 256
	// touchEvery is how old SeenAt must be before Load records activity,
	// so that a busy page costs no store write per request.
	touchEvery = time.Minute
)

// encoding is how cookie values and CSRF secrets are written: base64url
// without padding, strict (one spelling per value).
var encoding = base64.RawURLEncoding.Strict()

// valueLen is the length of a cookie value.
var valueLen = encoding.EncodedLen(secretBytes)

// Options configure a Manager. The zero value gives the defaults.
type Options struct {
	// Idle ends a session after this long without a request (default 30m).
	// Activity is recorded at most once a minute (see Manager.Load), so a
	// session may end up to a minute sooner after its last request.
	Idle time.Duration
	// Absolute ends a session this long after sign-in whatever happens
	// (default 12h).
	Absolute time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger gets the store errors of touches, once per streak (default
	// zap.NewNop()).
	Logger *zap.Logger
}

// Manager starts, loads and ends sessions. Its methods are safe for
// concurrent use.
type Manager struct {
	sessions       store.Sessions
	users          store.Users
	idle, absolute time.Duration
	now            func() time.Time
	log            *zap.Logger
	// touchFailing is set while recording activity fails, so that a
	// streak of failures is logged once.
	touchFailing atomic.Bool
}

// New returns a Manager that keeps sessions in s and reads their users
// from u.
func New(s store.Sessions, u store.Users, o Options) *Manager {
	m := &Manager{sessions: s, users: u, idle: o.Idle, absolute: o.Absolute, now: o.Now, log: o.Logger}
	if m.idle <= 0 {
		m.idle = DefaultIdle
	}
	if m.absolute <= 0 {
		m.absolute = DefaultAbsolute
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	return m
}

// Lifetimes reports the configured idle and absolute lifetimes.
func (m *Manager) Lifetimes() (idle, absolute time.Duration) { return m.idle, m.absolute }

// Active is a loaded session with its user as the store has it now.
type Active struct {
	// Session is the session's record (SeenAt as of this request when
	// Load recorded activity).
	Session store.Session
	// User is the session's user, enabled.
	User store.User
}

// CSRF returns the token the pages put in forms (the session's CSRF secret).
func (a *Active) CSRF() string { return a.Session.CSRF }

// CheckCSRF compares a form's token with the session's secret in constant
// time; false for "" (and for a session without a secret).
func (a *Active) CheckCSRF(token string) bool {
	if token == "" || a.Session.CSRF == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(a.Session.CSRF)) == 1
}

// Start makes a session for user (already authenticated by the caller) and returns the cookie
// value (32 random bytes, base64url, crypto/rand). ip and userAgent are kept for the record
// (userAgent cut to 256 bytes). The session lasts until the absolute lifetime at most.
func (m *Manager) Start(ctx context.Context, user store.User, ip, userAgent string) (value string, err error) {
	value, csrf := randomSecret(), randomSecret()
	now := m.now().UTC()
	s := store.Session{
		ID:        idOf(value),
		User:      user.Name,
		CSRF:      csrf,
		CreatedAt: now,
		SeenAt:    now,
		ExpiresAt: now.Add(m.absolute),
		IP:        ip,
		UserAgent: truncate(userAgent, maxUserAgent),
		// The user as the caller authenticated it: a change between that
		// check and now (a new password, token login off) must still end
		// this session, so Load compares these with the user as stored.
		Credential: credential(user),
		TokenLogin: user.TokenLogin,
	}
	if err := m.sessions.CreateSession(ctx, s); err != nil {
		return "", fmt.Errorf("session: start a session for %q: %w", user.Name, err)
	}
	return value, nil
}

// Load reads the cookie from r, the session and its user. ErrNoSession when any is missing,
// the session is past idle or absolute, or the user is disabled or deleted (then it also deletes
// the session). Store outages are returned as they are (callers answer 503), never ErrNoSession.
// When SeenAt is older than a minute it touches the session (so a busy page costs no write per
// request); a failed touch is logged (once per streak) but does not fail the request.
func (m *Manager) Load(ctx context.Context, r *http.Request) (*Active, error) {
	value := CookieValue(r)
	if value == "" {
		return nil, ErrNoSession
	}
	id := idOf(value)
	s, err := m.sessions.GetSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := m.now()
	if !m.current(s, now) {
		m.drop(ctx, id, "it has expired")
		return nil, ErrNoSession
	}
	u, err := m.users.GetUser(ctx, s.User)
	switch {
	case errors.Is(err, store.ErrNotFound):
		m.drop(ctx, id, "its user is gone")
		return nil, ErrNoSession
	case err != nil:
		return nil, err
	case u.Disabled:
		m.drop(ctx, id, "its user is disabled")
		return nil, ErrNoSession
	case s.Credential != credential(u):
		m.drop(ctx, id, "its user's password has changed")
		return nil, ErrNoSession
	case s.TokenLogin && !u.TokenLogin:
		m.drop(ctx, id, "its user's token login was switched off")
		return nil, ErrNoSession
	}
	if now.Sub(s.SeenAt) >= touchEvery {
		switch err := m.sessions.TouchSession(ctx, id, now.UTC()); {
		case err == nil:
			m.touched()
			s.SeenAt = now.UTC()
		case errors.Is(err, store.ErrNotFound):
			return nil, ErrNoSession // ended since it was read
		default:
			m.touchFailed(s.User, err)
		}
	}
	return &Active{Session: s, User: u}, nil
}

// current reports whether s is within its idle and absolute lifetimes at
// now (and before its ExpiresAt, which Start set to the absolute end).
func (m *Manager) current(s store.Session, now time.Time) bool {
	return now.Before(s.ExpiresAt) && now.Before(s.CreatedAt.Add(m.absolute)) && now.Before(s.SeenAt.Add(m.idle))
}

// drop deletes a session that Load refuses. A failure is logged, not
// returned: the session is refused at every Load anyway.
func (m *Manager) drop(ctx context.Context, id store.TokenHash, why string) {
	if err := m.sessions.DeleteSession(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Warn("session: deleting a refused session failed", zap.String("reason", why), zap.Error(err))
	}
}

// touchFailed logs the first of a streak of failed touches.
func (m *Manager) touchFailed(user string, err error) {
	if m.touchFailing.CompareAndSwap(false, true) {
		m.log.Error("session: recording activity failed; sessions may end early by the idle timeout until the store answers",
			zap.String("user", user), zap.Error(err))
	}
}

// touched ends a streak of failed touches.
func (m *Manager) touched() {
	if m.touchFailing.CompareAndSwap(true, false) {
		m.log.Info("session: recording activity works again")
	}
}

// End deletes the session the request's cookie names (nil if there is none).
func (m *Manager) End(ctx context.Context, r *http.Request) error {
	value := CookieValue(r)
	if value == "" {
		return nil
	}
	err := m.sessions.DeleteSession(ctx, idOf(value))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// EndUser deletes every session of user (the invalidation path users.Service calls).
func (m *Manager) EndUser(ctx context.Context, user string) error {
	_, err := m.sessions.DeleteUserSessions(ctx, user)
	return err
}

// idOf is the key of the session whose cookie value is value.
func idOf(value string) store.TokenHash { return sha256.Sum256([]byte(value)) }

// randomSecret returns 32 random bytes in base64url.
func randomSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return encoding.EncodeToString(b)
}

// wellFormed reports whether v could be a cookie value that Start made.
func wellFormed(v string) bool {
	if len(v) != valueLen {
		return false
	}
	var b [secretBytes]byte
	n, err := encoding.Decode(b[:], []byte(v))
	return err == nil && n == secretBytes
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// credential names the password a user has now without revealing it: a
// hash of the stored (bcrypt) hash.
func credential(u store.User) string {
	sum := sha256.Sum256([]byte("tokengate session credential\x00" + u.PasswordHash))
	return hex.EncodeToString(sum[:16])
}
