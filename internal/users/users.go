// Package users manages the accounts that own tokens: names, password
// hashes (bcrypt), roles and the token_login flag, and authenticates them
// by password with brute-force limits.
package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/store"
)

// Limits on names and passwords.
const (
	MaxNameLen     = 64
	MinPasswordLen = 8
	// MaxPasswordLen is bcrypt's limit in bytes; longer passwords are
	// refused rather than silently truncated.
	MaxPasswordLen = 72
	maxRoles       = 16
)

// RoleAdmin is the administrator role.
const RoleAdmin = "admin"

// NormalizeName checks a user name and returns its canonical form
// (lowercase). Names are 1-64 characters of a-z, 0-9 and . _ @ + -, so that
// they are safe in headers, logs, URLs and store keys.
func NormalizeName(s string) (string, error) {
	if s == "" {
		return "", errors.New("must not be empty")
	}
	if len(s) > MaxNameLen {
		return "", fmt.Errorf("must be at most %d characters", MaxNameLen)
	}
	// Check before lowercasing: strings.ToLower maps some non-ASCII
	// letters to ASCII (KELVIN SIGN to "k"), which would let them through.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("._@+-", rune(c)) {
			return "", errors.New("may contain only letters, digits and . _ @ + -")
		}
	}
	if strings.Trim(s, ".") == "" {
		// "." and ".." would name a directory in every URL path they are in.
		return "", errors.New("must not be only dots")
	}
	return strings.ToLower(s), nil
}

