package tests

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/tokengate/tokengate/internal/token"
)

// TestUnknownTokenFloodIsLimited: made-up tokens with a valid checksum
// cost a store look-up each only up to token_failure_limit per client
// address; then 429 with Retry-After and a JSON body, while a good token
// already in the cache keeps working from the same address.
func TestUnknownTokenFloodIsLimited(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: "token_failure_limit 5 1m"})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		tok, _ := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
		if r := do(t, http.MethodGet, g.base+"/x", bearer(tok), ""); r.status != http.StatusOK {
			t.Fatalf("good token: %d %s", r.status, r.body)
		}
		fake := func(legacy bool) string {
			f, err := token.NewPAT()
			if legacy {
				f, err = token.NewLegacy()
			}
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		for i := range 5 {
			r := do(t, http.MethodGet, g.base+"/x", bearer(fake(i%2 == 1)), "")
			assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_token")
		}
		for i := range 3 {
			r := do(t, http.MethodGet, g.base+"/x", bearer(fake(i%2 == 1)), "")
			assertRefused(t, g, up, r, http.StatusTooManyRequests, "rate_limited")
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
				t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
			}
		}
		if r := do(t, http.MethodGet, g.base+"/x", bearer(tok), ""); r.status != http.StatusOK {
			t.Fatalf("a cached good token from the flooding address: %d %s", r.status, r.body)
		}
		g.assertNoSecrets(tok)
	})
}
