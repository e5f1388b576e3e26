package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
	"github.com/tokengate/tokengate/internal/token"
)

// fastBound is how long an answer may take once the store's circuit
// breaker is open: far below the 5 s look-up timeout a request waited
// before. A bound on waiting, not a speed claim.
const fastBound = 2 * time.Second

// Breaker log lines.
const (
	breakerOpened = "store circuit breaker opened"
	breakerClosed = "store circuit breaker closed"
)

// startOnOwnRedis runs a gateway on a redis-server of its own, which the
// test may freeze without disturbing other tests.
func startOnOwnRedis(t *testing.T, up *upstream, cfg gatewayConfig) (*gateway, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return startGatewayOn(t, srv.URL(), up, cfg), srv
}

// fakePAT is a well-formed PAT that no store holds (never cached).
func fakePAT(t *testing.T) string {
	t.Helper()
	f, err := token.NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// timed sends a request and fails t if the answer took longer than
// fastBound.
func timed(t *testing.T, what, method, url string, headers map[string][]string, body string) response {
	t.Helper()
	start := time.Now()
	r := do(t, method, url, headers, body)
	if took := time.Since(start); took > fastBound {
		t.Errorf("%s took %v with the breaker open, want under %v", what, took, fastBound)
	}
	return r
}

// assertUnavailable checks a 503 that says when to come back.
func assertUnavailable(t *testing.T, what string, r response, retryAfter string) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != retryAfter {
		t.Errorf("%s: %d, Retry-After %q (want 503 with Retry-After %s): %s", what, r.status, r.header.Get("Retry-After"), retryAfter, r.body)
	}
}

// With Redis frozen (SIGSTOP), the breaker opens after a failed probe;
// from then on every request that needs the store gets 503 with
// Retry-After at once (the edge, the PAT API, /rest/token, the token
// endpoint, the sign-in page), a cached token keeps working, and once
// Redis goes on (SIGCONT) a probe closes the breaker and everything works
// again. Opening and closing are logged once each.
func TestFrozenStoreFailsFast(t *testing.T) {
	up := startUpstream(t)
	g, srv := startOnOwnRedis(t, up, gatewayConfig{
		appOptions:  "store_breaker {\n\t\t\tretry_after 3s\n\t\t}",
		siteOptions: uiSite,
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	tok, _ := createPAT(t, g, "alice", alicePassword, `{"label":"cached"}`)
	if r := do(t, http.MethodGet, g.base+"/data", bearer(tok), ""); r.status != http.StatusOK {
		t.Fatalf("token before the freeze: %d %s", r.status, r.body)
	}
	c := addClient(t, g, "frozen")

	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) }) // before the gateway stops (cleanups run last first)
	g.waitLog(breakerOpened)

	r := timed(t, "an uncached token", http.MethodGet, g.base+"/data", bearer(fakePAT(t)), "")
	assertUnavailable(t, "an uncached token", r, "3")
	if r.status == http.StatusServiceUnavailable && r.json(t)["error"] != "temporarily_unavailable" {
		t.Errorf("503 body: %s", r.body)
	}
	if r := timed(t, "the cached token", http.MethodGet, g.base+"/data", bearer(tok), ""); r.status != http.StatusOK {
		t.Errorf("the cached token with the store down: %d %s", r.status, r.body)
	}
	assertUnavailable(t, "the PAT API", timed(t, "the PAT API", http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), ""), "3")
	assertUnavailable(t, "/rest/token", timed(t, "/rest/token", http.MethodGet, g.base+"/rest/token", withJSON(curlBasic("alice", alicePassword)), ""), "3")
	assertUnavailable(t, "the token endpoint", timed(t, "the token endpoint", http.MethodPost, g.base+tokenPath, clientBasic(c.ID, c.Secret), ccGrant), "3")
	form := url.Values{"name": {"alice"}, "password": {alicePassword}}.Encode()
	signIn := map[string][]string{"Content-Type": {formType}, "Origin": {g.base}}
	assertUnavailable(t, "the sign-in page", timed(t, "the sign-in page", http.MethodPost, g.base+"/account/signin", signIn, form), "3")
	if up.count() != 2 { // the token before the freeze, and the cached one during
		t.Errorf("the upstream saw %d requests, want 2", up.count())
	}

	srv.Resume(t)
	g.waitLog(breakerClosed)
	if r := do(t, http.MethodGet, g.base+"/data", bearer(fakePAT(t)), ""); r.status != http.StatusUnauthorized {
		t.Errorf("an unknown token after the store is back: %d %s", r.status, r.body)
	}
	fresh, _ := createPAT(t, g, "alice", alicePassword, `{"label":"after"}`)
	if r := do(t, http.MethodGet, g.base+"/data", bearer(fresh), ""); r.status != http.StatusOK {
		t.Errorf("a new token after the store is back: %d %s", r.status, r.body)
	}
	requestToken(t, g.base, c, nil, "")
	logs := g.logs.String()
	if n := strings.Count(logs, breakerOpened); n != 1 {
		t.Errorf("%d lines say the breaker opened, want 1", n)
	}
	if n := strings.Count(logs, breakerClosed); n != 1 {
		t.Errorf("%d lines say the breaker closed, want 1", n)
	}
	g.assertNoSecrets(tok, fresh, c.Secret, alicePassword)
}

// A cached decision outlives its cache_ttl while the store is down only
// by stale_window: with 0 (the default) the token fails closed (503) once
// its TTL ran out; with a window it keeps working, but a token that was
// revoked (its cached answer a refusal) never comes back to life.
func TestStaleWindow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		window     string
		goodStatus int
	}{
		{"fail closed", "0", http.StatusServiceUnavailable},
		{"one minute", "1m", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t)
			g, srv := startOnOwnRedis(t, up, gatewayConfig{
				appOptions: "cache_ttl 1s\n\t\tstore_breaker {\n\t\t\tstale_window " + tc.window + "\n\t\t}",
			})
			g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
			good, _ := createPAT(t, g, "alice", alicePassword, `{"label":"good"}`)
			revoked, id := createPAT(t, g, "alice", alicePassword, `{"label":"revoked"}`)
			for _, tok := range []string{good, revoked} {
				if r := do(t, http.MethodGet, g.base+"/data", bearer(tok), ""); r.status != http.StatusOK {
					t.Fatalf("before the freeze: %d %s", r.status, r.body)
				}
			}
			if r := do(t, http.MethodDelete, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), ""); r.status != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			filled := time.Now()
			for _, tok := range []string{good, revoked} {
				do(t, http.MethodGet, g.base+"/data", bearer(tok), "") // cache both answers afresh
			}

			srv.Pause(t)
			t.Cleanup(func() { srv.Resume(t) })
			g.waitLog(breakerOpened)
			time.Sleep(time.Until(filled.Add(2500 * time.Millisecond))) // cache_ttl (1s) has run out

			r := timed(t, "the good token", http.MethodGet, g.base+"/data", bearer(good), "")
			if r.status != tc.goodStatus {
				t.Errorf("the good token past its TTL, stale_window %s: %d, want %d: %s", tc.window, r.status, tc.goodStatus, r.body)
			}
			assertUnavailable(t, "the revoked token", timed(t, "the revoked token", http.MethodGet, g.base+"/data", bearer(revoked), ""), "1")
		})
	}
}
