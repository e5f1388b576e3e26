package tests

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// legacyHex is the shape of a token from /rest/token.
var legacyHex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// grantUse gives the legacy token permission to a user or a role, as the
// legacy platform's `acl --role ... --p USE --res ws:::gen-ws-token`.
func grantUse(g *gateway, flag, who string) {
	g.mustCLI("", "acl", "grant", flag, who, "--p", "USE", "--res", "ws:::gen-ws-token")
}

// curlBasic is what `curl -u user:pwd http://host/rest/token` sends.
func curlBasic(user, password string) map[string][]string {
	h := basic(user, password)
	delete(h, "Content-Type")
	h["User-Agent"] = []string{"curl/8.5.0"}
	h["Accept"] = []string{"*/*"}
	return h
}

// authHeaders are the seed's header credentials, spelt as it spells them.
func authHeaders(user, password string) map[string][]string {
	return map[string][]string{"auth-user": {user}, "auth-pwd": {password}, "auth-user-type": {"local"}}
}

func withJSON(h map[string][]string) map[string][]string {
	h["Accept"] = []string{"application/json"}
	return h
}

// legacyToken gets a token from /rest/token as JSON and returns the
// secret and its id.
func legacyToken(t *testing.T, g *gateway, user, password string) (secret, id string) {
	t.Helper()
	r := do(t, http.MethodGet, g.base+"/rest/token", withJSON(curlBasic(user, password)), "")
	if r.status != http.StatusOK {
		t.Fatalf("/rest/token for %s: %d %s", user, r.status, r.body)
	}
	v := r.json(t)
	secret, _ = v["token"].(string)
	id, _ = v["id"].(string)
	if !legacyHex.MatchString(secret) || id == "" {
		t.Fatalf("/rest/token answered %s", r.body)
	}
	return secret, id
}

// tokenCount is the number of tokens `tokengate user tokens` lists.
func tokenCount(t *testing.T, g *gateway, user string) int {
	t.Helper()
	out := strings.TrimSpace(g.mustCLI("", "user", "tokens", user))
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("user tokens printed %s", out)
	}
	return len(lines) - 1
}

