// Package failrate limits failed token look-ups per client address on one
// node, so that a flood of made-up tokens (each a store round trip or a
// signature check) costs the attacker, not the users.
//
// Each address has a GCRA bucket (one int64: the theoretical arrival time
// of its next failure): Limit failures per Window, refilled evenly. An
// attempt is reserved before the costly look-up and refunded if the token
// turns out to be good, so concurrent look-ups cannot overshoot the limit.
// IPv6 addresses are counted per /64, which one client usually holds.
//
// Memory is bounded: at most MaxAddresses buckets, spread over shards;
// when a shard is full, idle buckets go first, then arbitrary ones.
// The lock of a shard is held for a map access only, never across I/O.
package failrate

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/iplist"
)

// Options configure a Limiter.
type Options struct {
	// Limit failed look-ups per Window per address (<= 0: no limit).
	Limit int64
	// Window over which Limit counts (default 1m).
	Window time.Duration
	// MaxAddresses bounds the table (default 65536).
	MaxAddresses int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

const shardCount = 32

// Limiter is safe for concurrent use. A nil *Limiter allows everything.
type Limiter struct {
	interval int64 // nanoseconds per failure
	burst    int64 // window: how far the arrival time may run ahead
	perShard int
	now      func() time.Time
	shards   [shardCount]shard
}

type shard struct {
	mu  sync.Mutex
	tat map[netip.Addr]int64
}

// New returns a limiter, or nil when o.Limit <= 0 (off).
func New(o Options) *Limiter {
	if o.Limit <= 0 {
		return nil
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.MaxAddresses <= 0 {
		o.MaxAddresses = 65536
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{
		interval: max(1, int64(o.Window)/o.Limit),
		burst:    int64(o.Window),
		perShard: max(1, o.MaxAddresses/shardCount),
		now:      o.Now,
	}
	for i := range l.shards {
		l.shards[i].tat = make(map[netip.Addr]int64)
	}
	return l
}

func (l *Limiter) shard(k netip.Addr) *shard {
	b := k.As16()
	var h uint32 = 2166136261 // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return &l.shards[h%shardCount]
}

// Reserve counts one failed look-up for a, in advance. It returns 0 if
// the look-up may go ahead, or how long a must wait if it is over its
// limit (nothing is counted then). An invalid address (unknown client)
// and a nil limiter are never limited.
func (l *Limiter) Reserve(a netip.Addr) time.Duration {
	if l == nil || !a.IsValid() {
		return 0
	}
	k := iplist.ClientUnit(a)
	now := l.now().UnixNano()
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[k]
	if !ok || tat < now {
		tat = now
	}
	next := tat + l.interval
	if wait := next - now - l.burst; wait > 0 {
		return time.Duration(wait)
	}
	if !ok {
		l.makeRoom(s, now)
	}
	s.tat[k] = next
	return 0
}

// Refund gives back a reservation whose look-up did not fail.
func (l *Limiter) Refund(a netip.Addr) {
	if l == nil || !a.IsValid() {
		return
	}
	k := iplist.ClientUnit(a)
	s := l.shard(k)
	s.mu.Lock()
	if tat, ok := s.tat[k]; ok {
		s.tat[k] = tat - l.interval
	}
	s.mu.Unlock()
}

// makeRoom frees a slot in a full shard: idle buckets (fully refilled)
// first, else an arbitrary one.
func (l *Limiter) makeRoom(s *shard, now int64) {
	if len(s.tat) < l.perShard {
		return
	}
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
	for k := range s.tat { // random order: an arbitrary bucket
		if len(s.tat) < l.perShard {
			break
		}
		delete(s.tat, k)
	}
}
