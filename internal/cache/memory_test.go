package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/tokengate/tokengate/internal/decision"
)

// BenchmarkMemoryPerEntry reports the heap bytes per cached token with a
// million PAT-like entries, before and after each entry has served a
// request (which renders its identity once, for allocation-free requests).
//
//	go test -run '^$' -bench MemoryPerEntry -benchtime 1x ./internal/cache
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, filled, used runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := New(Options{MaxEntries: 2 * n}) // room for uneven shards: measure, do not evict
		keys := make([][32]byte, n)
		for i := range keys {
			var seed [8]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(i))
			keys[i] = sha256.Sum256(seed[:])
			owner := fmt.Sprintf("user%d", i%5000) // as decoded from the store: one string per entry
			c.Fill(keys[i], &decision.Decision{
				Owner: owner, User: owner, TokenID: fmt.Sprintf("%016x", i), Kind: "pat",
				ScopeHeader: "read",
			}, c.Generation())
		}
		runtime.GC()
		runtime.ReadMemStats(&filled)
		for _, k := range keys {
			e, _ := c.Get(k)
			_ = e.Identity()
		}
		runtime.GC()
		runtime.ReadMemStats(&used)
		keysBytes := float64(n * 32) // the benchmark's own key list
		b.ReportMetric((float64(filled.HeapAlloc-before.HeapAlloc)-keysBytes)/n, "B/entry")
		b.ReportMetric((float64(used.HeapAlloc-before.HeapAlloc)-keysBytes)/n, "B/entry-used")
		if c.Len() != n {
			b.Fatalf("cache holds %d entries, want %d", c.Len(), n)
		}
		runtime.KeepAlive(keys)
	}
}
