// Package twonodes opens one store as two gateway nodes see it, for tests
// of work that every node does and that must happen once (the expiry
// scan's events, the dormancy rule's warnings and switch-offs).
package twonodes

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// Backends are the backends Open knows.
var Backends = []string{"bolt", "redis"}

var prefixes atomic.Int64

// Open returns two handles on one fresh store of backend ("bolt": the
// embedded store, whose file one process holds, so both handles are the
// same; "redis": two clients of a real redis-server started for t, with
// one key prefix). They are closed when t ends.
func Open(t *testing.T, backend string) (store.Store, store.Store) {
	t.Helper()
	switch backend {
	case "bolt":
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, st
	case "redis":
		srv := redistest.Start(t)
		prefix := fmt.Sprintf("nodes%d", prefixes.Add(1))
		var out [2]store.Store
		for i := range out {
			st, err := redisstore.Open(srv.URL(), redisstore.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			out[i] = st
		}
		return out[0], out[1]
	}
	t.Fatalf("twonodes: unknown backend %q", backend)
	return nil, nil
}