// TestLegacyTokenService covers /rest/token on the default configuration:
// both credential forms, the permission rule, and the token at the edge.
func TestLegacyTokenService(t *testing.T) {
	forEachTopology(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		grantUse(g, "--user", "alice")

		t.Run("both credential forms", func(t *testing.T) {
			for name, h := range map[string]map[string][]string{
				"basic": curlBasic("alice", alicePassword), "headers": authHeaders("alice", alicePassword),
			} {
				r := do(t, http.MethodGet, g.base+"/rest/token", h, "")
				if r.status != http.StatusOK || !legacyHex.MatchString(string(r.body)) {
					t.Fatalf("%s: %d %q", name, r.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("%s: content type %q", name, ct)
				}
				if cc := r.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("%s: Cache-Control %q", name, cc)
				}
				r = do(t, http.MethodGet, g.base+"/rest/token", withJSON(h), "")
				if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
					t.Fatalf("%s, JSON: %d %q %s", name, r.status, r.header.Get("Content-Type"), r.body)
				}
				v := r.json(t)
				if tok, _ := v["token"].(string); !legacyHex.MatchString(tok) || v["id"] == nil || v["expires_at"] == nil {
					t.Fatalf("%s, JSON: %s", name, r.body)
				}
			}
			if n := tokenCount(t, g, "alice"); n != 4 {
				t.Errorf("alice has %d tokens, want 4", n)
			}
			// The token never reached the upstream.
			if up.count() != 0 {
				t.Errorf("the upstream saw %d requests", up.count())
			}
		})

		t.Run("permission rule", func(t *testing.T) {
			g.mustCLI(alicePassword+"\n", "user", "add", "bob", "--token-login")
			g.mustCLI(alicePassword+"\n", "user", "add", "carol", "--token-login", "--role", "ops")
			g.mustCLI(alicePassword+"\n", "user", "add", "root", "--token-login", "--role", "admin")
			get := func(user string) response {
				return do(t, http.MethodGet, g.base+"/rest/token", withJSON(curlBasic(user, alicePassword)), "")
			}
			for _, u := range []string{"bob", "carol"} {
				assertRefused(t, g, up, get(u), http.StatusForbidden, "forbidden")
			}
			grantUse(g, "--user", "bob")
			legacyToken(t, g, "bob", alicePassword)
			grantUse(g, "--role", "ops")
			legacyToken(t, g, "carol", alicePassword)
			legacyToken(t, g, "root", alicePassword) // no grant needed
			if out := g.mustCLI("", "acl", "list"); !strings.Contains(out, "user bob") || !strings.Contains(out, "role ops") ||
				!strings.Contains(out, "ws:::gen-ws-token") {
				t.Errorf("acl list: %s", out)
			}
			g.mustCLI("", "acl", "revoke", "--user", "bob", "--p", "USE", "--res", "ws:::gen-ws-token")
			g.mustCLI("", "acl", "revoke", "--role", "ops", "--p", "USE", "--res", "ws:::gen-ws-token")
			for _, u := range []string{"bob", "carol"} {
				assertRefused(t, g, up, get(u), http.StatusForbidden, "forbidden")
			}
			legacyToken(t, g, "root", alicePassword)
		})

		t.Run("at the edge", func(t *testing.T) {
			secret, id := legacyToken(t, g, "alice", alicePassword)
			r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), "")
			if r.status != http.StatusOK {
				t.Fatalf("legacy token at the edge: %d %s", r.status, r.body)
			}
			seen := up.last(t)
			if seen.Header.Get("X-Auth-User") != "alice" || seen.Header.Get("X-Auth-Token-Type") != "legacy" ||
				seen.Header.Get("X-Auth-Token-Id") != id {
				t.Errorf("upstream saw %v", seen.Header)
			}
			if seen.Header.Get("Authorization") != "" {
				t.Error("the legacy token travelled on to the upstream")
			}

			g.mustCLI("", "user", "revoke", "alice", id)
			before := up.count()
			assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""), http.StatusUnauthorized, "invalid_token")
			never := strings.Repeat("0123456789", 4)
			assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", bearer(never), ""), http.StatusUnauthorized, "invalid_token")

			second, _ := legacyToken(t, g, "alice", alicePassword)
			if r := do(t, http.MethodGet, g.base+"/orders", bearer(second), ""); r.status != http.StatusOK {
				t.Fatalf("second token: %d %s", r.status, r.body)
			}
			g.mustCLI("", "user", "set", "alice", "--token-login=false")
			assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", bearer(second), ""), http.StatusUnauthorized, "invalid_token")
			g.mustCLI("", "user", "set", "alice", "--token-login=true")
			if up.count() != before+1 {
				t.Errorf("refused tokens reached the upstream (%d requests)", up.count()-before)
			}

			// Without legacy_token_header/legacy_token_query, neither
			// source is read: no token was sent.
			h := map[string][]string{"X-Auth-Token": {second}}
			assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", h, ""), http.StatusUnauthorized, "unauthorized")
			assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders?token="+second, nil, ""), http.StatusUnauthorized, "unauthorized")
		})
		assertNoSecretsLogged(t, g, alicePassword)
	})
}

