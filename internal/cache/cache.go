// Package cache is the in-process cache of edge decisions: it maps a
// token's SHA-256 (never the token) to what the gateway needs to accept or
// refuse it without a store round trip, including negative entries for
// well-formed tokens that do not exist.
//
// It is bounded in entries, and every entry lives at most TTL, which is
// also the worst case staleness if an invalidation message is lost.
// Invalidations bump a generation counter; a fill that started before an
// invalidation is dropped (see Fill), which closes the race where a slow
// store read fills the cache after the invalidation that concerns it.
package cache

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/iplist"
)

// Entry is a cached decision input. Entries are immutable once filled,
// except for LastUse which the gateway updates atomically.
type Entry struct {
	// Missing marks a negative entry: no token has this hash.
	Missing bool
	// storedAt is when the entry was filled, in seconds since the cache's
	// epoch: 4 bytes that share a word with Missing (a cached token is
	// kept small; the TTL is counted in whole seconds).
	storedAt uint32
	// Owner is what invalidates the entry (a user name, or "client:" + an
	// OAuth client id), User the identity shown to the upstream, TokenID
	// the token's public id (a jti for access tokens), Kind its kind.
	Owner, User, TokenID, Kind string
	// Issuer is the "iss" of an external issuer's JWT ("" for the
	// gateway's own tokens), so the upstream can tell its users apart.
	Issuer string
	// ScopeHeader holds the granted scopes, separated by single spaces
	// (one string per entry rather than a slice: a cached token costs less
	// memory, and scope.CoversString checks it without allocating).
	ScopeHeader string
	// ExpiresAt in Unix nanoseconds; 0 means never.
	ExpiresAt int64
	// Refusal is why the token must be refused whatever the request (token
	// switched off, owner disabled, token login off); nil if usable.
	Refusal error
	// AllowedIPs is the token's allow-list (empty: any).
	AllowedIPs iplist.List
	// LastUse is the Unix nanosecond time of the last use this node
	// recorded, so that a hot token is queued for a store write at most
	// once per interval.
	LastUse atomic.Int64
}

// Identity returns who the entry says the caller is, with Stable pointing
// at the entry's own fields, so that setting headers and placeholders for
// a cached token allocates nothing and costs no memory per entry.
func (e *Entry) Identity() identity.Identity {
	return identity.Identity{
		User: e.User, TokenType: e.Kind, TokenID: e.TokenID, Scopes: e.ScopeHeader, Issuer: e.Issuer,
		Stable: [5]*string{&e.User, &e.Kind, &e.TokenID, &e.ScopeHeader, &e.Issuer},
	}
}

// Negative reports whether the entry refuses a token that anyone can make
// up: an unknown PAT or legacy token, or a JWT refused before it named an
// owner (bad signature, unknown key, expired). Such entries are kept apart
// (see shard) and count as failed look-ups.
func (e *Entry) Negative() bool { return e.Missing || (e.Refusal != nil && e.Owner == "") }

// AllowsIP applies the entry's allow-list.
func (e *Entry) AllowsIP(a netip.Addr) bool { return e.AllowedIPs.Allows(a) }

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
}

// A shard keeps negative entries (Missing: made-up tokens cost an attacker
// nothing) in a map of their own with its own bound, so that a flood of
// them only ever evicts other negative entries, never a live token.
type shard struct {
	mu  sync.RWMutex
	m   map[[32]byte]*Entry
	neg map[[32]byte]*Entry
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
		c.shards[i].m = make(map[[32]byte]*Entry)
		c.shards[i].neg = make(map[[32]byte]*Entry)
	}
	return c
}

// SetLimits changes the bound and the TTL (<= 0: the defaults, 100000
// entries and 30s), e.g. when a config reload keeps the cache but changes
// its settings. A smaller bound takes effect as entries are added.
// Negative entries (see Entry.Negative) have a space of their own, a
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

// Get returns the live entry for h, if any.
func (c *Cache) Get(h [32]byte) (*Entry, bool) {
	s := c.shard(h)
	s.mu.RLock()
	e, ok := s.m[h]
	if !ok {
		e, ok = s.neg[h]
	}
	s.mu.RUnlock()
	// ">=": ages are whole seconds, so an entry never outlives the TTL.
	if !ok || int64(c.seconds()-e.storedAt) >= c.ttl.Load() {
		return nil, false
	}
	return e, true
}

// Generation returns the current generation. Read it before the store
// read whose result will be passed to Fill.
func (c *Cache) Generation() uint64 { return c.generation.Load() }

// Fill stores e under h unless an invalidation happened since gen was
// read, in which case the result may already be stale and it is dropped.
// It reports whether e was stored. When the shard is full an arbitrary
// entry of the same space (negative or not) is evicted.
func (c *Cache) Fill(h [32]byte, e *Entry, gen uint64) bool {
	e.storedAt = c.seconds()
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
	if e.Negative() {
		m, other, bound = s.neg, s.m, c.negShard.Load()
	}
	delete(other, h)
	if _, exists := m[h]; !exists {
		for k := range m { // map iteration order is random: random eviction
			if int64(len(m)) < bound {
				break
			}
			delete(m, k)
		}
	}
	m[h] = e
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

// InvalidateOwner drops every entry of the owner's tokens.
func (c *Cache) InvalidateOwner(owner string) {
	c.InvalidateMatching(func(e *Entry) bool { return e.Owner == owner })
}

// InvalidateMatching drops every entry for which match is true. It walks
// the whole cache: such changes (an owner switched off, an access token
// revoked) are rare compared with look-ups, and an index would cost memory
// and work on every fill.
func (c *Cache) InvalidateMatching(match func(*Entry) bool) {
	c.generation.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, m := range []map[[32]byte]*Entry{s.m, s.neg} {
			for k, e := range m {
				if match(e) {
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
