// Package session: TEMPORARY stub with the agreed API, replaced by branch i13sessions.
package session

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

var ErrNoSession = errors.New("not signed in")

type Options struct {
	Idle, Absolute time.Duration
	Now            func() time.Time
	Logger         *zap.Logger
}
type Manager struct{ u store.Users }
type Active struct {
	Session store.Session
	User    store.User
}

func (a *Active) CSRF() string { return a.Session.CSRF }
func (a *Active) CheckCSRF(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.Session.CSRF)) == 1
}
func New(s any, u store.Users, o Options) *Manager { return &Manager{u: u} }
func (m *Manager) Start(ctx context.Context, user, ip, ua string) (string, error) {
	return user, nil
}
func (m *Manager) Load(ctx context.Context, r *http.Request) (*Active, error) {
	v := CookieValue(r)
	if v == "" {
		return nil, ErrNoSession
	}
	u, err := m.u.GetUser(ctx, v)
	if err != nil {
		return nil, ErrNoSession
	}
	return &Active{Session: store.Session{User: v, CSRF: "csrf-" + v}, User: u}, nil
}
func (m *Manager) End(ctx context.Context, r *http.Request) error { return nil }
func (m *Manager) EndUser(ctx context.Context, user string) error { return nil }
func SetCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{Name: "tokengate-session", Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
}
func ClearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: "tokengate-session", Path: "/", MaxAge: -1})
}
func CookieValue(r *http.Request) string {
	c, err := r.Cookie("tokengate-session")
	if err != nil {
		return ""
	}
	return c.Value
}
func StripCookie(h http.Header) {}
