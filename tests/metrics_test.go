package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/metricstest"
)

// scrape reads the admin endpoint's /metrics, as Prometheus would.
func (g *gateway) scrape() metricstest.Families {
	g.t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		g.t.Fatalf("scraping /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("scraping /metrics: %d", resp.StatusCode)
	}
	return metricstest.Parse(g.t, resp.Body)
}

// healthSite turns the health route on (and the pages, for a sign-in).
const healthSite = "health_path /healthz\n\t\t" + uiSite

// Known traffic, then a scrape of the admin endpoint's /metrics: every
// count moved by exactly what the traffic did (deltas from a scrape
// taken before it), on both stores; no series names a user or a token.
func TestMetricsCountKnownTraffic(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: healthSite})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		good, _ := createPAT(t, g, "alice", alicePassword, `{"label":"good"}`)
		revoked, revokedID := createPAT(t, g, "alice", alicePassword, `{"label":"revoked"}`)
		client := addClient(t, g, "metrics")
		// The first token request creates the keyring (which empties the
		// cache on every node): before the baseline.
		requestToken(t, g.base, client, nil, "")

		before := g.scrape()
		for i := range 3 {
			if r := do(t, http.MethodGet, g.base+"/data", bearer(good), ""); r.status != http.StatusOK {
				t.Fatalf("good token %d: %d %s", i, r.status, r.body)
			}
		}
		if r := do(t, http.MethodDelete, g.base+"/api-user/tokens/"+revokedID, basic("alice", alicePassword), ""); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		for i := range 2 {
			if r := do(t, http.MethodGet, g.base+"/data", bearer(revoked), ""); r.status != http.StatusUnauthorized {
				t.Fatalf("revoked token %d: %d %s", i, r.status, r.body)
			}
		}
		if r := do(t, http.MethodGet, g.base+"/data", bearer("not-a-token"), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("malformed token: %d %s", r.status, r.body)
		}
		requestToken(t, g.base, client, nil, "")
		if r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(client.ID, client.Secret+"x"), ccGrant); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong client secret: %d %s", r.status, r.body)
		}
		if r := do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", "wrong password"), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d %s", r.status, r.body)
		}
		form := url.Values{"name": {"alice"}, "password": {"wrong password"}}.Encode()
		if r := do(t, http.MethodPost, g.base+"/account/signin", map[string][]string{
			"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {g.base},
		}, form); r.status != http.StatusUnauthorized {
			t.Fatalf("web sign-in with a wrong password: %d", r.status)
		}
		if r := do(t, http.MethodGet, g.base+"/healthz", nil, ""); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"store":"ok"}` {
			t.Fatalf("health: %d %s", r.status, r.body)
		}
		after := g.scrape()

		L := metricstest.L
		delta := func(name string, labels map[string]string) float64 {
			return after.Value(name, labels) - before.Value(name, labels)
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"tokengate_decisions_total", L("result", "allowed", "reason", "ok", "kind", "pat"), 3},
			{"tokengate_decisions_total", L("result", "refused", "reason", "invalid_token", "kind", "pat"), 2},
			{"tokengate_decisions_total", L("result", "refused", "reason", "malformed_token", "kind", "malformed"), 1},
			// Nothing else was decided: the token API, the token endpoint,
			// the pages and the health route are the gateway's own.
			{"tokengate_decisions_total", nil, 6},
			{"tokengate_decision_duration_seconds", nil, 6},
			{"tokengate_token_requests_total", L("grant_type", "client_credentials", "result", "issued"), 1},
			{"tokengate_token_requests_total", L("grant_type", "client_credentials", "result", "invalid_client"), 1},
			{"tokengate_sign_ins_total", L("source", "tokens_api", "result", "invalid_credentials"), 1},
			{"tokengate_sign_ins_total", L("source", "tokens_api", "result", "ok"), 1}, // the revocation
			{"tokengate_sign_ins_total", L("source", "web", "result", "invalid_credentials"), 1},
			{"tokengate_store_errors_total", nil, 0},
			{"tokengate_audit_write_failures_total", nil, 0},
		} {
			if got := delta(c.name, c.labels); got != c.want {
				t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			least  float64
		}{
			// The good token's first use and the revoked token's (at
			// least: an invalidation may empty the cache once more).
			{"tokengate_store_operations_total", L("operation", "LookupToken"), 2},
			{"tokengate_store_operations_total", L("operation", "DeleteToken"), 1},
			{"tokengate_store_operation_duration_seconds", L("operation", "LookupToken"), 2},
			{"tokengate_cache_misses_total", nil, 2},
			{"tokengate_cache_hits_total", nil, 1},
			{"tokengate_cache_negative_hits_total", nil, 1},
			{"tokengate_invalidation_events_total", L("kind", "token"), 1},
		} {
			if got := delta(c.name, c.labels); got < c.least {
				t.Errorf("%s%v moved by %v, want at least %v", c.name, c.labels, got, c.least)
			}
		}
		if after.Value("tokengate_cache_entries", nil) < 1 || after.Value("tokengate_store_breaker_open", nil) != 0 {
			t.Errorf("cache entries %v, breaker open %v", after.Value("tokengate_cache_entries", nil), after.Value("tokengate_store_breaker_open", nil))
		}
		for _, name := range []string{"tokengate_cache_evictions_total", "tokengate_store_breaker_opens_total", "tokengate_invalidation_resets_total"} {
			if _, ok := after[name]; !ok {
				t.Errorf("%s is not exported", name)
			}
		}
		// Bounded labels: no series names the user, a token or its id.
		for name, mf := range after {
			if !strings.HasPrefix(name, "tokengate_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					for _, secret := range []string{"alice", good, revoked, revokedID, client.ID, client.Secret} {
						if strings.Contains(lp.GetValue(), secret) {
							t.Errorf("%s has a label %s=%q", name, lp.GetName(), lp.GetValue())
						}
					}
				}
			}
		}
	})
}

// The health route answers 200 while the store is reachable, 503 with
// Retry-After (and the breaker's gauge says 1) while Redis is frozen, and
// 200 again once it goes on. It is never proxied.
func TestHealthRouteFollowsTheStore(t *testing.T) {
	up := startUpstream(t)
	g, srv := startOnOwnRedis(t, up, gatewayConfig{
		appOptions:  "store_breaker {\n\t\t\tretry_after 3s\n\t\t}",
		siteOptions: "health_path /healthz",
	})
	health := func() response { return do(t, http.MethodGet, g.base+"/healthz", nil, "") }
	// healthIs waits (bounded) until the route answers status: the store
	// is attached in the background after the gateway starts serving, and
	// the breaker opens after its probe fails.
	healthIs := func(status int) response {
		var r response
		eventually(15*time.Second, func() bool { r = health(); return r.status == status }) // the caller checks r
		return r
	}
	if r := healthIs(http.StatusOK); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"store":"ok"}` ||
		r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("health with the store up: %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, http.MethodPost, g.base+"/healthz", nil, ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST to the health route: %d", r.status)
	}
	opens := g.scrape().Value("tokengate_store_breaker_opens_total", nil)

	srv.Pause(t)
	defer srv.Resume(t) // a failed check must not leave it frozen (SIGCONT twice is harmless)
	r := healthIs(http.StatusServiceUnavailable)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "3" ||
		strings.TrimSpace(string(r.body)) != `{"store":"unavailable"}` {
		t.Fatalf("health with Redis frozen: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	m := g.scrape()
	if m.Value("tokengate_store_breaker_open", nil) != 1 || m.Value("tokengate_store_breaker_opens_total", nil) != opens+1 {
		t.Errorf("breaker open %v, opens %v (before %v)", m.Value("tokengate_store_breaker_open", nil),
			m.Value("tokengate_store_breaker_opens_total", nil), opens)
	}
	// A request that needs the store is refused at once, and counted so.
	if r := do(t, http.MethodGet, g.base+"/data", bearer(fakePAT(t)), ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("uncached token with Redis frozen: %d", r.status)
	}
	m2 := g.scrape()
	if d := m2.Value("tokengate_decisions_total", metricstest.L("result", "error", "reason", "unavailable", "kind", "pat")) -
		m.Value("tokengate_decisions_total", metricstest.L("result", "error", "reason", "unavailable", "kind", "pat")); d != 1 {
		t.Errorf("unavailable decisions moved by %v, want 1", d)
	}
	if d := m2.Value("tokengate_store_errors_total", metricstest.L("operation", "LookupToken", "reason", "refused")) -
		m.Value("tokengate_store_errors_total", metricstest.L("operation", "LookupToken", "reason", "refused")); d != 1 {
		t.Errorf("refused LookupToken moved by %v, want 1", d)
	}

	srv.Resume(t)
	if r = healthIs(http.StatusOK); r.status != http.StatusOK {
		t.Fatalf("health after Redis went on: %d %s", r.status, r.body)
	}
	if up.count() != 0 {
		t.Errorf("%d requests reached the upstream", up.count())
	}
}
