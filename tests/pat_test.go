package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const alicePassword = "correct horse battery"

// createPAT creates a token through the HTTP API and returns the secret
// and the token's id.
func createPAT(t *testing.T, g *gateway, user, password, body string) (secret, id string) {
	t.Helper()
	r := do(t, http.MethodPost, g.base+"/api-user/tokens", basic(user, password), body)
	if r.status != http.StatusCreated {
		t.Fatalf("create token: %d %s", r.status, r.body)
	}
	v := r.json(t)
	secret, _ = v["token"].(string)
	id, _ = v["id"].(string)
	if !strings.HasPrefix(secret, "tgp_") || id == "" {
		t.Fatalf("create token returned %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer is cacheable: %q", r.header.Get("Cache-Control"))
	}
	return secret, id
}

// assertRefused checks a refusal: its status, JSON error code and content
// type. (Tests that also need the upstream untouched compare up.count().)
func assertRefused(t *testing.T, g *gateway, up *upstream, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.json(t)["error"]; got != code {
		t.Fatalf("error %q, want %q: %s", got, code, r.body)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
}

// TestPATEndToEnd walks the path a user takes: create a user, allow token
// login, create a PAT, call the upstream with it, see the identity headers,
// revoke it, and be refused.
func TestPATEndToEnd(t *testing.T) {
	forEachTopology(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})

		out := g.mustCLI(alicePassword+"\n", "user", "add", "Alice")
		if !strings.Contains(out, `"name": "alice"`) || !strings.Contains(out, `"token_login": false`) {
			t.Fatalf("user add printed %s", out)
		}

		// Without token_login, the token API is closed to alice.
		r := do(t, http.MethodPost, g.base+"/api-user/tokens", basic("alice", alicePassword), `{"label":"laptop"}`)
		assertRefused(t, g, up, r, http.StatusForbidden, "forbidden")

		g.mustCLI("", "user", "set", "alice", "--token-login")
		secret, id := createPAT(t, g, "alice", alicePassword, `{"label":"laptop","scopes":["read","write"]}`)

		// A client tries to smuggle identity headers in several spellings.
		h := bearer(secret)
		h["X-Auth-User"] = []string{"admin"}
		h["X_Auth_User"] = []string{"admin"}
		h["x_auth_token_type"] = []string{"oauth"}
		r = do(t, http.MethodGet, g.base+"/orders?id=7", h, "")
		if r.status != http.StatusOK {
			t.Fatalf("call with PAT: %d %s", r.status, r.body)
		}
		seen := up.last(t)
		want := map[string]string{
			"X-Auth-User": "alice", "X-Auth-Token-Type": "pat", "X-Auth-Token-Id": id, "X-Auth-Scopes": "read write",
		}
		for k, v := range want {
			if got := seen.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream saw %s = %q, want %q", k, got, v)
			}
		}
		for k := range seen.Header {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "x-auth-user") && k != "X-Auth-User" {
				t.Errorf("smuggled header %q reached the upstream", k)
			}
		}
		if seen.Header.Get("Authorization") != "" {
			t.Error("the bearer token travelled on to the upstream")
		}

		// The list shows the token's metadata and its last access, never
		// the secret.
		r = do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), "")
		if r.status != http.StatusOK || strings.Contains(string(r.body), secret) {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		tokens := r.json(t)["tokens"].([]any)
		tok := tokens[0].(map[string]any)
		if len(tokens) != 1 || tok["id"] != id || tok["label"] != "laptop" || tok["last_used_at"] == nil || tok["last_used_ip"] != "127.0.0.1" {
			t.Fatalf("list: %s", r.body)
		}

		// Revoke: refused on the next request.
		r = do(t, http.MethodDelete, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), "")
		if r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		before := up.count()
		r = do(t, http.MethodGet, g.base+"/orders", bearer(secret), "")
		assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_token")
		if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) || !strings.HasPrefix(ch, "Bearer ") {
			t.Errorf("challenge %q", ch)
		}
		if up.count() != before {
			t.Error("a revoked token reached the upstream")
		}
		g.assertNoSecrets(secret, alicePassword)
	})
}

