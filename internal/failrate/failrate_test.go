package failrate

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ t atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) Add(d time.Duration) { c.t.Add(int64(d)) }
func newLimiter(limit int64) (*Limiter, *clock) {
	clk := &clock{}
	clk.t.Store(time.Unix(1700000000, 0).UnixNano())
	return New(Options{Limit: limit, Window: time.Minute, Now: clk.Now}), clk
}

func TestLimitPerAddressAndRefill(t *testing.T) {
	l, clk := newLimiter(10)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 10 {
		if w := l.Reserve(a); w != 0 {
			t.Fatalf("failure %d refused (%v)", i+1, w)
		}
	}
	w := l.Reserve(a)
	if w <= 0 || w > 6*time.Second {
		t.Fatalf("11th failure: wait %v, want (0, 6s]", w)
	}
	if l.Reserve(b) != 0 {
		t.Fatal("another address was limited")
	}
	clk.Add(w)
	if l.Reserve(a) != 0 {
		t.Fatal("still limited after the wait it was told")
	}
}

// A look-up that succeeds gives its reservation back: good tokens never
// use up an address's allowance.
func TestRefund(t *testing.T) {
	l, _ := newLimiter(2)
	a := netip.MustParseAddr("2001:db8::1")
	for range 100 {
		if l.Reserve(a) != 0 {
			t.Fatal("refunded look-ups were counted")
		}
		l.Refund(a)
	}
}

// Addresses in one IPv6 /64 share a bucket; IPv4-mapped is IPv4.
func TestKeys(t *testing.T) {
	l, _ := newLimiter(1)
	if l.Reserve(netip.MustParseAddr("2001:db8::1")) != 0 || l.Reserve(netip.MustParseAddr("2001:db8::ffff:2")) == 0 {
		t.Fatal("a /64 is not one bucket")
	}
	if l.Reserve(netip.MustParseAddr("192.0.2.9")) != 0 || l.Reserve(netip.MustParseAddr("::ffff:192.0.2.9")) == 0 {
		t.Fatal("IPv4-mapped address counted apart")
	}
	if l.Reserve(netip.Addr{}) != 0 {
		t.Fatal("unknown address limited")
	}
	var off *Limiter
	if New(Options{}) != nil || off.Reserve(netip.MustParseAddr("192.0.2.1")) != 0 {
		t.Fatal("off is not off")
	}
}

// Concurrent failures never overshoot the limit.
func TestConcurrentReservationsHoldTheLimit(t *testing.T) {
	l, _ := newLimiter(50)
	a := netip.MustParseAddr("192.0.2.7")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 400 {
		wg.Go(func() {
			if l.Reserve(a) == 0 {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("%d of 400 concurrent failures allowed, want 50", ok.Load())
	}
}

// The table stays bounded under a flood of addresses.
func TestBoundedTable(t *testing.T) {
	clk := &clock{}
	l := New(Options{Limit: 5, MaxAddresses: 320, Now: clk.Now})
	for i := range 100000 {
		l.Reserve(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].tat)
	}
	if n > 320 {
		t.Fatalf("%d addresses kept, bound 320", n)
	}
}
