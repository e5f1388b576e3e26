package users

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/store"
)

// PasswordChecker checks a user name and password from a client address;
// *Authenticator and the configured identity sources (package login)
// implement it.
type PasswordChecker interface {
	Authenticate(ctx context.Context, name, password, addr string) (store.User, error)
}

// Authenticator checks user names and passwords.
type Authenticator struct {
	store   store.Users
	limiter *bruteforce.Limiter
	// dummy is a bcrypt hash compared against for unknown users, so that a
	// wrong name costs the same time as a wrong password (no user
	// enumeration by timing), as Caddy's basic_auth does.
	dummy []byte
}

// NewAuthenticator returns an Authenticator that counts failures with l
// (shared with the other secrets the gateway checks). cost should match
// the cost used for real hashes (0: bcrypt's default) so the dummy costs
// the same.
func NewAuthenticator(s store.Users, l *bruteforce.Limiter, cost int) (*Authenticator, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("tokengate dummy password"), cost)
	if err != nil {
		return nil, err
	}
	return &Authenticator{store: s, limiter: l, dummy: dummy}, nil
}

// Authenticate returns the user if name and password match and neither the
// account nor the address is locked. addr is the client address ("" if
// unknown). Errors: apierr.ErrBadCredentials, *apierr.RateLimited,
// apierr.ErrForbidden (disabled user), apierr.ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, name, password, addr string) (store.User, error) {
	canon, nameErr := NormalizeName(name)
	account := a.limiter.Account(canon)
	if nameErr != nil {
		account.Name = "" // a malformed name owns no counter
	}
	var u store.User
	err := a.limiter.Guard(ctx, account, a.limiter.Address(addr), func() (bool, error) {
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
