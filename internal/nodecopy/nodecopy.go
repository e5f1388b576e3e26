// Package nodecopy keeps this node's copy of what it reads from the store:
// read on first use, dropped when the store announces a change
// (Invalidate), read again on the next use. It is the one place that gets
// the concurrency of such a copy right:
//
//   - Every invalidation starts a new generation. A load begun before it
//     answers the callers that were already waiting for it but is not
//     kept, and a caller that comes after it never shares that load: it
//     may have read the value the announced change replaced.
//   - Concurrent callers of one generation share one load (no thundering
//     herd on the store after an invalidation).
//   - A shared load is detached from the context of the caller that began
//     it, so that one caller giving up does not fail the others; it is
//     bounded by LoadTimeout instead. A caller whose context ends stops
//     waiting at once.
//   - Errors are not kept: the next use reads again. A load that panics
//     fails its callers with the panic as an error (it runs on a
//     goroutine of its own, where a panic would end the process).
//
// Copy holds one value (a document); Map holds one value per key (the
// OAuth clients by id); Flights is the shared load under both, for a
// holder that keeps its values itself (the edge's decision cache).
package nodecopy

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// LoadTimeout bounds a shared load, which no caller's context bounds.
const LoadTimeout = 5 * time.Second

// Copy is this node's copy of one value read from the store. Get costs an
// atomic load (and a clock read if values expire) while the copy is held.
// It is safe for concurrent use.
type Copy[T any] struct {
	load    func(context.Context) (T, error)
	expires func(T, time.Time) time.Time
	now     func() time.Time
	cur     atomic.Pointer[held[T]]
	// mu orders installs against invalidations: once Invalidate returns,
	// no load of an earlier generation can install its value.
	mu      sync.Mutex
	gen     atomic.Uint64
	flights Flights[T]
}

// held is an installed value.
type held[T any] struct {
	v        T
	loadedAt time.Time
	until    time.Time // zero: until invalidated
}

// Options configure a Copy.
type Options[T any] struct {
	// Expires, if set, says until when a value loaded at loadedAt may be
	// used without reading the store again; a zero time means until the
	// next Invalidate. nil: every value is kept until the next Invalidate.
	Expires func(v T, loadedAt time.Time) time.Time
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns an empty Copy that reads its value with load. load gets a
// context that no caller can cancel, bounded by LoadTimeout.
func New[T any](load func(context.Context) (T, error), o Options[T]) *Copy[T] {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Copy[T]{load: load, expires: o.Expires, now: o.Now}
}

// RetryExpired is how long an expired value is used again after a load
// that should have replaced it failed, before Get tries the store again.
const RetryExpired = time.Second

// Get returns the held value, or loads it (sharing a load under way in
// this generation) if none is held or it has expired. An expired value is
// still returned when its reload fails, and for RetryExpired after that:
// expiry asks for a fresher copy, it does not make the held one wrong (an
// invalidation does, and an invalidated value is never returned). So a
// store that is down does not fail the callers of a value that was good a
// moment ago, and they do not each wait for the store.
func (c *Copy[T]) Get(ctx context.Context) (T, error) {
	h := c.cur.Load()
	if h != nil && (h.until.IsZero() || c.now().Before(h.until)) {
		return h.v, nil
	}
	v, err := c.loadShared(ctx)
	if err != nil && h != nil && ctx.Err() == nil {
		if kept, ok := c.keepExpired(h); ok {
			return kept, nil
		}
	}
	return v, err
}

// keepExpired installs h again for RetryExpired, unless the copy was
// invalidated or replaced since h was read, and reports whether it did.
func (c *Copy[T]) keepExpired(h *held[T]) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.cur.Load(); cur != h {
		var zero T
		return zero, false
	}
	c.cur.Store(&held[T]{v: h.v, loadedAt: h.loadedAt, until: c.now().Add(RetryExpired)})
	return h.v, true
}

// loadShared loads the value (sharing a load under way in this
// generation) and installs it on success.
func (c *Copy[T]) loadShared(ctx context.Context) (T, error) {
	gen := c.gen.Load()
	return c.flights.Do(ctx, gen, "", func(lctx context.Context) (T, error) {
		v, err := c.load(lctx)
		if err == nil {
			c.install(v, gen)
		}
		return v, err
	})
}