func checkPassword(pw string) error {
	switch {
	case len([]rune(pw)) < MinPasswordLen:
		return fmt.Errorf("must be at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("must be at most %d bytes", MaxPasswordLen)
	}
	return nil
}

func normalizeRoles(roles []string) ([]string, error) {
	if len(roles) > maxRoles {
		return nil, fmt.Errorf("at most %d roles", maxRoles)
	}
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		r = strings.ToLower(strings.TrimSpace(r))
		if r == "" || len(r) > 32 || strings.Trim(r, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			return nil, fmt.Errorf("role %s is not a valid role name", apierr.Quote(r))
		}
		out = append(out, r)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Service manages users in a store.
type Service struct {
	store    store.Users
	now      func() time.Time
	cost     int
	sessions SessionEnder
	// events gets user.token_login_changed (nil: none).
	events events.Emitter
}

// SetEvents makes the service emit lifecycle events to e (nil: none).
// Called while wiring, before the service is used.
func (s *Service) SetEvents(e events.Emitter) { s.events = e }

// SessionEnder ends a user's web sessions (package session's Manager implements it).
type SessionEnder interface {
	EndUser(ctx context.Context, user string) error
}

// SetSessions makes Update end the user's web sessions when it disables
// the user, turns token_login off or sets a new password. Call it while
// wiring, before the Service is used; without it no session is ended
// (Delete needs none: the store removes a deleted user's sessions).
func (s *Service) SetSessions(e SessionEnder) { s.sessions = e }

// NewService returns a Service. cost is the bcrypt cost (0: bcrypt's
// default); now is the clock (nil: time.Now).
func NewService(s store.Users, cost int, now func() time.Time) *Service {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, now: now, cost: cost}
}

// View is a user as the admin API shows it: never the password hash.
type View struct {
	Name       string    `json:"name"`
	Roles      []string  `json:"roles"`
	TokenLogin bool      `json:"token_login"`
	Disabled   bool      `json:"disabled"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ViewOf returns the public view of u.
func ViewOf(u store.User) View {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return View{u.Name, roles, u.TokenLogin, u.Disabled, u.CreatedAt, u.UpdatedAt}
}

// NewUser is a request to create a user.
type NewUser struct {
	Name       string   `json:"name"`
	Password   string   `json:"password"`
	Roles      []string `json:"roles"`
	TokenLogin bool     `json:"token_login"`
	Disabled   bool     `json:"disabled"`
}

// Create adds a user.
func (s *Service) Create(ctx context.Context, req NewUser) (View, error) {
	name, err := NormalizeName(req.Name)
	if err != nil {
		return View{}, apierr.Field("name", err)
	}
	if err := checkPassword(req.Password); err != nil {
		return View{}, apierr.Field("password", err)
	}
	roles, err := normalizeRoles(req.Roles)
	if err != nil {
		return View{}, apierr.Field("roles", err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), s.cost)
	if err != nil {
		return View{}, fmt.Errorf("hashing password: %w", err)
	}
	now := s.now().UTC()
	u := store.User{
		Name: name, PasswordHash: string(hash), Roles: roles,
		TokenLogin: req.TokenLogin, Disabled: req.Disabled,
		CreatedAt: now, UpdatedAt: now,
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrUserExists) {
			return View{}, apierr.Conflict("name", err)
		}
		return View{}, apierr.FromStore(err)
	}
	return ViewOf(u), nil
}

// Changes is a partial update of a user; nil fields are left alone.
type Changes struct {
	Password   *string   `json:"password"`
	Roles      *[]string `json:"roles"`
	TokenLogin *bool     `json:"token_login"`
	Disabled   *bool     `json:"disabled"`
}

// Update applies changes to the named user.
func (s *Service) Update(ctx context.Context, name string, c Changes) (View, error) {
	var hash []byte
	if c.Password != nil {
		if err := checkPassword(*c.Password); err != nil {
			return View{}, apierr.Field("password", err)
		}
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(*c.Password), s.cost); err != nil {
			return View{}, fmt.Errorf("hashing password: %w", err)
		}
	}
	var roles []string
	if c.Roles != nil {
		var err error
		if roles, err = normalizeRoles(*c.Roles); err != nil {
			return View{}, apierr.Field("roles", err)
		}
	}
	var tokenLoginWas bool
	u, err := s.store.UpdateUser(ctx, CanonicalName(name), func(u *store.User) error {
		tokenLoginWas = u.TokenLogin // set on every run: the last one is what was written
		if hash != nil {
			u.PasswordHash = string(hash)
		}
		if c.Roles != nil {
			u.Roles = roles
		}
		if c.TokenLogin != nil {
			u.TokenLogin = *c.TokenLogin
		}
		if c.Disabled != nil {
			u.Disabled = *c.Disabled
		}
		u.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return View{}, apierr.FromStore(err)
	}
	if tokenLoginWas != u.TokenLogin {
		events.Emit(s.events, events.Event{
			Type: events.UserTokenLoginChanged, Time: u.UpdatedAt, Actor: events.ActorFrom(ctx),
			Subject: events.Subject{Kind: events.SubjectUser, ID: u.Name},
			Data:    map[string]any{"token_login": u.TokenLogin},
		})
	}
	// The user's web sessions end at once, like their tokens' cached
	// decisions: on a new password, when disabled, and when token_login
	// goes off (the pages manage tokens). The user record change has been
	// written and stays if this fails; the admin is told (503) so that
	// they can retry, and a disabled user's sessions are refused by
	// session.Manager.Load meanwhile anyway.
	disabled := c.Disabled != nil && *c.Disabled
	if s.sessions != nil && (hash != nil || disabled || (tokenLoginWas && !u.TokenLogin)) {
		if err := s.sessions.EndUser(ctx, u.Name); err != nil {
			return View{}, apierr.FromStore(fmt.Errorf("user %q was updated, but ending their web sessions failed: %w", u.Name, err))
		}
	}
	return ViewOf(u), nil
}

// Get returns one user.
func (s *Service) Get(ctx context.Context, name string) (View, error) {
	u, err := s.store.GetUser(ctx, CanonicalName(name))
	if err != nil {
		return View{}, apierr.FromStore(err)
	}
	return ViewOf(u), nil
}

// List returns all users.
func (s *Service) List(ctx context.Context) ([]View, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	out := make([]View, len(us))
	for i, u := range us {
		out[i] = ViewOf(u)
	}
	return out, nil
}

// Delete removes a user and all its tokens and web sessions (the store
// removes them together).
func (s *Service) Delete(ctx context.Context, name string) error {
	return apierr.FromStore(s.store.DeleteUser(ctx, CanonicalName(name)))
}

// CanonicalName returns the stored form of a name taken from a URL, or ""
// for a name no user can have (which then matches no user). It applies the
// same rules as creation, so look-alikes such as the Kelvin sign, which
// strings.ToLower turns into "k", never reach another user's record.
func CanonicalName(name string) string {
	n, err := NormalizeName(name)
	if err != nil {
		return ""
	}
	return n
}