// TestTurningOffReachesTokens: switching a token off, turning off the
// owner's token_login, disabling or deleting the owner all refuse the token
// on the next request.
func TestTurningOffReachesTokens(t *testing.T) {
	forEachTopology(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		secret, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
		call := func() response { return do(t, http.MethodGet, g.base+"/", bearer(secret), "") }
		if r := call(); r.status != http.StatusOK {
			t.Fatalf("fresh token: %d %s", r.status, r.body)
		}
		steps := []struct {
			name      string
			off, on   func()
			wantError string
		}{
			{"token switched off",
				func() { patch(t, g, id, `{"enabled":false}`) },
				func() { patch(t, g, id, `{"enabled":true}`) }, "invalid_token"},
			{"token_login off",
				func() { g.mustCLI("", "user", "set", "alice", "--token-login=false") },
				func() { g.mustCLI("", "user", "set", "alice", "--token-login=true") }, "invalid_token"},
			{"user disabled",
				func() { g.mustCLI("", "user", "set", "alice", "--disabled") },
				func() { g.mustCLI("", "user", "set", "alice", "--disabled=false") }, "invalid_token"},
		}
		for _, s := range steps {
			s.off()
			assertRefused(t, g, up, call(), http.StatusUnauthorized, s.wantError)
			s.on()
			if r := call(); r.status != http.StatusOK {
				t.Fatalf("%s, back on: %d %s", s.name, r.status, r.body)
			}
		}
		if out := g.mustCLI("", "user", "tokens", "alice"); !strings.Contains(out, id) || !strings.Contains(out, "ci") {
			t.Fatalf("user tokens: %s", out)
		}
		g.mustCLI("", "user", "delete", "alice")
		assertRefused(t, g, up, call(), http.StatusUnauthorized, "invalid_token")
		g.assertNoSecrets(secret, alicePassword)
	})
}

func patch(t *testing.T, g *gateway, id, body string) {
	t.Helper()
	r := do(t, http.MethodPatch, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), body)
	if r.status != http.StatusOK {
		t.Fatalf("patch %s: %d %s", body, r.status, r.body)
	}
}

