package tests

import (
	"testing"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// sentinelKV is a Redis Sentinel deployment: a primary, a replica and
// three sentinels (redistest.StartSentinel), reached through a
// redis-sentinel:// URL, so every write waits for the replica (the
// default store_durability).
const sentinelKV storeKind = "sentinel"

// sentinelDeployment is the Sentinel deployment that the tests share.
var sentinelDeployment = &shared[*redistest.Sentinel]{what: "the Sentinel deployment", start: redistest.StartSentinelMain}

// sentinelURL empties the shared Sentinel deployment and returns its URL.
func sentinelURL(t *testing.T) string {
	t.Helper()
	s := sentinelDeployment.get(t)
	s.FlushAll(t)
	return s.URL()
}
