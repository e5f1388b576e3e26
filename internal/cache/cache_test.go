package cache

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/decision"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func key(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func newTestCache(maxEntries int) (*Cache, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	return New(Options{MaxEntries: maxEntries, TTL: time.Minute, Now: clk.Now}), clk
}

func TestGetFillAndTTL(t *testing.T) {
	c, clk := newTestCache(100)
	if _, ok := c.Get(key("a")); ok {
		t.Fatal("empty cache returned an entry")
	}
	if !c.Fill(key("a"), &decision.Decision{Owner: "alice"}, c.Generation()) {
		t.Fatal("fill refused")
	}
	e, ok := c.Get(key("a"))
	if !ok || e.Owner != "alice" {
		t.Fatalf("Get = %v, %v", e, ok)
	}
	clk.Add(time.Minute + time.Second)
	if _, ok := c.Get(key("a")); ok {
		t.Fatal("entry outlived its TTL")
	}
}

func TestInvalidate(t *testing.T) {
	c, _ := newTestCache(100)
	c.Fill(key("a"), &decision.Decision{Owner: "alice"}, c.Generation())
	c.Fill(key("b"), &decision.Decision{Owner: "bob"}, c.Generation())
	c.Fill(key("c"), &decision.Decision{Owner: "alice"}, c.Generation())
	c.Invalidate(key("b"))
	if _, ok := c.Get(key("b")); ok {
		t.Fatal("invalidated entry still there")
	}
	c.InvalidateOwner("alice")
	if _, ok := c.Get(key("a")); ok {
		t.Fatal("owner's entry a still there")
	}
	if _, ok := c.Get(key("c")); ok {
		t.Fatal("owner's entry c still there")
	}
	c.Fill(key("d"), &decision.Decision{}, c.Generation())
	c.Clear()
	if c.Len() != 0 {
		t.Fatal("Clear left entries")
	}
}

// A store read that started before an invalidation must not fill the cache
// with what it read.
func TestFillAfterInvalidateIsDropped(t *testing.T) {
	c, _ := newTestCache(100)
	gen := c.Generation()  // the slow read starts
	c.Invalidate(key("a")) // the revoke arrives
	if c.Fill(key("a"), &decision.Decision{Owner: "alice"}, gen) {
		t.Fatal("stale fill accepted")
	}
	if _, ok := c.Get(key("a")); ok {
		t.Fatal("stale entry visible")
	}
	if !c.Fill(key("a"), &decision.Decision{Owner: "alice"}, c.Generation()) {
		t.Fatal("fresh fill refused")
	}
}

func TestBoundedEntries(t *testing.T) {
	c, _ := newTestCache(shardCount * 2)
	for i := 0; i < 10000; i++ {
		c.Fill(key(fmt.Sprint(i)), &decision.Decision{}, c.Generation())
	}
	if n := c.Len(); n > shardCount*2 {
		t.Fatalf("cache holds %d entries, bound %d", n, shardCount*2)
	}
}