// TestBadInput: every malformed request gets a 4xx with a JSON body that
// names the problem, and the store is unchanged.
func TestBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"Deploy"}`)
		auth := basic("alice", alicePassword)
		tests := []struct {
			name    string
			method  string
			headers map[string][]string
			body    string
			status  int
			field   string
		}{
			{"duplicate label, other case", "POST", auth, `{"label":"  deploy "}`, 409, "label"},
			{"empty label", "POST", auth, `{"label":"   "}`, 400, "label"},
			{"21 characters", "POST", auth, `{"label":"` + strings.Repeat("я", 21) + `"}`, 400, "label"},
			{"unknown field", "POST", auth, `{"label":"x","admin":true}`, 400, "admin"},
			{"wrong type", "POST", auth, `{"label":"x","scopes":"read"}`, 400, "scopes"},
			{"bad scope", "POST", auth, `{"label":"x","scopes":["a b"]}`, 400, "scopes"},
			{"bad expiry", "POST", auth, `{"label":"x","expires_in":-5}`, 400, "expires_in"},
			{"bad CIDR", "POST", auth, `{"label":"x","allowed_ips":["10.0.0.0/33"]}`, 400, "allowed_ips"},
			{"malformed JSON", "POST", auth, `{"label":`, 400, ""},
			{"too large", "POST", auth, `{"label":"` + strings.Repeat("a", 70000) + `"}`, 413, ""},
			{"wrong content type", "POST", map[string][]string{"Authorization": auth["Authorization"], "Content-Type": {"text/plain"}}, `{"label":"x"}`, 415, ""},
			{"wrong password", "POST", basic("alice", "wrong password"), `{"label":"x"}`, 401, ""},
			{"unknown user", "POST", basic("mallory", "whatever1"), `{"label":"x"}`, 401, ""},
			{"no credentials", "POST", map[string][]string{"Content-Type": {"application/json"}}, `{"label":"x"}`, 401, ""},
			{"two Authorization headers", "POST", map[string][]string{"Authorization": {auth["Authorization"][0], auth["Authorization"][0]}, "Content-Type": {"application/json"}}, `{"label":"x"}`, 400, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := do(t, tt.method, g.base+"/api-user/tokens", tt.headers, tt.body)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				v := r.json(t)
				if v["error"] == nil || v["error_description"] == nil {
					t.Fatalf("body does not name the problem: %s", r.body)
				}
				if tt.field != "" && v["field"] != tt.field {
					t.Fatalf("field %v, want %q: %s", v["field"], tt.field, r.body)
				}
			})
		}
		r := do(t, http.MethodGet, g.base+"/api-user/tokens", auth, "")
		if n := len(r.json(t)["tokens"].([]any)); n != 1 {
			t.Fatalf("bad requests changed the store: %d tokens", n)
		}

		// Bearer side: garbage, several headers, wrong checksum, no token.
		edge := []struct {
			name    string
			headers map[string][]string
			status  int
			code    string
			noError bool
		}{
			{"no token", nil, 401, "unauthorized", true},
			{"basic on a guarded route", basic("alice", alicePassword), 401, "unauthorized", true},
			{"garbage", bearer("garbage!"), 401, "invalid_token", false},
			{"wrong checksum", bearer(secret[:len(secret)-1] + flip(secret[len(secret)-1])), 401, "invalid_token", false},
			{"unknown well-formed", bearer("e444c69894d2087696e0a6c6914788f67ebcf6ee"), 401, "invalid_token", false},
			{"two Authorization headers", map[string][]string{"Authorization": {"Bearer " + secret, "Bearer " + secret}}, 400, "invalid_request", false},
			{"oversized", bearer(strings.Repeat("a", 5000)), 401, "invalid_token", false},
		}
		for _, tt := range edge {
			t.Run(tt.name, func(t *testing.T) {
				before := up.count()
				r := do(t, http.MethodGet, g.base+"/", tt.headers, "")
				assertRefused(t, g, up, r, tt.status, tt.code)
				ch := r.header.Get("WWW-Authenticate")
				if tt.noError && (ch != `Bearer realm="tokengate"`) {
					t.Errorf("challenge %q, want one without error", ch)
				}
				if !tt.noError && !strings.Contains(ch, `error="`+tt.code+`"`) {
					t.Errorf("challenge %q lacks error=%q", ch, tt.code)
				}
				if up.count() != before {
					t.Error("a refused request reached the upstream")
				}
			})
		}
		g.assertNoSecrets(secret, alicePassword)
	})
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestRequireScope: a route's require_scope refuses tokens without it.
func TestRequireScope(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: "require_scope write"})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	reader, _ := createPAT(t, g, "alice", alicePassword, `{"label":"reader","scopes":["read"]}`)
	writer, _ := createPAT(t, g, "alice", alicePassword, `{"label":"writer","scopes":["read","write"]}`)
	r := do(t, http.MethodGet, g.base+"/", bearer(reader), "")
	assertRefused(t, g, up, r, http.StatusForbidden, "insufficient_scope")
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="write"`) {
		t.Errorf("challenge %q", ch)
	}
	if r := do(t, http.MethodGet, g.base+"/", bearer(writer), ""); r.status != http.StatusOK {
		t.Fatalf("writer refused: %d %s", r.status, r.body)
	}
}

