package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
)

// TestTokenPolicyLifetimes: with token_policy, a PAT asked to live longer
// than pat_max_lifetime is refused by the HTTP token API with a JSON error
// naming the field and the maximum, a PAT without expires_in gets the
// maximum, /rest/token gives legacy_max_lifetime (legacy_token_ttl is not
// set), a change above the legacy maximum is refused through the CLI, and
// `tokengate tokens expiring` lists them nearest first.
func TestTokenPolicyLifetimes(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{
			appOptions: "token_policy {\n\t\t\tpat_max_lifetime 90d\n\t\t\tlegacy_max_lifetime 30d\n\t\t}",
		})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		grantUse(g, "--user", "alice")

		r := do(t, http.MethodPost, g.base+"/api-user/tokens", basic("alice", alicePassword), `{"label":"long","expires_in":7776001}`)
		if r.status != http.StatusBadRequest {
			t.Fatalf("a PAT above the maximum: %d %s", r.status, r.body)
		}
		v := r.json(t)
		if v["error"] != "invalid_request" || v["field"] != "expires_in" ||
			v["error_description"] != "expires_in must be at most 7776000 seconds (90 days) by the token policy" {
			t.Errorf("refusal %s", r.body)
		}

		before := time.Now()
		r = do(t, http.MethodPost, g.base+"/api-user/tokens", basic("alice", alicePassword), `{"label":"ci"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("a PAT without expires_in: %d %s", r.status, r.body)
		}
		patID := r.json(t)["id"].(string)
		wantAbout(t, "the PAT's expires_at", r.json(t)["expires_at"], before, 90*24*time.Hour)

		before = time.Now()
		r = do(t, http.MethodGet, g.base+"/rest/token", withJSON(curlBasic("alice", alicePassword)), "")
		if r.status != http.StatusOK {
			t.Fatalf("/rest/token: %d %s", r.status, r.body)
		}
		legacyID := r.json(t)["id"].(string)
		wantAbout(t, "the legacy token's expires_at", r.json(t)["expires_at"], before, 30*24*time.Hour)

		out, err := g.cli("", "user", "token-set", "alice", legacyID, "--expires-in", "2678400")
		if err == nil || !strings.Contains(out, "must be at most 2592000 seconds (30 days) by the token policy") {
			t.Errorf("a legacy token set above its maximum: %v\n%s", err, out)
		}

		out = g.mustCLI("", "tokens", "expiring", "--within", "31d")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "OWNER") || !strings.Contains(lines[1], legacyID) || !strings.Contains(lines[1], "expiry") {
			t.Errorf("tokens expiring --within 31d:\n%s", out)
		}
		out = g.mustCLI("", "tokens", "expiring", "--within", "100d")
		lines = strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], legacyID) || !strings.Contains(lines[2], patID) {
			t.Errorf("tokens expiring --within 100d, want the legacy token then the PAT:\n%s", out)
		}
		if out, err := g.cli("", "tokens", "expiring", "--within", "soon"); err == nil || !strings.Contains(out, "within") {
			t.Errorf("a bad --within: %v\n%s", err, out)
		}
	})
}

// wantAbout checks that the JSON time v is from+d, give or take the time
// the request took (a bound on the clock, not on speed).
func wantAbout(t *testing.T, what string, v any, from time.Time, d time.Duration) {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %v: %v", what, v, err)
	}
	if at.Before(from.Add(d).Add(-time.Second)) || at.After(time.Now().Add(d).Add(time.Second)) {
		t.Errorf("%s = %v, want about %v", what, at, from.Add(d))
	}
}

// TestTokenPolicyDormancy: with a short dormancy rule, a token nobody
// uses is warned (token.dormant_soon to the webhook), then switched off
// (token.dormant, at least dormancy_warning after the warning) and
// refused at the edge, with an audit line; a token used all along is
// neither; switched on again, the dormant token works.
func TestTokenPolicyDormancy(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		rc := startReceiver(t, webhookSecret)
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{
			appOptions: eventsOptions(rc.srv.URL+"/hook", "TG_WEBHOOK_SECRET") +
				"\n\t\ttoken_policy {\n\t\t\tdormant_after 6s\n\t\t\tdormancy_warning 3s\n\t\t\tscan_interval 1s\n\t\t}",
			env: []string{"TG_WEBHOOK_SECRET=" + webhookSecret},
		})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		idle, idleID := createPAT(t, g, "alice", alicePassword, `{"label":"idle"}`)
		busy, busyID := createPAT(t, g, "alice", alicePassword, `{"label":"busy"}`)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the busy token is used every 200 ms
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if r, err := exchange(http.DefaultClient, http.MethodGet, g.base+"/orders", bearer(busy), ""); err == nil && r.status != http.StatusOK {
					t.Errorf("the busy token was refused: %d %s", r.status, r.body)
					return
				}
			}
		}()

		warned := rc.wait(events.TokenDormantSoon, idleID)
		dormant := rc.wait(events.TokenDormant, idleID)
		close(stop)
		wg.Wait()
		if warned.HashedToken != sha256Hex(idle) || dormant.HashedToken != sha256Hex(idle) || dormant.Actor != "system" {
			t.Errorf("events %+v %+v", warned, dormant)
		}
		if dormant.Time.Sub(warned.Time) < 3*time.Second {
			t.Errorf("switched off %v after the warning, want at least dormancy_warning (3s)", dormant.Time.Sub(warned.Time))
		}
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(idle), ""); r.status != http.StatusUnauthorized {
			t.Errorf("the dormant token: %d %s", r.status, r.body)
		}
		if !g.logHas("switched off for disuse") {
			t.Error("no audit line for the switch-off")
		}
		if n := len(rc.find(events.TokenDormantSoon, busyID)) + len(rc.find(events.TokenDormant, busyID)); n != 0 {
			t.Errorf("%d dormancy events about the token used all along", n)
		}
		if n := len(rc.find(events.TokenDormantSoon, idleID)); n != 1 {
			t.Errorf("%d warnings about the idle token, want 1", n)
		}

		g.mustCLI("", "user", "token-set", "alice", idleID, "--enabled=true")
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(idle), ""); r.status != http.StatusOK {
			t.Errorf("switched on again: %d %s", r.status, r.body)
		}
		g.assertNoSecrets(idle, busy, webhookSecret)
	})
}

// TestTokenPolicyRotationBounds: tokens made before the policy (a PAT
// without expiry, a legacy token of the 100-year default) are listed
// beyond_max_lifetime after a reload turns the policy on, and a rotation,
// through the token API or by the legacy token's holder at
// /rest/token/rotate, gives the new secret the maximum from now.
func TestTokenPolicyRotationBounds(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	grantUse(g, "--user", "alice")
	_, patID := createPAT(t, g, "alice", alicePassword, `{"label":"forever"}`)
	legacy, legacyID := legacyToken(t, g, "alice", alicePassword)

	path := filepath.Join(g.dir, "Caddyfile")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	policy := "bcrypt_cost 4\n\t\ttoken_policy {\n\t\t\tpat_max_lifetime 90d\n\t\t\tlegacy_max_lifetime 30d\n\t\t}"
	if err := os.WriteFile(path, []byte(strings.Replace(string(raw), "bcrypt_cost 4", policy, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := g.cli("", "reload", "--config", path, "--adapter", "caddyfile"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	out := g.mustCLI("", "tokens", "expiring")
	if n := strings.Count(out, "true"); n != 2 || !strings.Contains(out, patID) || !strings.Contains(out, legacyID) {
		t.Fatalf("tokens expiring after the policy came in, want both tokens beyond the maximum:\n%s", out)
	}

	before := time.Now()
	r := do(t, http.MethodPost, g.base+"/api-user/tokens/"+patID+"/rotate", basic("alice", alicePassword), `{"overlap":"0"}`)
	if r.status != http.StatusOK {
		t.Fatalf("PAT rotate: %d %s", r.status, r.body)
	}
	wantAbout(t, "the rotated PAT's expires_at", r.json(t)["expires_at"], before, 90*24*time.Hour)

	before = time.Now()
	r = do(t, http.MethodPost, g.base+"/rest/token/rotate?overlap=0", withJSON(bearer(legacy)), "")
	if r.status != http.StatusOK {
		t.Fatalf("legacy rotate: %d %s", r.status, r.body)
	}
	wantAbout(t, "the rotated legacy token's expires_at", r.json(t)["expires_at"], before, 30*24*time.Hour)

	out = g.mustCLI("", "tokens", "expiring")
	if strings.Contains(out, "true") {
		t.Errorf("tokens expiring after the rotations, want none beyond the maximum:\n%s", out)
	}
}
