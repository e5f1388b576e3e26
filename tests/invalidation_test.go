package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/pubsubproxy"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// Log lines about invalidation.
const (
	subscriptionLost     = "store subscription lost"
	subscriptionRestored = "store subscription restored"
	nothingOnDisk        = "Redis keeps nothing on disk"
	persistenceChecked   = "checked what Redis keeps on disk" // at Debug, after the check
)

// A node whose invalidation subscription goes silent (its pub/sub
// connection to Redis stops delivering without closing, as with a frozen
// server or a proxy that eats messages) finds out through its own pings
// within a few invalidation_ping intervals: it logs the break once,
// subscribes again, empties its cache and logs that once with the outage's
// length. A token revoked meanwhile through another node is refused there
// within that bound, long before cache_ttl. The Redis that redistest runs
// keeps nothing on disk, which the start-up log says once.
func TestSilentSubscriptionIsNoticed(t *testing.T) {
	const ping = 200 * time.Millisecond
	// A bound on waiting: a ping, two intervals of silence, a receive
	// timeout, the pause before resubscribing, and slack for a loaded
	// machine. cache_ttl (10m) is far beyond it.
	bound := 5*ping + 5*time.Second

	srv := redistest.Start(t)
	proxy := pubsubproxy.Start(t, srv.Addr())
	up := startUpstream(t)
	app := "cache_ttl 10m\n\t\tinvalidation_ping 200ms"
	g := startGatewayOn(t, "redis://"+proxy.Addr()+"/0", up, gatewayConfig{appOptions: app})
	peer := startGatewayOn(t, srv.URL(), up, gatewayConfig{appOptions: app})

	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	tok, id := createPAT(t, g, "alice", alicePassword, `{"label":"revoked while frozen"}`)
	if r := do(t, http.MethodGet, g.base+"/data", bearer(tok), ""); r.status != http.StatusOK {
		t.Fatalf("token before the freeze: %d %s", r.status, r.body)
	}
	if n := proxy.FreezeSubscribers(); n != 1 {
		t.Fatalf("froze %d subscriber connections, want 1 (the node's subscription)", n)
	}
	frozenAt := time.Now()
	if r := do(t, http.MethodDelete, peer.base+"/api-user/tokens/"+id, basic("alice", alicePassword), ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke through the peer: %d %s", r.status, r.body)
	}
	var r response
	eventually(bound, func() bool {
		r = do(t, http.MethodGet, g.base+"/data", bearer(tok), "")
		return r.status != http.StatusOK
	})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("revoked token on the frozen node: %d %s after %v (bound %v); logs:\n%s",
			r.status, r.body, time.Since(frozenAt), bound, g.logs.String())
	}
	t.Logf("revoke enforced on the frozen node %v after the freeze (invalidation_ping %v)", time.Since(frozenAt).Round(time.Millisecond), ping)

	g.waitLogWithin(subscriptionRestored, bound)
	time.Sleep(5 * ping) // more intervals: still one line each
	logs := g.logs.String()
	if n := strings.Count(logs, subscriptionLost); n != 1 {
		t.Errorf("%d lines say %q, want 1:\n%s", n, subscriptionLost, logs)
	}
	restored := logLines(t, logs, subscriptionRestored)
	if len(restored) != 1 {
		t.Fatalf("%d lines say %q, want 1:\n%s", len(restored), subscriptionRestored, logs)
	}
	if out, ok := restored[0]["out_for"].(float64); !ok || out <= 0 || out > time.Since(frozenAt).Seconds() {
		t.Errorf("restored line's out_for = %v, want the outage in seconds: %v", restored[0]["out_for"], restored[0])
	}
	if !strings.Contains(restored[0]["msg"].(string), "caches emptied") {
		t.Errorf("restored line does not say the caches were emptied: %v", restored[0])
	}
	if n := strings.Count(logs, subscriptionLost) + strings.Count(peer.logs.String(), subscriptionLost); n != 1 {
		t.Errorf("the peer logged a lost subscription too:\n%s", peer.logs.String())
	}
	g.waitLogWithin(persistenceChecked, bound)
	if n := strings.Count(g.logs.String(), nothingOnDisk); n != 1 {
		t.Errorf("%d lines say %q on a Redis with --save \"\" --appendonly no, want 1", n, nothingOnDisk)
	}
}

// A Redis with AOF on gets no warning about persistence.
func TestNoPersistenceWarningWithAOF(t *testing.T) {
	srv := redistest.StartArgs(t, "--appendonly", "yes")
	g := startGatewayOn(t, srv.URL(), startUpstream(t), gatewayConfig{})
	g.waitLogWithin(persistenceChecked, 10*time.Second)
	if strings.Contains(g.logs.String(), "keeps nothing on disk") || strings.Contains(g.logs.String(), "keeps only snapshots") {
		t.Errorf("a persistence warning with appendonly yes:\n%s", g.logs.String())
	}
}

// logLines returns the JSON log lines whose message contains msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		out = append(out, v)
	}
	return out
}
