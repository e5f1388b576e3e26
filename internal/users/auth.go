package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/apierr"
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

// Authenticator checks user names and passwords.
type Authenticator struct {
	store  store.Store
	limits Limits
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
	return &Authenticator{store: s, limits: l.withDefaults(), dummy: dummy}, nil
}

// Authenticate returns the user if name and password match and neither the
// account nor the address is locked. addr is the client address ("" if
// unknown). Errors: apierr.ErrBadCredentials, *apierr.RateLimited,
// apierr.ErrForbidden (disabled user), apierr.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	canon, nameErr := NormalizeName(name)
	accountKey, addrKey := "acct:"+canon, "addr:"+addr
	if nameErr != nil {
		accountKey = "" // a malformed name owns no counter
	}
	if addr == "" {
		addrKey = ""
	}
	if err := a.checkLocked(ctx, accountKey, addrKey); err != nil {
		return store.User{}, err
	}
	var u store.User
	var err error
	if nameErr == nil {
		u, err = a.store.GetUser(ctx, canon)
	} else {
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		return store.User{}, a.fail(ctx, accountKey, addrKey)
	case err != nil:
		return store.User{}, apierr.FromStore(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return store.User{}, a.fail(ctx, accountKey, addrKey)
	}
	if u.Disabled {
		return store.User{}, fmt.Errorf("%w: the user is disabled", apierr.ErrForbidden)
	}
	if err := a.store.ClearFailures(ctx, accountKey); err != nil {
		return store.User{}, apierr.FromStore(err)
	}
	return u, nil
}

// checkLocked refuses before any password work when a counter is over
// its limit.
func (a *Authenticator) checkLocked(ctx context.Context, accountKey, addrKey string) error {
	for _, c := range []struct {
		key   string
		limit int64
	}{{accountKey, a.limits.PerAccount}, {addrKey, a.limits.PerAddress}} {
		if c.key == "" {
			continue
		}
		n, err := a.store.FailureCount(ctx, c.key)
		if err != nil {
			return apierr.FromStore(err)
		}
		if n >= c.limit {
			return &apierr.RateLimited{RetryAfter: a.limits.Window}
		}
	}
	return nil
}

// fail counts a failure against both keys and returns the error to answer.
func (a *Authenticator) fail(ctx context.Context, accountKey, addrKey string) error {
	for _, key := range []string{accountKey, addrKey} {
		if key == "" {
			continue
		}
		if _, err := a.store.CountFailure(ctx, key, a.limits.Window); err != nil {
			return apierr.FromStore(err)
		}
	}
	return apierr.ErrBadCredentials
}
