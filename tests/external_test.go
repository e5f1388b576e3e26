package tests

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v2/jwt"
)

// issuerKey is an RSA key of the test issuer, with its kid.
type issuerKey struct {
	private jwk.Key
	public  jwk.Key
}

func newIssuerKey(t *testing.T, kid string) issuerKey {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.AlgorithmKey, jwa.RS256); err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	return issuerKey{priv, pub}
}

// symmetric is an HS256 key under kid.
func symmetric(t *testing.T, kid, secret string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return k
}

// claims of a test token; sign fills the defaults. typ is the JOSE header
// typ: default at+jwt, "none" leaves it out.
type claims struct {
	iss, aud, sub, scope, typ string
	exp                       time.Time
}

var jtiCounter struct {
	sync.Mutex
	n int
}

// sign makes a token; each has its own jti, so none is a decision cache hit.
func (k issuerKey) sign(t *testing.T, c claims) string {
	t.Helper()
	return signWith(t, jwa.RS256, k.private, c)
}

func signWith(t *testing.T, alg jwa.SignatureAlgorithm, key any, c claims) string {
	t.Helper()
	if c.iss == "" {
		c.iss = "https://idp.test"
	}
	if c.aud == "" {
		c.aud = "my-api"
	}
	if c.sub == "" {
		c.sub = "svc-billing"
	}
	if c.exp.IsZero() {
		c.exp = time.Now().Add(10 * time.Minute)
	}
	jtiCounter.Lock()
	jtiCounter.n++
	jti := fmt.Sprint("jti-", jtiCounter.n)
	jtiCounter.Unlock()
	b := jwxjwt.NewBuilder().Issuer(c.iss).Audience([]string{c.aud}).Subject(c.sub).JwtID(jti).
		IssuedAt(c.exp.Add(-time.Hour)).Expiration(c.exp)
	if c.scope != "" {
		b = b.Claim("scope", c.scope)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	switch c.typ {
	case "":
		c.typ = "at+jwt"
		fallthrough
	default:
		if err := h.Set(jws.TypeKey, c.typ); err != nil {
			t.Fatal(err)
		}
	case "none":
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// jwksServer is the test issuer's key endpoint; what it serves can change.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
}

func startJWKS(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve publishes the public halves of keys.
func (s *jwksServer) serve(t *testing.T, keys ...issuerKey) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.public); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.serveRaw(b)
}

func (s *jwksServer) serveRaw(b []byte) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

// fetchFailures counts the log lines saying a fetch from url failed.
func fetchFailures(g *gateway, url string) int {
	n := 0
	for line := range strings.SplitSeq(g.logs.String(), "\n") {
		if strings.Contains(line, "fetching the JWKS failed") && strings.Contains(line, url) {
			n++
		}
	}
	return n
}

// TestExternalIssuer: JWTs from other issuers, by JWKS URL (with key
// rollover and the issuer misbehaving) and by HS256 shared secret.
func TestExternalIssuer(t *testing.T) {
	const hsSecret = "tg-test-shared-secret-0123456789-abcdefghij"
	jwks := startJWKS(t)
	k1, k2, k3 := newIssuerKey(t, "k1"), newIssuerKey(t, "k2"), newIssuerKey(t, "k3")
	impostor := newIssuerKey(t, "k1") // another key under k1's kid
	jwks.serve(t, k1)
	downURL := fmt.Sprintf("http://127.0.0.1:%d/jwks", freePort(t))

	up, up2 := startUpstream(t), startUpstream(t)
	otherSite := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	g := startGateway(t, embedded, up, gatewayConfig{
		env:        []string{"TG_TEST_SECRET=" + hsSecret},
		extraSites: fmt.Sprintf("\n%s {\n\ttokengate\n\treverse_proxy %s\n}\n", otherSite, up2.addr),
		siteOptions: `external_jwt {
			issuer https://idp.test
			audience my-api
			jwks_url ` + jwks.URL + `/jwks
			refresh_floor 1s
			allow_http_loopback
		}
		external_jwt {
			issuer https://down.test
			audience my-api
			jwks_url ` + downURL + `
			refresh_floor 1s
			allow_http_loopback
		}
		external_jwt {
			issuer https://hs.test
			audience my-api
			hs256_secret {env.TG_TEST_SECRET}
			accept_typ at+jwt JWT
		}`,
	})
	call := func(tok string) response { return do(t, http.MethodGet, g.base+"/reports?x=1", bearer(tok), "") }
	accepted := func(t *testing.T, tok, sub string) {
		t.Helper()
		r := call(tok)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if seen := up.last(t); seen.Header.Get("X-Auth-User") != sub || seen.Header.Get("X-Auth-Token-Type") != "jwt" ||
			seen.Header.Get("Authorization") != "" {
			t.Fatalf("upstream saw %v", seen.Header)
		}
	}
	// waitAccepted sends tok until it is accepted: after an unknown kid,
	// the keys are fetched again at most once per refresh_floor (1s).
	waitAccepted := func(t *testing.T, tok string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := call(tok)
			if r.status == http.StatusOK {
				return
			}
			if r.status != http.StatusUnauthorized || time.Now().After(deadline) {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// failsClosed sends a token with a kid the issuer never published
	// until the gateway has tried (and failed) to fetch the keys again;
	// every answer must be a refusal.
	failsClosed := func(t *testing.T, tok string) {
		t.Helper()
		before := fetchFailures(g, jwks.URL)
		deadline := time.Now().Add(10 * time.Second)
		for fetchFailures(g, jwks.URL) == before {
			if time.Now().After(deadline) {
				t.Fatalf("the log never said why the JWKS fetch failed:\n%s", g.logs.String())
			}
			r := call(tok)
			if r.status != http.StatusUnauthorized && r.status != http.StatusServiceUnavailable {
				t.Fatalf("unknown kid: status %d: %s", r.status, r.body)
			}
			r.json(t)
			time.Sleep(100 * time.Millisecond)
		}
	}

	valid := k1.sign(t, claims{scope: "read write"})
	t.Run("valid token", func(t *testing.T) {
		accepted(t, valid, "svc-billing")
		seen := up.last(t)
		if seen.Header.Get("X-Auth-Scopes") != "read write" || seen.URL.RawQuery != "x=1" {
			t.Errorf("upstream saw %s %v", seen.URL, seen.Header)
		}
		// Again, from the decision cache.
		accepted(t, valid, "svc-billing")
	})

	t.Run("refused", func(t *testing.T) {
		before := up.count()
		for name, tok := range map[string]string{
			"wrong aud":            k1.sign(t, claims{aud: "other-api"}),
			"wrong iss":            k1.sign(t, claims{iss: "https://evil.test"}),
			"expired":              k1.sign(t, claims{exp: time.Now().Add(-time.Hour)}),
			"impostor under k1":    impostor.sign(t, claims{}),
			"HS256 under k1's kid": signWith(t, jwa.HS256, symmetric(t, "k1", hsSecret), claims{}),
			// RFC 8725 3.11: the issuer's ID tokens are not access tokens.
			"typ JWT (an ID token)": k1.sign(t, claims{typ: "JWT"}),
			"no typ":                k1.sign(t, claims{typ: "none"}),
			// A header cannot carry it: refused, not a 502 from the proxy.
			"sub with a line break": k1.sign(t, claims{sub: "alice\r\nX-Auth-User: admin"}),
		} {
			r := call(tok)
			if r.status != http.StatusUnauthorized || r.json(t)["error"] != "invalid_token" {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		if up.count() != before {
			t.Error("a refused token reached the upstream")
		}
	})

	t.Run("the upstream tells issuers apart", func(t *testing.T) {
		// The gateway's own alice and the issuer's alice have the same
		// X-Auth-User; X-Auth-Issuer tells them apart, and a client
		// cannot send its own.
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"issuer test"}`)
		for _, c := range []struct{ tok, kind, iss string }{
			{pat, "pat", "tokengate"},
			{k1.sign(t, claims{sub: "alice"}), "jwt", "https://idp.test"},
		} {
			r := do(t, http.MethodGet, g.base+"/reports", map[string][]string{
				"Authorization": {"Bearer " + c.tok}, "X-Auth-Issuer": {"https://idp.test"}, "X_Auth_Issuer": {"forged"},
			}, "")
			if r.status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", c.kind, r.status, r.body)
			}
			seen := up.last(t)
			if seen.Header.Get("X-Auth-User") != "alice" || seen.Header.Get("X-Auth-Token-Type") != c.kind ||
				len(seen.Header.Values("X-Auth-Issuer")) != 1 || seen.Header.Get("X-Auth-Issuer") != c.iss ||
				seen.Header.Get("X_Auth_Issuer") != "" {
				t.Errorf("%s: upstream saw %v", c.kind, seen.Header)
			}
		}
	})

	t.Run("key rollover", func(t *testing.T) {
		jwks.serve(t, k1, k2)
		waitAccepted(t, k2.sign(t, claims{sub: "svc-new"}))
		accepted(t, k2.sign(t, claims{sub: "svc-new"}), "svc-new")
		accepted(t, k1.sign(t, claims{sub: "svc-old"}), "svc-old") // k1 is still served
	})

	t.Run("issuer serves garbage", func(t *testing.T) {
		jwks.serveRaw([]byte("<html>maintenance</html>"))
		failsClosed(t, k3.sign(t, claims{}))
		accepted(t, k1.sign(t, claims{sub: "svc-old"}), "svc-old")
		accepted(t, k2.sign(t, claims{sub: "svc-new"}), "svc-new")
		if !g.logHas("malformed key set") {
			t.Error("the log does not say the key set was malformed")
		}
	})

	t.Run("issuer down", func(t *testing.T) {
		jwks.Close()
		failsClosed(t, k3.sign(t, claims{}))
		accepted(t, k1.sign(t, claims{}), "svc-billing")
		accepted(t, k2.sign(t, claims{}), "svc-billing")
	})

	t.Run("JWKS down from the start", func(t *testing.T) {
		r := call(k1.sign(t, claims{iss: "https://down.test"}))
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "temporarily_unavailable" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		// The output reaches g.logs through a pipe: allow it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for fetchFailures(g, downURL) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say why:\n%s", g.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("HS256 shared secret", func(t *testing.T) {
		tok := signWith(t, jwa.HS256, []byte(hsSecret), claims{iss: "https://hs.test", sub: "partner", scope: "read"})
		accepted(t, tok, "partner")
		if s := up.last(t).Header.Get("X-Auth-Scopes"); s != "read" {
			t.Errorf("scopes %q", s)
		}
		forged := signWith(t, jwa.HS256, []byte(hsSecret+"x"), claims{iss: "https://hs.test"})
		if r := call(forged); r.status != http.StatusUnauthorized {
			t.Errorf("a token signed with another secret: %d %s", r.status, r.body)
		}
		// This issuer lists typ JWT in accept_typ; a token without typ
		// is still refused.
		accepted(t, signWith(t, jwa.HS256, []byte(hsSecret), claims{iss: "https://hs.test", sub: "partner", typ: "JWT"}), "partner")
		if r := call(signWith(t, jwa.HS256, []byte(hsSecret), claims{iss: "https://hs.test", typ: "none"})); r.status != http.StatusUnauthorized {
			t.Errorf("a token without typ: %d %s", r.status, r.body)
		}

		// The secret stays a placeholder in the adapted config, even with
		// the variable set.
		cmd := exec.Command(binary, "adapt", "--config", filepath.Join(g.dir, "Caddyfile"), "--adapter", "caddyfile")
		cmd.Env = append(g.env(), "TG_TEST_SECRET="+hsSecret)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("adapt: %v\n%s", err, out)
		}
		if strings.Contains(string(out), hsSecret) || !strings.Contains(string(out), "{env.TG_TEST_SECRET}") {
			t.Errorf("adapt printed the secret or lost the placeholder:\n%s", out)
		}
	})

	t.Run("a site without external_jwt", func(t *testing.T) {
		// Same process, same decision cache: the other site's verdicts
		// must not carry over either way.
		fresh := k1.sign(t, claims{})
		steps := []struct {
			base, tok string
			want      int
		}{{otherSite, fresh, 401}, {g.base, fresh, 200}, {otherSite, fresh, 401}, {otherSite, valid, 401}}
		for i, s := range steps {
			r := do(t, http.MethodGet, s.base+"/reports", bearer(s.tok), "")
			if r.status != s.want || (s.want == 401 && r.json(t)["error"] != "invalid_token") {
				t.Errorf("step %d, %s: status %d, want %d: %s", i, s.base, r.status, s.want, r.body)
			}
		}
		if up2.count() != 0 {
			t.Error("the other site let an external token through")
		}
	})

	g.stop()
	g.assertNoSecrets(hsSecret, valid)
}

// TestExternalJWKSURLMustBeHTTPS: tokengate validate refuses a plain
// http:// jwks_url, also when a placeholder resolves to one, and allows
// loopback http:// only with allow_http_loopback.
func TestExternalJWKSURLMustBeHTTPS(t *testing.T) {
	site := func(url, extra string) string {
		return ":8080 {\n\ttokengate {\n\t\texternal_jwt {\n\t\t\tissuer https://idp.test\n\t\t\taudience my-api\n" +
			"\t\t\tjwks_url " + url + "\n" + extra + "\t\t}\n\t}\n\trespond ok\n}\n"
	}
	tests := []struct {
		name, caddyfile, env, want string // want "": valid
	}{
		{"http", site("http://idp.example.com/jwks", ""), "", "jwks_url must be an https:// URL"},
		{"loopback http without the option", site("http://127.0.0.1:9/jwks", ""), "", "allow_http_loopback"},
		{"http from a placeholder", site("{env.TG_TEST_JWKS_URL}", ""), "http://idp.example.com/jwks", "jwks_url must be an https:// URL"},
		{"loopback http from a placeholder", site("{env.TG_TEST_JWKS_URL}", ""), "http://localhost:9/jwks", "allow_http_loopback"},
		{"http with the option, not loopback", site("{env.TG_TEST_JWKS_URL}", "\t\t\tallow_http_loopback\n"), "http://idp.example.com/jwks", "only to a loopback host"},
		{"loopback http with the option", site("http://127.0.0.1:9/jwks", "\t\t\tallow_http_loopback\n"), "", ""},
		{"https", site("https://idp.example.com/jwks", ""), "", ""},
		{"https from a placeholder", site("{env.TG_TEST_JWKS_URL}", ""), "https://idp.example.com/jwks", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Caddyfile")
			if err := os.WriteFile(path, []byte(tt.caddyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("TG_TEST_JWKS_URL", tt.env)
			out, err := runBinary(t, "validate", "--config", path, "--adapter", "caddyfile")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validate refused it: %v\n%s", err, out)
			case tt.want != "" && err == nil:
				t.Fatalf("validate accepted it:\n%s", out)
			case !strings.Contains(out, tt.want):
				t.Fatalf("output does not say %q:\n%s", tt.want, out)
			}
		})
	}
}