// TestIPAllowListUsesTrustedProxiesOnly: a token's allow-list is checked
// against the client address as Caddy computes it, so X-Forwarded-For
// counts only from a trusted proxy.
func TestIPAllowListUsesTrustedProxiesOnly(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"office","allowed_ips":["203.0.113.0/24"]}`)
	spoofed := bearer(secret)
	spoofed["X-Forwarded-For"] = []string{"203.0.113.7"}

	// The listener that does not trust 127.0.0.1: the header is ignored.
	assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/", spoofed, ""), http.StatusForbidden, "ip_not_allowed")
	// The listener that trusts 127.0.0.1 as a proxy: the header counts.
	if r := do(t, http.MethodGet, g.trusted+"/", spoofed, ""); r.status != http.StatusOK {
		t.Fatalf("through a trusted proxy: %d %s", r.status, r.body)
	}
	assertRefused(t, g, up, do(t, http.MethodGet, g.trusted+"/", bearer(secret), ""), http.StatusForbidden, "ip_not_allowed")
}

// TestStoreDown: an unreachable store is a 503, not a 401 and not a
// crash; a token already cached keeps working; the gateway recovers (at
// the store breaker's next probe: until then it answers 503 at once).
func TestStoreDown(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, redisKV, up, gatewayConfig{})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"hot"}`)
	if r := do(t, http.MethodGet, g.base+"/", bearer(secret), ""); r.status != http.StatusOK {
		t.Fatalf("warm-up: %d", r.status)
	}
	redis.Stop()
	t.Cleanup(func() { redis.Restart(t) })
	unknown := "0123456789abcdef0123456789abcdef01234567"
	r := do(t, http.MethodGet, g.base+"/", bearer(unknown), "")
	assertRefused(t, g, up, r, http.StatusServiceUnavailable, "temporarily_unavailable")
	if r := do(t, http.MethodGet, g.base+"/", bearer(secret), ""); r.status != http.StatusOK {
		t.Fatalf("cached token while the store is down: %d %s", r.status, r.body)
	}
	r = do(t, http.MethodPost, g.base+"/api-user/tokens", basic("alice", alicePassword), `{"label":"x"}`)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("token API while the store is down: %d %s", r.status, r.body)
	}
	redis.Restart(t)
	deadline := time.Now().Add(10 * time.Second) // a bound on waiting: the probe runs every second
	for {
		r := do(t, http.MethodGet, g.base+"/", bearer(unknown), "")
		if r.status == http.StatusUnauthorized {
			break
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || time.Now().After(deadline) {
			t.Fatalf("after the store is back: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !g.running() {
		t.Fatal("the gateway exited")
	}
}

// TestPATExpiryChange: seed 002's "set expiry". A PATCH with expires_in
// takes effect at the edge, also on another node that had the token
// cached (Redis: the change is announced to every node), well within
// cache_ttl; bad values are 400 naming expires_in.
func TestPATExpiryChange(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		nodes := []*gateway{g}
		if kind == redisKV {
			nodes = append(nodes, g.startPeer(up, gatewayConfig{}))
		}
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		secret, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
		for _, n := range nodes {
			mustPass(t, callEdge(t, n.base, secret), "before the change") // now cached on every node
		}
		for _, bad := range []string{`{"expires_in":0}`, `{"expires_in":-5}`, `{"expires_in":"soon"}`} {
			r := do(t, http.MethodPatch, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), bad)
			assertRefused(t, g, up, r, http.StatusBadRequest, "invalid_request")
			if r.json(t)["field"] != "expires_in" {
				t.Errorf("%s: %s", bad, r.body)
			}
		}
		// The administrator's way: the CLI through the admin API.
		g.mustCLI("", "user", "token-set", "alice", id, "--expires-in", "3600")
		if out := g.mustCLI("", "user", "tokens", "alice"); !strings.Contains(out, id) || strings.Contains(out, "never") {
			t.Fatalf("user tokens after token-set --expires-in: %s", out)
		}
		if out, err := g.cli("", "user", "token-set", "alice", id, "--expires-in", "0"); err == nil || !strings.Contains(out, "--expires-in") {
			t.Errorf("token-set --expires-in 0: %v %s", err, out)
		}
		patch(t, g, id, `{"expires_in":1}`)
		for _, n := range nodes {
			// The cache would keep the old "never expires" for cache_ttl
			// (30s); the bound on waiting is well below it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				r := callEdge(t, n.base, secret)
				if r.status == http.StatusUnauthorized {
					if d := r.json(t)["error_description"]; d != "the token has expired" {
						t.Errorf("refusal says %v", d)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: the token still works after its new expiry: %d %s", n.base, r.status, r.body)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
}