func TestConcurrentUse(t *testing.T) {
	c, _ := newTestCache(1000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := key(fmt.Sprint(i % 300))
				switch i % 7 {
				case 0:
					c.Invalidate(k)
				case 1:
					c.InvalidateOwner("x")
				default:
					c.Fill(k, &decision.Decision{Owner: "x"}, c.Generation())
					c.Get(k)
				}
			}
		}()
	}
	wg.Wait()
	// Whatever interleaving happened, the bound holds and the cache still
	// answers: a fresh fill is visible, an invalidation removes it.
	if n := c.Len(); n > 1000 {
		t.Fatalf("cache holds %d entries, bound 1000", n)
	}
	c.Fill(key("after"), &decision.Decision{Owner: "y"}, c.Generation())
	if e, ok := c.Get(key("after")); !ok || e.Owner != "y" {
		t.Fatal("fill after concurrent use not visible")
	}
	c.InvalidateOwner("y")
	if _, ok := c.Get(key("after")); ok {
		t.Fatal("invalidation after concurrent use did not take")
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New(Options{})
	k := key("hot")
	c.Fill(k, &decision.Decision{Owner: "alice"}, c.Generation())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(k); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// Ages are counted in whole seconds: an entry may go a little early, but
// never lives longer than the TTL (the bound on staleness when an
// invalidation is lost).
func TestEntryNeverOutlivesTTL(t *testing.T) {
	for _, offset := range []time.Duration{0, 500 * time.Millisecond, 999 * time.Millisecond} {
		clk := &fakeClock{t: time.Unix(1700000000, 0)}
		c := New(Options{TTL: 2 * time.Second, Now: clk.Now})
		clk.Add(offset)
		c.Fill(key("a"), &decision.Decision{}, c.Generation())
		clk.Add(2 * time.Second)
		if _, ok := c.Get(key("a")); ok {
			t.Errorf("filled %v into a second: still there after the TTL", offset)
		}
	}
}

// A flood of made-up tokens must not push live tokens out of the cache.
func TestNegativeFloodKeepsPositiveEntries(t *testing.T) {
	// Room for 64 live entries per shard: the 256 live ones fit.
	c, _ := newTestCache(shardCount * 64)
	for i := range shardCount * 4 {
		c.Fill(key(fmt.Sprint("live", i)), &decision.Decision{Owner: "alice"}, c.Generation())
	}
	for i := range 100000 {
		c.Fill(key(fmt.Sprint("fake", i)), &decision.Decision{Missing: true}, c.Generation())
		if i%2 == 0 {
			c.Fill(key(fmt.Sprint("forged-jwt", i)), &decision.Decision{Refusal: fmt.Errorf("bad signature")}, c.Generation())
		}
	}
	for i := range shardCount * 4 {
		if e, ok := c.Get(key(fmt.Sprint("live", i))); !ok || e.Owner != "alice" {
			t.Fatalf("live entry %d was evicted by negative ones", i)
		}
	}
	if n := c.Len(); n > shardCount*4+shardCount*64/4 {
		t.Fatalf("the cache grew to %d entries", n)
	}
	// Negative entries still work, and one that turns positive moves.
	h := key("fake99999")
	if e, ok := c.Get(h); !ok || !e.Missing {
		t.Fatal("the last negative entry is not cached")
	}
	c.Fill(h, &decision.Decision{Owner: "bob"}, c.Generation())
	if e, ok := c.Get(h); !ok || e.Owner != "bob" {
		t.Fatal("a negative entry shadowed a positive fill")
	}
	c.Invalidate(h)
	if _, ok := c.Get(h); ok {
		t.Fatal("invalidated entry survived")
	}
}

// GetStale serves a positive decision only within the window after its
// TTL, never a refusal, and never one an invalidation dropped; a token
// revoked (its entry now negative) never flips back to its old answer.
func TestGetStale(t *testing.T) {
	c, clk := newTestCache(100)
	c.Fill(key("good"), &decision.Decision{Owner: "alice"}, c.Generation())
	c.Fill(key("unknown"), &decision.Decision{Missing: true}, c.Generation())
	c.Fill(key("revoked"), &decision.Decision{Owner: "alice", TokenID: "r"}, c.Generation())
	c.Fill(key("dropped"), &decision.Decision{Owner: "bob"}, c.Generation())
	// The revoked token is looked up again and found missing: its entry
	// is now a refusal.
	c.Invalidate(key("revoked"))
	c.Fill(key("revoked"), &decision.Decision{Missing: true}, c.Generation())
	c.Invalidate(key("dropped"))

	if _, ok := c.GetStale(key("good"), 0); ok {
		t.Error("a zero window served a decision")
	}
	clk.Add(time.Minute + 10*time.Second) // TTL 1m ran out 10s ago
	if _, ok := c.Get(key("good")); ok {
		t.Fatal("Get served an expired entry")
	}
	if e, ok := c.GetStale(key("good"), 30*time.Second); !ok || e.Owner != "alice" {
		t.Errorf("GetStale within the window: %v, %v", e, ok)
	}
	if _, ok := c.GetStale(key("good"), 10*time.Second); ok {
		t.Error("GetStale served an entry 10s past its TTL with a 10s window")
	}
	for _, k := range []string{"unknown", "revoked", "dropped"} {
		if e, ok := c.GetStale(key(k), time.Hour); ok {
			t.Errorf("GetStale served %q: %+v", k, e)
		}
	}
}

// Evictions counts the entries dropped to make room, not the ones
// invalidated.
func TestEvictionsCount(t *testing.T) {
	c := New(Options{MaxEntries: 1}) // one entry per shard
	var h1, h2 [32]byte
	h2[1] = 1 // same shard (h[0]), another key
	c.Fill(h1, &decision.Decision{Owner: "a"}, c.Generation())
	c.Invalidate(h1)
	if c.Evictions() != 0 {
		t.Fatalf("evictions after an invalidation = %d", c.Evictions())
	}
	c.Fill(h1, &decision.Decision{Owner: "a"}, c.Generation())
	c.Fill(h2, &decision.Decision{Owner: "b"}, c.Generation())
	if c.Evictions() != 1 || c.Len() != 1 {
		t.Fatalf("evictions %d, len %d; want 1, 1", c.Evictions(), c.Len())
	}
}
