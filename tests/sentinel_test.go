package tests

import (
	"sync"
	"testing"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// sentinelKV is a Redis Sentinel deployment: a primary, a replica and
// three sentinels (redistest.StartSentinel), reached through a
// redis-sentinel:// URL, so every write waits for the replica (the
// default store_durability).
const sentinelKV storeKind = "sentinel"

var (
	sentinelOnce sync.Once
	sentinelDep  *redistest.Sentinel
	sentinelErr  error
)

// sharedSentinel returns the Sentinel deployment that the tests share,
// started by the first test that needs it and stopped when the tests end.
func sharedSentinel(t *testing.T) *redistest.Sentinel {
	t.Helper()
	sentinelOnce.Do(func() {
		var stop func()
		sentinelDep, stop, sentinelErr = redistest.StartSentinelMain()
		if sentinelErr == nil {
			atExit(stop)
		}
	})
	if sentinelErr != nil {
		t.Fatalf("starting the Sentinel deployment: %v", sentinelErr)
	}
	return sentinelDep
}

// sentinelURL empties the shared Sentinel deployment and returns its URL.
func sentinelURL(t *testing.T) string {
	t.Helper()
	s := sharedSentinel(t)
	s.FlushAll(t)
	return s.URL()
}