// Refresh is Get, except that a value loaded floor or longer ago is read
// again. For a caller that has reason to think the copy is behind (a
// token names a key it does not know) before the announcement arrives;
// the floor keeps made-up reasons from costing a store read each. The held
// value is replaced only by a successful read: a store that fails keeps
// serving every other caller from the copy (only this caller gets the
// error).
func (c *Copy[T]) Refresh(ctx context.Context, floor time.Duration) (T, error) {
	if h := c.cur.Load(); h != nil && c.now().Sub(h.loadedAt) >= floor {
		return c.loadShared(ctx)
	}
	return c.Get(ctx)
}

// Invalidate drops the value and starts a new generation (after the
// store announced a change). A load already under way keeps its result
// to its own callers.
func (c *Copy[T]) Invalidate() {
	c.mu.Lock()
	c.gen.Add(1)
	c.cur.Store(nil)
	c.mu.Unlock()
}

// install keeps v unless an invalidation came after gen was read.
func (c *Copy[T]) install(v T, gen uint64) {
	h := &held[T]{v: v, loadedAt: c.now()}
	if c.expires != nil {
		h.until = c.expires(v, h.loadedAt)
	}
	c.mu.Lock()
	if c.gen.Load() == gen {
		c.cur.Store(h)
	}
	c.mu.Unlock()
}

// Map is this node's copy of values read from the store one key at a
// time. It is safe for concurrent use.
type Map[V any] struct {
	load    func(context.Context, string) (V, error)
	keep    func(V) bool
	mu      sync.RWMutex
	m       map[string]V
	gen     uint64 // counts invalidations of any key
	flights Flights[V]
}

// NewMap returns an empty Map that reads the value of a key with load
// (whose context no caller can cancel, bounded by LoadTimeout). keep
// reports whether a loaded value is held; a value not held (an id that
// does not exist) is read again on every use, so that made-up keys cannot
// grow the map. nil keeps every value.
func NewMap[V any](load func(context.Context, string) (V, error), keep func(V) bool) *Map[V] {
	return &Map[V]{load: load, keep: keep, m: make(map[string]V)}
}

// Get returns the value held for key, or loads it (sharing a load of key
// under way in this generation).
func (m *Map[V]) Get(ctx context.Context, key string) (V, error) {
	m.mu.RLock()
	v, ok := m.m[key]
	gen := m.gen
	m.mu.RUnlock()
	if ok {
		return v, nil
	}
	return m.flights.Do(ctx, gen, key, func(lctx context.Context) (V, error) {
		v, err := m.load(lctx, key)
		if err == nil && (m.keep == nil || m.keep(v)) {
			m.mu.Lock()
			if m.gen == gen { // no invalidation while we read
				m.m[key] = v
			}
			m.mu.Unlock()
		}
		return v, err
	})
}

// Invalidate drops the value of key (after the store announced its
// change). A load under way keeps its result to its own callers.
func (m *Map[V]) Invalidate(key string) {
	m.mu.Lock()
	m.gen++
	delete(m.m, key)
	m.mu.Unlock()
}

// Clear drops every value (after the store announced it may all have
// changed).
func (m *Map[V]) Clear() {
	m.mu.Lock()
	m.gen++
	clear(m.m)
	m.mu.Unlock()
}

// Flights shares loads among the callers of one generation and key, for
// Copy, Map and any other holder with a generation of its own (the edge's
// decision cache). The zero value is ready to use.
type Flights[T any] struct{ group singleflight.Group }

// Do runs load once for every caller that asks for (gen, key) while it is
// under way, in a context detached from the caller that began it and
// bounded by LoadTimeout. A caller whose ctx ends stops waiting and gets
// its context's error; the load goes on for the others. A caller that
// read a newer generation (after an invalidation) does not share a load
// of an older one.
func (f *Flights[T]) Do(ctx context.Context, gen uint64, key string, load func(context.Context) (T, error)) (T, error) {
	ch := f.group.DoChan(strconv.FormatUint(gen, 10)+"/"+key, func() (v any, err error) {
		// The load runs on a goroutine of its own, where a panic would
		// end the process (singleflight re-panics there): make it the
		// error of this load, as a handler's panic is its request's.
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("loading %q: panic: %v\n%s", key, p, debug.Stack())
			}
		}()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LoadTimeout)
		defer cancel()
		return load(lctx)
	})
	var r singleflight.Result
	select {
	case r = <-ch:
	case <-ctx.Done():
		select {
		case r = <-ch: // done at the same moment: the answer is here
		default:
			var zero T
			return zero, ctx.Err()
		}
	}
	v, _ := r.Val.(T) // comma-ok: a nil interface T comes back as nil
	return v, r.Err
}
