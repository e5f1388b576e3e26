package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/store"
)

// Limits configures brute-force protection for password checks. Failures
// are counted in the store, so all gateway nodes agree.
type Limits struct {
	// PerAccount failures within Window lock the account name (default 10).
	PerAccount int64
	// PerAddress failures within Window lock the source address (default 50).
	PerAddress int64
	// Window is how long failures are remembered (default 15m).
	Window time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.PerAccount <= 0 {
		l.PerAccount = 10
	}
	if l.PerAddress <= 0 {
		l.PerAddress = 50
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	return l
}

// PasswordChecker checks a user name and password from a client address;
// *Authenticator and the configured identity sources (package login)
// implement it.
type PasswordChecker interface {
	Authenticate(ctx context.Context, name, password, addr string) (store.User, error)
}

// Authenticator checks user names and passwords.
type Authenticator struct {
	store   store.Store
	limits  Limits
	limiter *bruteforce.Limiter
	// dummy is a bcrypt hash compared against for unknown users, so that a
	// wrong name costs the same time as a wrong password (no user
	// enumeration by timing), as Caddy's basic_auth does.
	dummy []byte
}

// NewAuthenticator returns an Authenticator. cost should match the cost
// used for real hashes (0: bcrypt's default) so the dummy costs the same.
func NewAuthenticator(s store.Store, l Limits, cost int) (*Authenticator, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("tokengate dummy password"), cost)
	if err != nil {
		return nil, err
	}
	l = l.withDefaults()
	return &Authenticator{store: s, limits: l, limiter: bruteforce.New(s, l.Window), dummy: dummy}, nil
}

// Limiter returns the failure counter, so that other secrets (client
// secrets, the identity backend) share its counters.
func (a *Authenticator) Limiter() *bruteforce.Limiter { return a.limiter }

// Limits returns the limits in force (defaults applied).
func (a *Authenticator) Limits() Limits { return a.limits }

// Authenticate returns the user if name and password match and neither the
// account nor the address is locked. addr is the client address ("" if
// unknown). Errors: apierr.ErrBadCredentials, *apierr.RateLimited,
// apierr.ErrForbidden (disabled user), apierr.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	canon, nameErr := NormalizeName(name)
	account := bruteforce.Key{Name: "acct:" + canon, Limit: a.limits.PerAccount}
	if nameErr != nil {
		account.Name = "" // a malformed name owns no counter
	}
	var u store.User
	err := a.limiter.Guard(ctx, account, bruteforce.AddressKey(addr, a.limits.PerAddress), func() (bool, error) {
		err := store.ErrNotFound
		if nameErr == nil {
			u, err = a.store.GetUser(ctx, canon)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
			return false, nil
		case err != nil:
			return false, apierr.FromStore(err)
		}
		return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil, nil
	}, apierr.ErrBadCredentials)
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		return store.User{}, fmt.Errorf("%w: the user is disabled", apierr.ErrForbidden)
	}
	return u, nil
}
