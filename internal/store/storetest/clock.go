package storetest

import (
	"slices"
	"sync"
	"time"
)

// Clock is the time a backend under test reads (its Options.Now): it
// stands still until a test moves it with Advance, so that the tests of
// failure windows and denials that end need no real sleep and cannot
// flake under load.
//
// A backend whose windows the server keeps (Redis expires a failure
// counter by the key's own time to live) registers OnAdvance to move the
// server's notion of time for its keys by the same amount.
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	hooks []func(time.Duration)
}

// NewClock returns a Clock that reads the current time until moved.
func NewClock() *Clock {
	return &Clock{now: time.Now().UTC().Truncate(time.Microsecond)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// OnAdvance registers fn, called with d after every Advance(d).
func (c *Clock) OnAdvance(fn func(d time.Duration)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, fn)
}

// Advance moves the clock forward by d and runs the OnAdvance hooks.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	hooks := slices.Clone(c.hooks)
	c.mu.Unlock()
	for _, fn := range hooks {
		fn(d)
	}
}
