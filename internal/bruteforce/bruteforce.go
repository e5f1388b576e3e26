// Package bruteforce limits guessing of passwords and client secrets:
// failures are counted per key (an account, a client id, a source address)
// in the store, so that every gateway node agrees, a key at its limit is
// refused before any secret is checked, and the guesses in flight on a
// node never exceed what a key's limit still allows.
package bruteforce

import (
	"context"
	"net/netip"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/iplist"
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

// Limiter counts failures in a store, so that every node agrees on them,
// and keeps the checks in flight on this node within what the limits
// still allow. It holds no lock across slow work.
type Limiter struct {
	store  store.FailureCounters
	limits Limits
	// slowAfter failures, each further failure is answered more slowly.
	slowAfter int64
	sleep     func(context.Context, time.Duration)
	// maxWait bounds how long a guess waits for a slot (see Guard).
	maxWait  time.Duration
	inFlight inFlight
}

// New returns a Limiter with limits l (unset ones take their defaults).
func New(s store.FailureCounters, l Limits) *Limiter {
	return &Limiter{store: s, limits: l.withDefaults(), slowAfter: 3, sleep: sleepCtx, maxWait: 15 * time.Second,
		inFlight: inFlight{keys: map[string]*slots{}}}
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

// Address is the counter of a client address, limited per address: of
// the address itself for IPv4, of its /64 for IPv6 (iplist.ClientUnit),
// so that one host cannot spread its guesses over the addresses of its
// prefix. An unknown address ("") has none.
func (l *Limiter) Address(addr string) Key {
	if addr == "" {
		return Key{}
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		addr = iplist.ClientUnit(a).String()
	}
	return Key{Name: "addr:" + addr, Limit: l.limits.PerAddress}
}

// Guard runs one guess at a secret.
//
// A key whose failures in the store are at its limit is refused (429)
// without running check. Otherwise the guess takes a slot on this node
// for each key: a key has as many slots as failures it may still have, so
// concurrent guesses, at one account or at many accounts from one
// address, never check more secrets than a limit allows (an earlier
// design serialised guesses per account, which let guesses at many
// accounts overshoot the address's limit). A guess that finds no free
// slot waits for one of the guesses in flight on that key to end (a
// client's own concurrent requests, which succeed, just queue briefly),
// then looks at the store again. Across nodes, each node admits at most
// the remaining allowance at a time.
//
// No lock is held while check runs (a bcrypt compare, a call to the
// identity backend) or while a failure is slowed down: they delay this
// guess only, never a guess at another account. (Guesses used to hold one
// of 256 striped locks chosen by a public hash of the account name, so
// guesses at made-up names stalled a real user's sign-in.)
//
// After check: a failure is counted on both keys before the slots are
// given back and is answered with refusal after the slow-down (a little
// longer for each failure past the first few, up to 2s); a success
// clears the account's counter when it had failures; an error from check
// counts nothing and is returned as it is. Nothing is written to the
// store for a success on a clean account.
func (l *Limiter) Guard(ctx context.Context, account, address Key, check func() (bool, error), refusal error) error {
	keys := named(account, address)
	accountFailures, release, err := l.admit(ctx, keys)
	if err != nil {
		return err
	}
	ok, err := check()
	switch {
	case err != nil:
		release(false)
		return err
	case !ok:
		most, err := l.countFailure(ctx, keys)
		release(true)
		if err != nil {
			return err
		}
		l.slowDown(ctx, most)
		return refusal
	}
	release(false)
	if account.Name == "" || accountFailures == 0 {
		return nil
	}
	ctx, cancel := settling(ctx)
	defer cancel()
	return apierr.FromStore(l.store.ClearFailures(ctx, account.Name))
}

// admit waits until no key is at its limit and every key has a free slot,
// takes the slots and returns the account's (first key's) failures and
// the function that gives the slots back.
func (l *Limiter) admit(ctx context.Context, keys []Key) (int64, func(failed bool), error) {
	deadline := time.NewTimer(l.maxWait)
	defer deadline.Stop()
	for {
		seen := l.inFlight.begin(keys)
		failures, err := l.failures(ctx, keys)
		if err != nil {
			l.inFlight.cancel(keys)
			return 0, nil, err
		}
		allow := make([]int64, len(keys))
		for i, k := range keys {
			if failures[i] >= k.Limit {
				l.inFlight.cancel(keys)
				return 0, nil, l.refuse()
			}
			allow[i] = k.Limit - failures[i]
		}
		release, wait, stale := l.inFlight.take(keys, allow, seen)
		switch {
		case release != nil:
			var first int64
			if len(failures) > 0 {
				first = failures[0]
			}
			return first, release, nil
		case stale:
			continue // a failure ended since the read: read again
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-deadline.C:
			return 0, nil, &apierr.RateLimited{RetryAfter: time.Second}
		}
	}
}

// failures reads each key's failures from the store.
func (l *Limiter) failures(ctx context.Context, keys []Key) ([]int64, error) {
	out := make([]int64, len(keys))
	for i, k := range keys {
		n, err := l.store.FailureCount(ctx, k.Name)
		if err != nil {
			return nil, apierr.FromStore(err)
		}
		out[i] = n
	}
	return out, nil
}

// countFailure counts a failure against every key and returns the highest
// new count. The client waits on it, so it is counted even when the
// client has hung up (a guesser must not escape the count by hanging up).
func (l *Limiter) countFailure(ctx context.Context, keys []Key) (int64, error) {
	ctx, cancel := settling(ctx)
	defer cancel()
	var most int64
	for _, k := range keys {
		n, err := l.store.CountFailure(ctx, k.Name, l.limits.Window)
		if err != nil {
			return 0, apierr.FromStore(err)
		}
		most = max(most, n)
	}
	return most, nil
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

// settling returns a context for settling an attempt's counts that
// outlives the request's: a client that hangs up must neither escape a
// failure's count nor leave its account uncleared after a success.
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
