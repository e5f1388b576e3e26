// Package cache is the in-process cache of edge decisions: it maps a
// token's SHA-256 (never the token) to its decision.Decision, including
// negative decisions for well-formed tokens that do not exist. It knows
// nothing of token kinds: it stores, expires and drops decisions by hash,
// by owner or by a caller's predicate.
//
// It is bounded in entries, and every entry lives at most TTL, which is
// also the worst case staleness if an invalidation message is lost.
// Invalidations bump a generation counter; a fill that started before an
// invalidation is dropped (see Fill), which closes the race where a slow
// store read fills the cache after the invalidation that concerns it.
package cache

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/internal/decision"
)

// Options configure a Cache.
type Options struct {
	// MaxEntries bounds the number of entries (default 100000).
	MaxEntries int
	// TTL is how long an entry is trusted (default 30s).
	TTL time.Duration
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
}

const shardCount = 64

// Cache is safe for concurrent use.
type Cache struct {
	shards     [shardCount]shard
	epoch      time.Time
	perShard   atomic.Int64
	negShard   atomic.Int64 // bound of a shard's negative entries
	ttl        atomic.Int64 // seconds
	now        func() time.Time
	generation atomic.Uint64
	evictions  atomic.Uint64
}

// A shard keeps negative entries (decision.Decision.Negative: made-up
// tokens cost an attacker nothing) in a map of their own with its own bound, so that a flood of
// them only ever evicts other negative entries, never a live token.
type shard struct {
	mu  sync.RWMutex
	m   map[[32]byte]*decision.Decision
	neg map[[32]byte]*decision.Decision
}

// New returns an empty cache.
func New(o Options) *Cache {
	if o.Now == nil {
		o.Now = time.Now
	}
	// The epoch is a minute back so that a clock that goes back a little
	// (tests) does not wrap the entries' ages.
	c := &Cache{now: o.Now, epoch: o.Now().Add(-time.Minute)}
	c.SetLimits(o.MaxEntries, o.TTL)
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*decision.Decision)
		c.shards[i].neg = make(map[[32]byte]*decision.Decision)
	}
	return c
}

// SetLimits changes the bound and the TTL (<= 0: the defaults, 100000
// entries and 30s), e.g. when a config reload keeps the cache but changes
// its settings. A smaller bound takes effect as entries are added.
// Negative entries (see decision.Decision.Negative) have a space of their own, a
// quarter of maxEntries on top of it.
func (c *Cache) SetLimits(maxEntries int, ttl time.Duration) {
	if maxEntries <= 0 {
		maxEntries = 100000
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	c.perShard.Store(int64(max(1, maxEntries/shardCount)))
	c.negShard.Store(int64(max(1, maxEntries/4/shardCount)))
	c.ttl.Store(int64((ttl + time.Second - 1) / time.Second)) // whole seconds
}

// seconds is the time since the epoch in whole seconds.
func (c *Cache) seconds() uint32 { return uint32(c.now().Sub(c.epoch) / time.Second) }

func (c *Cache) shard(h [32]byte) *shard { return &c.shards[h[0]%shardCount] }

// Get returns the live decision for h, if any.
func (c *Cache) Get(h [32]byte) (*decision.Decision, bool) {
	s := c.shard(h)
	s.mu.RLock()
	e, ok := s.m[h]
	if !ok {
		e, ok = s.neg[h]
	}
	s.mu.RUnlock()
	// ">=": ages are whole seconds, so an entry never outlives the TTL.
	if !ok || int64(c.seconds()-e.CachedAt) >= c.ttl.Load() {
		return nil, false
	}
	return e, true
}

// GetStale returns the positive decision for h that Get no longer returns
// because its TTL ran out less than window ago (whole seconds, rounded
// up). It is for when the store is known to be down (see gate's
// StaleWindow). A negative entry (decision.Decision.Negative: an unknown
// token, or one found missing after it was revoked) is never returned, nor
// an entry an invalidation dropped; what is returned is the decision as it
// was, so a refusal stays a refusal.
func (c *Cache) GetStale(h [32]byte, window time.Duration) (*decision.Decision, bool) {
	if window <= 0 {
		return nil, false
	}
	s := c.shard(h)
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.Negative() {
		return nil, false
	}
	extra := int64((window + time.Second - 1) / time.Second)
	return e, int64(c.seconds()-e.CachedAt) < c.ttl.Load()+extra
}

// Generation returns the current generation. Read it before the store
// read whose result will be passed to Fill.
func (c *Cache) Generation() uint64 { return c.generation.Load() }

// Fill stores d under h unless an invalidation happened since gen was
// read, in which case the result may already be stale and it is dropped.
// It reports whether d was stored. When the shard is full an arbitrary
// entry of the same space (negative or not) is evicted.
func (c *Cache) Fill(h [32]byte, d *decision.Decision, gen uint64) bool {
	d.CachedAt = c.seconds()
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the shard lock: invalidations take the same lock after
	// bumping the generation, so a fill either sees the new generation or
	// is removed by the invalidation that follows it.
	if c.generation.Load() != gen {
		return false
	}
	m, other, bound := s.m, s.neg, c.perShard.Load()
	if d.Negative() {
		m, other, bound = s.neg, s.m, c.negShard.Load()
	}
	delete(other, h)
	if _, exists := m[h]; !exists {
		for k := range m { // map iteration order is random: random eviction
			if int64(len(m)) < bound {
				break
			}
			delete(m, k)
			c.evictions.Add(1)
		}
	}
	m[h] = d
	return true
}

// Invalidate drops the entry for h.
func (c *Cache) Invalidate(h [32]byte) {
	c.generation.Add(1)
	s := c.shard(h)
	s.mu.Lock()
	delete(s.m, h)
	delete(s.neg, h)
	s.mu.Unlock()
}

// InvalidateOwner drops every decision whose Owner is owner.
func (c *Cache) InvalidateOwner(owner string) {
	c.InvalidateMatching(func(d *decision.Decision) bool { return d.Owner == owner })
}

// InvalidateMatching drops every entry for which match is true. It walks
// the whole cache: such changes (an owner switched off, an access token
// revoked) are rare compared with look-ups, and an index would cost memory
// and work on every fill.
func (c *Cache) InvalidateMatching(match func(*decision.Decision) bool) {
	c.generation.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, m := range []map[[32]byte]*decision.Decision{s.m, s.neg} {
			for k, d := range m {
				if match(d) {
					delete(m, k)
				}
			}
		}
		s.mu.Unlock()
	}
}

// Clear drops everything.
func (c *Cache) Clear() {
	c.generation.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		clear(s.neg)
		s.mu.Unlock()
	}
}

// Evictions returns how many entries were evicted to make room (see
// Fill); invalidations and expiry are not evictions.
func (c *Cache) Evictions() uint64 { return c.evictions.Load() }

// Len returns the number of entries, live or expired.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m) + len(s.neg)
		s.mu.RUnlock()
	}
	return n
}
