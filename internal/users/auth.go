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

// Authenticate returns the user if name and password match and neither the
// account nor the address is locked. addr is the client address ("" if
// unknown). Errors: apierr.ErrBadCredentials, *apierr.RateLimited,
// apierr.ErrForbidden (disabled user), apierr.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	canon, nameErr := NormalizeName(name)
	account := bruteforce.Key{Name: "acct:" + canon, Limit: a.limits.PerAccount}
	address := bruteforce.Key{Name: "addr:" + addr, Limit: a.limits.PerAddress}
	if nameErr != nil {
		account.Name = "" // a malformed name owns no counter
	}
	if addr == "" {
		address.Name = ""
	}
	// One attempt per account at a time on this node: see Limiter.Lock.
	defer a.limiter.Lock(account.Name)()
	failures, err := a.limiter.Check(ctx, account, address)
	if err != nil {
		return store.User{}, err
	}
	var u store.User
	err = store.ErrNotFound
	if nameErr == nil {
		u, err = a.store.GetUser(ctx, canon)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		return store.User{}, a.fail(ctx, account, address)
	case err != nil:
		return store.User{}, apierr.FromStore(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return store.User{}, a.fail(ctx, account, address)
	}
	if u.Disabled {
		return store.User{}, fmt.Errorf("%w: the user is disabled", apierr.ErrForbidden)
	}
	// Clearing is a store write: only when there is something to clear.
	if failures > 0 {
		if err := a.limiter.Clear(ctx, account.Name); err != nil {
			return store.User{}, err
		}
	}
	return u, nil
}

func (a *Authenticator) fail(ctx context.Context, keys ...bruteforce.Key) error {
	if err := a.limiter.Fail(ctx, keys...); err != nil {
		return err
	}
	return apierr.ErrBadCredentials
}
