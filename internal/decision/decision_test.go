package decision

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func TestUseMemoryOncePerIntervalAndAddress(t *testing.T) {
	const every = 100
	var m UseMemory
	fleet := []uint64{AddrPrint(netip.MustParseAddr("192.0.2.1")), AddrPrint(netip.MustParseAddr("192.0.2.2")),
		AddrPrint(netip.MustParseAddr("2001:db8::1")), AddrPrint(netip.Addr{})}
	// A fleet of four in turn: each address is due once per interval.
	recorded := map[uint64]int{}
	for now := int64(1); now < 3*every; now += 5 {
		for _, a := range fleet {
			if m.Due(a, now, every) {
				recorded[a]++
			}
		}
	}
	for i, a := range fleet {
		if recorded[a] != 3 {
			t.Errorf("address %d recorded %d times in three intervals, want 3", i, recorded[a])
		}
	}
	// A fifth address takes the slot recorded longest ago, and is due.
	fifth := AddrPrint(netip.MustParseAddr("198.51.100.9"))
	if !m.Due(fifth, 3*every, every) {
		t.Error("a new address is not due")
	}
	if m.Due(fifth, 3*every+1, every) {
		t.Error("the new address is due again within the interval")
	}
	// A clock going backwards records nothing.
	if m.Due(fifth, 2*every, every) {
		t.Error("a use before the last record is due")
	}
}

func TestUseMemoryConcurrent(t *testing.T) {
	var m UseMemory
	a := AddrPrint(netip.MustParseAddr("192.0.2.1"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	due := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if m.Due(a, 1000, 1<<40) {
					mu.Lock()
					due++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if due != 1 {
		t.Errorf("one address at one instant was due %d times, want once", due)
	}
}

func TestAddrPrint(t *testing.T) {
	seen := map[uint64]string{}
	for _, s := range []string{"0.0.0.0", "192.0.2.1", "192.0.2.2", "::", "::1", "2001:db8::1", "2001:db8::2", "::ffff:192.0.2.1"} {
		p := AddrPrint(netip.MustParseAddr(s))
		if p == 0 {
			t.Errorf("AddrPrint(%s) = 0, the print of no address", s)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("AddrPrint(%s) = AddrPrint(%s)", s, other)
		}
		seen[p] = s
	}
	if AddrPrint(netip.Addr{}) != 0 {
		t.Error("no address has a print")
	}
}

// TestAddrPrintNotForgeable: a client that chooses the low 64 bits of its
// IPv6 address (any holder of a /64) cannot compute an address whose
// print is that of another client's address (here: what collided with an
// unkeyed mix of the two halves), and computing a print allocates
// nothing.
func TestAddrPrintNotForgeable(t *testing.T) {
	victim := netip.MustParseAddr("2001:db8:1::25")
	vb := victim.As16()
	vhi, vlo := binary.BigEndian.Uint64(vb[:8]), binary.BigEndian.Uint64(vb[8:])
	const k = 0x9E3779B97F4A7C15
	var ab [16]byte
	ahi := uint64(0x20010db8_00020000) // the attacker's /64
	binary.BigEndian.PutUint64(ab[:8], ahi)
	binary.BigEndian.PutUint64(ab[8:], vlo^vhi*k^ahi*k)
	attacker := netip.AddrFrom16(ab)
	if AddrPrint(attacker) == AddrPrint(victim) {
		t.Errorf("%s, chosen for it, has the print of %s", attacker, victim)
	}
	if n := testing.AllocsPerRun(100, func() { AddrPrint(victim) }); n != 0 {
		t.Errorf("AddrPrint allocates %v times", n)
	}
}

// TestUseMemoryNewAddressesConcurrent: uses from distinct new addresses
// at one instant, more than the memory holds, are each due: none is lost
// to another taking a slot at the same time (a thief's one request
// racing a fleet's).
func TestUseMemoryNewAddressesConcurrent(t *testing.T) {
	for round := range 300 {
		var m UseMemory
		var wg sync.WaitGroup
		var due atomic.Int32
		start := make(chan struct{})
		const n = 8
		for i := range n {
			wg.Go(func() {
				<-start
				if m.Due(AddrPrint(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})), 1000, 1<<40) {
					due.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if due.Load() != n {
			t.Fatalf("round %d: %d of %d new addresses at one instant were due", round, due.Load(), n)
		}
	}
}
