// Package bruteforce limits guessing of passwords and client secrets:
// failures are counted per key (an account, a client id, a source address)
// in the store, so that every gateway node agrees, and a key over its limit
// is refused before any secret is checked.
package bruteforce

import (
	"context"
	"sync"
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

// Limiter counts failures in a store.
type Limiter struct {
	// stripes serialise attempts on the same first key (an account or a
	// client id) within this node, so that concurrent guesses cannot all
	// pass Check before any of them is counted: across nodes the overshoot
	// is at most one guess per node at a time.
	stripes [256]sync.Mutex

	store  store.Store
	window time.Duration
	// slowAfter failures, each further failure is answered more slowly.
	slowAfter int64
	sleep     func(context.Context, time.Duration)
}

// New returns a Limiter with a failure window (<= 0: 15 minutes).
func New(s store.Store, window time.Duration) *Limiter {
	if window <= 0 {
		window = 15 * time.Minute
	}
	return &Limiter{store: s, window: window, slowAfter: 3, sleep: sleepCtx}
}

// AddressKey is the counter of a client address; an unknown address ("")
// has none.
func AddressKey(addr string, limit int64) Key {
	if addr == "" {
		return Key{}
	}
	return Key{Name: "addr:" + addr, Limit: limit}
}

// Guard runs one guess at a secret: it refuses (429) when the account or
// the address is locked, serialises guesses on the account on this node
// (see Lock), runs check, counts a failure against both when check says
// no (answering refusal), and clears the account's counter after a
// success when there was something to clear (clearing is a store write).
// An error from check is returned as it is and counts nothing.
func (l *Limiter) Guard(ctx context.Context, account, address Key, check func() (bool, error), refusal error) error {
	defer l.Lock(account.Name)()
	failures, err := l.Check(ctx, account, address)
	if err != nil {
		return err
	}
	ok, err := check()
	switch {
	case err != nil:
		return err
	case !ok:
		if err := l.Fail(ctx, account, address); err != nil {
			return err
		}
		return refusal
	case failures > 0:
		return l.Clear(ctx, account.Name)
	}
	return nil
}

// Lock serialises attempts on name on this node; call the returned
// function when the attempt has been counted (or cleared).
func (l *Limiter) Lock(name string) (unlock func()) {
	if name == "" {
		return func() {}
	}
	m := &l.stripes[stripe(name)]
	m.Lock()
	return m.Unlock
}

func stripe(name string) uint8 {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return uint8(h)
}

// Check refuses with *apierr.RateLimited when a key is over its limit. It
// returns the failures counted for the first key, so that a caller can
// skip Clear (a store write) when there is nothing to clear.
func (l *Limiter) Check(ctx context.Context, keys ...Key) (int64, error) {
	var first int64
	for i, k := range keys {
		if k.Name == "" {
			continue
		}
		n, err := l.store.FailureCount(ctx, k.Name)
		if err != nil {
			return 0, apierr.FromStore(err)
		}
		if n >= k.Limit {
			return 0, &apierr.RateLimited{RetryAfter: l.window}
		}
		if i == 0 {
			first = n
		}
	}
	return first, nil
}

// Fail counts a failure against every key, then waits a little longer
// for each failure past the first few (up to 2s), which slows a guesser
// down before the limit locks it out. It returns a store error, if any.
func (l *Limiter) Fail(ctx context.Context, keys ...Key) error {
	var most int64
	for _, k := range keys {
		if k.Name == "" {
			continue
		}
		n, err := l.store.CountFailure(ctx, k.Name, l.window)
		if err != nil {
			return apierr.FromStore(err)
		}
		most = max(most, n)
	}
	if most > l.slowAfter {
		l.sleep(ctx, min(time.Duration(most-l.slowAfter)*250*time.Millisecond, 2*time.Second))
	}
	return nil
}

// Clear resets a key (after a success).
func (l *Limiter) Clear(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	return apierr.FromStore(l.store.ClearFailures(ctx, name))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
