// Package bruteforce limits guessing of passwords and client secrets:
// attempts are counted per key (an account, a client id, a source address)
// in the store, so that every gateway node agrees, and a key over its limit
// is refused before any secret is checked.
package bruteforce

import (
	"context"
	"errors"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
)

// Key is one counter and its limit.
type Key struct {
	// Name is the counter's name, e.g. "acct:alice"; "" is skipped.
	Name string
	// Limit failures within the window lock the key.
	Limit int64
}

// Limits are the failure limits of every secret the gateway checks
// (passwords, client secrets, the identity backend's passwords): one set,
// kept by the one Limiter the app builds.
type Limits struct {
	// PerAccount failures within Window lock an account name or a client
	// id (default 10).
	PerAccount int64
	// PerAddress failures within Window lock a source address (default 50).
	PerAddress int64
	// Window is how long failures are remembered (default 15m).
	Window time.Duration
}

// withDefaults fills unset (or negative) limits.
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

// Limiter counts attempts in a store. It holds no lock of its own: the
// store's atomic increment is what keeps concurrent guesses within the
// limits, on one node and across nodes.
type Limiter struct {
	store  store.FailureCounters
	limits Limits
	// slowAfter failures, each further failure is answered more slowly.
	slowAfter int64
	sleep     func(context.Context, time.Duration)
}

// New returns a Limiter with limits l (unset ones take their defaults).
func New(s store.FailureCounters, l Limits) *Limiter {
	return &Limiter{store: s, limits: l.withDefaults(), slowAfter: 3, sleep: sleepCtx}
}

// Limits returns the limits in force (defaults applied).
func (l *Limiter) Limits() Limits { return l.limits }

// Account is the counter of an account name, limited per account.
func (l *Limiter) Account(name string) Key {
	return Key{Name: "acct:" + name, Limit: l.limits.PerAccount}
}

// Client is the counter of an OAuth client id, limited per account.
func (l *Limiter) Client(id string) Key {
	return Key{Name: "client:" + id, Limit: l.limits.PerAccount}
}

// Address is the counter of a client address, limited per address; an
// unknown address ("") has none.
func (l *Limiter) Address(addr string) Key {
	if addr == "" {
		return Key{}
	}
	return Key{Name: "addr:" + addr, Limit: l.limits.PerAddress}
}

// Guard runs one guess at a secret.
//
// The guess is counted against the account and the address before check
// runs, by an atomic increment in the store, and a guess that takes a key
// over its limit is refused (429) without running check. So concurrent
// guesses, at one account or at many, on one node or on several, never
// check more secrets than a limit allows; an earlier design serialised
// guesses per account instead, which let guesses at many accounts overshoot
// the address's limit.
//
// No lock is held: check (a bcrypt compare, a call to the identity
// backend) and the slow-down after a failure delay this guess only, never
// a guess at another account. (Guesses used to hold one of 256 striped
// locks chosen by a public hash of the account name, so guesses at made-up
// names stalled a real user's sign-in.)
//
// After check: a failure stays counted on both keys and is answered with
// refusal after the slow-down (a little longer for each failure past the
// first few, up to 2s); a success clears the account's counter and takes
// the guess back from the address's; an error from check takes the guess
// back from both and is returned as it is.
func (l *Limiter) Guard(ctx context.Context, account, address Key, check func() (bool, error), refusal error) error {
	keys := named(account, address)
	if err := l.locked(ctx, keys); err != nil {
		return err
	}
	most, err := l.count(ctx, keys)
	if err != nil {
		return err
	}
	ok, err := check()
	switch {
	case err != nil:
		return and(err, l.uncount(ctx, keys))
	case !ok:
		l.slowDown(ctx, most)
		return refusal
	}
	return l.succeeded(ctx, account, address)
}

// succeeded clears the account's counter and takes the guess back from
// the address's.
func (l *Limiter) succeeded(ctx context.Context, account, address Key) error {
	if account.Name != "" {
		ctx, cancel := settling(ctx)
		defer cancel()
		if err := l.store.ClearFailures(ctx, account.Name); err != nil {
			return apierr.FromStore(err)
		}
	}
	return l.uncount(ctx, named(address))
}

// and returns err, joined with more when there is more.
func and(err, more error) error {
	if more == nil {
		return err
	}
	return errors.Join(err, more)
}

// named returns the keys that have a counter.
func named(keys ...Key) []Key {
	out := keys[:0:0]
	for _, k := range keys {
		if k.Name != "" {
			out = append(out, k)
		}
	}
	return out
}

// locked refuses when a key is already at its limit: a read, so that a
// flood of guesses at a locked key costs the store no writes.
func (l *Limiter) locked(ctx context.Context, keys []Key) error {
	for _, k := range keys {
		n, err := l.store.FailureCount(ctx, k.Name)
		if err != nil {
			return apierr.FromStore(err)
		}
		if n >= k.Limit {
			return l.refuse()
		}
	}
	return nil
}

// count counts the attempt against every key and returns the highest new
// count. When a key goes over its limit (concurrent guesses got there
// first) or the store fails, what was counted is taken back and the error
// returned.
func (l *Limiter) count(ctx context.Context, keys []Key) (int64, error) {
	var most int64
	for i, k := range keys {
		n, err := l.store.CountFailure(ctx, k.Name, l.limits.Window)
		if err != nil {
			return 0, and(apierr.FromStore(err), l.uncount(ctx, keys[:i]))
		}
		if n > k.Limit {
			return 0, and(l.refuse(), l.uncount(ctx, keys[:i+1]))
		}
		most = max(most, n)
	}
	return most, nil
}

// uncount takes the attempt back from every key. A failure leaves a
// counter one too high until its window ends (it fails closed); it is
// returned so that the client is answered with it.
func (l *Limiter) uncount(ctx context.Context, keys []Key) error {
	ctx, cancel := settling(ctx)
	defer cancel()
	for _, k := range keys {
		if err := l.store.UncountFailure(ctx, k.Name); err != nil {
			return apierr.FromStore(err)
		}
	}
	return nil
}

// settling returns a context for settling an attempt's counts that
// outlives the request's: a client that hangs up must not leave its
// attempt counted (a success, an error) or its account uncleared.
func settling(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

func (l *Limiter) refuse() error { return &apierr.RateLimited{RetryAfter: l.limits.Window} }

// slowDown waits a little longer for each failure past the first few (up
// to 2s), which slows a guesser down before the limit locks it out. It
// holds nothing while it waits.
func (l *Limiter) slowDown(ctx context.Context, failures int64) {
	if failures > l.slowAfter {
		l.sleep(ctx, min(time.Duration(failures-l.slowAfter)*250*time.Millisecond, 2*time.Second))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