// TestLegacyTokenSources: legacy_token_header and legacy_token_query, bad
// input at /rest/token, the migration view and legacy_token_ttl.
func TestLegacyTokenSources(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{
		appOptions:  "legacy_token_ttl 1h",
		siteOptions: "legacy_token_header X-Auth-Token\n\t\tlegacy_token_query token",
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	grantUse(g, "--role", "legacy")
	g.mustCLI("", "user", "set", "alice", "--role", "legacy")
	var secrets []string

	t.Run("lifetime", func(t *testing.T) {
		r := do(t, http.MethodGet, g.base+"/rest/token", withJSON(authHeaders("alice", alicePassword)), "")
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		secrets = append(secrets, v["token"].(string))
		exp, err := time.Parse(time.RFC3339, fmt.Sprint(v["expires_at"]))
		if err != nil {
			t.Fatalf("expires_at: %s", r.body)
		}
		if d := time.Until(exp); d < 55*time.Minute || d > 65*time.Minute {
			t.Fatalf("expires_at %s is %v away, want about an hour", exp, d)
		}
	})

	secret, id := legacyToken(t, g, "alice", alicePassword)
	secrets = append(secrets, secret)

	t.Run("header and query", func(t *testing.T) {
		h := map[string][]string{"X-Auth-Token": {secret}}
		r := do(t, http.MethodGet, g.base+"/orders?id=7", h, "")
		if r.status != http.StatusOK {
			t.Fatalf("token in the header: %d %s", r.status, r.body)
		}
		seen := up.last(t)
		if seen.Header.Get("X-Auth-User") != "alice" || seen.Header.Get("X-Auth-Token-Type") != "legacy" {
			t.Errorf("upstream saw %v", seen.Header)
		}
		if v := seen.Header.Values("X-Auth-Token"); len(v) != 0 {
			t.Errorf("the legacy header reached the upstream: %q", v)
		}

		r = do(t, http.MethodGet, g.base+"/orders?id=7&token="+secret+"&page=2", nil, "")
		if r.status != http.StatusOK {
			t.Fatalf("token in the query: %d %s", r.status, r.body)
		}
		seen = up.last(t)
		q := seen.URL.Query()
		if seen.Header.Get("X-Auth-User") != "alice" || q.Has("token") || strings.Contains(seen.URL.RawQuery, secret) ||
			q.Get("id") != "7" || q.Get("page") != "2" || seen.URL.Path != "/orders" {
			t.Errorf("upstream saw %s %v", seen.URL, seen.Header)
		}
		// Lower-case spelling of the header works too.
		if r := do(t, http.MethodGet, g.base+"/", map[string][]string{"x-auth-token": {secret}}, ""); r.status != http.StatusOK {
			t.Errorf("lower-case header: %d %s", r.status, r.body)
		}
	})

	t.Run("one credential, legacy only", func(t *testing.T) {
		before := up.count()
		h := bearer(secret)
		h["X-Auth-Token"] = []string{secret}
		assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", h, ""), http.StatusBadRequest, "invalid_request")
		assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders?token="+secret, bearer(secret), ""), http.StatusBadRequest, "invalid_request")
		h = map[string][]string{"X-Auth-Token": {secret}}
		assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders?token="+secret, h, ""), http.StatusBadRequest, "invalid_request")

		pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"laptop"}`)
		secrets = append(secrets, pat)
		assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders", map[string][]string{"X-Auth-Token": {pat}}, ""),
			http.StatusUnauthorized, "invalid_token")
		assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/orders?token="+pat, nil, ""), http.StatusUnauthorized, "invalid_token")
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(pat), ""); r.status != http.StatusOK {
			t.Errorf("the PAT as a bearer token: %d %s", r.status, r.body)
		}
		if up.count() != before+1 {
			t.Errorf("refused requests reached the upstream")
		}
	})

	t.Run("bad input", func(t *testing.T) {
		before := tokenCount(t, g, "alice")
		get := func(h map[string][]string) response { return do(t, http.MethodGet, g.base+"/rest/token", h, "") }
		field := func(r response, status int, name string) {
			t.Helper()
			assertRefused(t, g, up, r, status, "invalid_request")
			if f := r.json(t)["field"]; f != name {
				t.Errorf("field %v, want %s: %s", f, name, r.body)
			}
		}

		r := get(nil)
		assertRefused(t, g, up, r, http.StatusUnauthorized, "unauthorized")
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Basic realm=") {
			t.Errorf("challenge %q", ch)
		}
		field(get(map[string][]string{"auth-user": {"alice"}}), http.StatusBadRequest, "auth-pwd")
		h := authHeaders("alice", alicePassword)
		h["auth-user-type"] = []string{"ldap"}
		field(get(h), http.StatusBadRequest, "auth-user-type")
		field(get(authHeaders(strings.Repeat("a", 2048), alicePassword)), http.StatusBadRequest, "auth-user")
		assertRefused(t, g, up, get(authHeaders("alice", "wrong password")), http.StatusUnauthorized, "invalid_credentials")
		assertRefused(t, g, up, get(curlBasic("alice", "wrong password")), http.StatusUnauthorized, "invalid_credentials")

		// Bytes that are not UTF-8, sent raw: Go's client would refuse
		// some of them.
		status, ct, body := rawRequest(t, g.base, "GET /rest/token HTTP/1.1\r\nHost: gw\r\nauth-user: al\xffice\r\n"+
			"auth-pwd: "+alicePassword+"\r\nauth-user-type: local\r\nConnection: close\r\n\r\n")
		if status < 400 || status > 499 {
			t.Errorf("non-UTF-8 auth-user: %d %s", status, body)
		}
		if strings.HasPrefix(ct, "application/json") && !strings.Contains(body, `"field":"auth-user"`) {
			t.Errorf("non-UTF-8 auth-user: %d %s", status, body)
		}

		if n := tokenCount(t, g, "alice"); n != before {
			t.Errorf("bad requests created tokens: %d, was %d", n, before)
		}
	})

	t.Run("migration view", func(t *testing.T) {
		if r := do(t, http.MethodGet, g.base+"/anything", bearer(secret), ""); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		host := strings.TrimPrefix(g.base, "http://")
		out := g.mustCLI("", "legacy", "tokens")
		var line string
		for l := range strings.SplitSeq(out, "\n") {
			if strings.Contains(l, id) {
				line = l
			}
		}
		f := strings.Fields(line)
		if len(f) != 7 || f[0] != "alice" || f[3] == "never" || f[4] != "127.0.0.1" || f[5] != host {
			t.Fatalf("legacy tokens, want alice, a last use, 127.0.0.1 and %s:\n%s", host, out)
		}
		if _, err := time.Parse(time.RFC3339, f[3]); err != nil {
			t.Errorf("last use %q", f[3])
		}
		if strings.Contains(out, secret) {
			t.Error("legacy tokens printed a secret")
		}
	})

	assertNoSecretsLogged(t, g, append(secrets, alicePassword)...)
}

// assertNoSecretsLogged stops the gateway (flushing its output) and fails
// if a secret is in it. Caddy's access log records the request as it
// arrived (cloned before any handler runs), so the auth-pwd header and the
// legacy token header and query parameter reach it unless the log filter
// the README recommends is configured, as the test Caddyfile does.
func assertNoSecretsLogged(t *testing.T, g *gateway, secrets ...string) {
	t.Helper()
	g.stop()
	logs := g.logs.String()
	if !strings.Contains(logs, `"logger":"http.log.access`) {
		t.Fatalf("no access log in the gateway's output:\n%s", logs)
	}
	t.Run("no secrets in the logs", func(t *testing.T) {
		var access []string
		seen := map[string]bool{}
		note := func(s string) {
			if !seen[s] {
				seen[s] = true
				access = append(access, s)
			}
		}
		for _, line := range strings.Split(logs, "\n") {
			for _, s := range secrets {
				switch {
				case s == "" || !strings.Contains(line, s):
				case !strings.Contains(line, `"logger":"http.log.access`):
					t.Errorf("the gateway logged a secret (%.8s...): %.300s", s, line)
				case strings.Contains(line, "="+s):
					note(fmt.Sprintf("%.8s... in the uri", s))
				default:
					note(fmt.Sprintf("%.8s... in a request header", s))
				}
			}
		}
		if len(access) > 0 {
			t.Errorf("the access log holds credentials despite the recommended filter: %s", strings.Join(access, "; "))
		}
	})
}

// rawRequest writes a hand-made HTTP/1.1 request and reads the answer.
func rawRequest(t *testing.T, base, req string) (status int, contentType, body string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp.StatusCode, resp.Header.Get("Content-Type"), sb.String()
}

// TestLegacyIdentityBackend: users of the legacy backend get tokens
// without being copied; the backend decides their password.
func TestLegacyIdentityBackend(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && (u == "alice" && p == "secret" || u == "root" && p == "backend-root") {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer backend.Close()
	up := startUpstream(t)
	g := startGateway(t, redisKV, up, gatewayConfig{appOptions: "identity_backend " + backend.URL +
		"\n\t\tidentity_source backend\n\t\tlogin_limits 3 100 10m"})
	get := func(user, password string) response {
		return do(t, http.MethodGet, g.base+"/rest/token", withJSON(curlBasic(user, password)), "")
	}

	assertRefused(t, g, up, get("alice", "secret"), http.StatusForbidden, "forbidden")
	assertRefused(t, g, up, get("alice", "wrong"), http.StatusUnauthorized, "invalid_credentials")
	grantUse(g, "--user", "alice")
	secret, _ := legacyToken(t, g, "alice", "secret")
	if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusOK {
		t.Fatalf("backend user's token at the edge: %d %s", r.status, r.body)
	}
	if seen := up.last(t); seen.Header.Get("X-Auth-User") != "alice" || seen.Header.Get("X-Auth-Token-Type") != "legacy" {
		t.Errorf("upstream saw %v", seen.Header)
	}

	// A name of the gateway's own users is not the backend's to vouch
	// for: local root keeps its password and its admin role to itself.
	g.mustCLI(alicePassword+"\n", "user", "add", "root", "--role", "admin", "--token-login")
	assertRefused(t, g, up, get("root", "backend-root"), http.StatusForbidden, "forbidden")
	h := withJSON(authHeaders("root", alicePassword))
	if r := do(t, http.MethodGet, g.base+"/rest/token", h, ""); r.status != http.StatusOK {
		t.Errorf("local root with auth-user-type local: %d %s", r.status, r.body)
	}

	// login_limits 3: three failures, then 429 whatever the password.
	for i := range 3 {
		assertRefused(t, g, up, get("mallory", fmt.Sprint("guess", i)), http.StatusUnauthorized, "invalid_credentials")
	}
	r := get("mallory", "guess")
	assertRefused(t, g, up, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	backend.Close()
	assertRefused(t, g, up, get("alice", "secret"), http.StatusServiceUnavailable, "temporarily_unavailable")
	g.assertNoSecrets(secret)
}

// TestLegacyCapRevokesOldest: a legacy client that asks for a token on
// every run is never locked out. With the default policy the 51st and
// later tokens revoke the oldest (on every node: the edge refuses it at
// once), the count stays at the cap, and PATs are capped on their own.
// With legacy_token_cap_policy refuse the 51st is a 409.
func TestLegacyCapRevokesOldest(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		grantUse(g, "--user", "alice")
		first, firstID := legacyToken(t, g, "alice", alicePassword)
		mustPass(t, callEdge(t, g.base, first), "the first legacy token")
		var last string
		for range 59 {
			last, _ = legacyToken(t, g, "alice", alicePassword)
		}
		if n := tokenCount(t, g, "alice"); n != 50 {
			t.Errorf("alice holds %d tokens after 60 runs, want the cap 50", n)
		}
		assertRefused(t, g, up, callEdge(t, g.base, first), http.StatusUnauthorized, "invalid_token")
		mustPass(t, callEdge(t, g.base, last), "the newest legacy token")
		if logs := g.logs.String(); !strings.Contains(logs, "revoked the oldest legacy token") || !strings.Contains(logs, firstID) {
			t.Errorf("the eviction of %s was not logged", firstID)
		}
		// Legacy tokens do not use up the room for PATs.
		createPAT(t, g, "alice", alicePassword, `{"label":"after legacy"}`)
		g.assertNoSecrets(first, last, alicePassword)
	})
}

// TestLegacyCapRefusePolicy: with refuse, the request past the cap is a
// 409 whose JSON body says what to do, and nothing is revoked.
func TestLegacyCapRefusePolicy(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{appOptions: "legacy_token_cap_policy refuse"})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	grantUse(g, "--user", "alice")
	first, _ := legacyToken(t, g, "alice", alicePassword)
	for range 49 {
		legacyToken(t, g, "alice", alicePassword)
	}
	r := do(t, http.MethodGet, g.base+"/rest/token", withJSON(curlBasic("alice", alicePassword)), "")
	assertRefused(t, g, up, r, http.StatusConflict, "token_limit")
	if d, _ := r.json(t)["error_description"].(string); !strings.Contains(d, "revoke one") {
		t.Errorf("error_description %q does not say what to do", d)
	}
	mustPass(t, callEdge(t, g.base, first), "the first legacy token")
}
