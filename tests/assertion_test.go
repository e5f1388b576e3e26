package tests

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v2/jwt"

	tgjwt "github.com/tokengate/tokengate/internal/jwt"
)

const (
	assertionKeysPath = "/.well-known/tokengate-assertion-keys.json"
	assertionAudience = "https://orders.test"
	assertionSecret   = "tg-test-shared-secret-0123456789-abcdefghij"
)

// readmeExample returns the code block of README.md that follows the
// marker <!-- example: name -->, so the tests run what the README shows.
func readmeExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "<!-- example: "+name+" -->")
	if i < 0 {
		t.Fatalf("README.md has no example %q", name)
	}
	s = s[i:]
	end := strings.Index(s, "<!-- /example -->")
	if end < 0 {
		t.Fatalf("README.md example %q has no end marker", name)
	}
	s = s[:end]
	open := strings.Index(s, "```")
	nl := strings.IndexByte(s[open:], '\n')
	closing := strings.LastIndex(s, "```")
	if open < 0 || nl < 0 || closing <= open {
		t.Fatalf("README.md example %q is not one fenced code block", name)
	}
	return s[open+nl+1 : closing]
}

// buildReadmeUpstream builds the README's Go upstream in a module of its
// own that requires what this module requires (so the same versions).
func buildReadmeUpstream(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module example.com/upstream"))
	sum, err := os.ReadFile(filepath.Join("..", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": mod, "go.sum": sum, "main.go": []byte(readmeExample(t, "go-upstream"))} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "upstream")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the README's Go example: %v\n%s", err, out)
	}
	return bin
}

// startReadmeUpstream runs the README's Go upstream on addr, verifying
// against the gateway's keys at jwksURL.
func startReadmeUpstream(t *testing.T, bin, addr, jwksURL string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "TOKENGATE_JWKS="+jwksURL, "ASSERTION_AUDIENCE="+assertionAudience,
		"ASSERTION_ISSUER=tokengate", "LISTEN="+addr)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var err error
	if !eventually(10*time.Second, func() bool {
		var resp *http.Response
		if resp, err = http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the README's Go upstream did not come up: %v\n%s", err, logs.String())
	}
}

// pythonWithJWT finds a python3 that has PyJWT and cryptography
// (scripts/test.sh installs python3-jwt and python3-cryptography).
func pythonWithJWT(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TG_PYTHON"), "python3", "/usr/bin/python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import jwt, cryptography").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with PyJWT and cryptography: run scripts/test.sh, or apt install python3-jwt python3-cryptography")
	return ""
}

// pythonVerify runs the README's Python example on an assertion.
func pythonVerify(t *testing.T, py, script, jwksURL, assertion string) (map[string]any, string, bool) {
	t.Helper()
	cmd := exec.Command(py, script, jwksURL, assertionAudience, "tokengate")
	cmd.Stdin = strings.NewReader(assertion)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, errOut.String(), false
	}
	var claims map[string]any
	if err := json.Unmarshal(out.Bytes(), &claims); err != nil {
		t.Fatalf("the Python example printed %q", out.String())
	}
	return claims, "", true
}

// verifyAssertion checks an assertion as a strict upstream would, with
// jwx and no leeway, and returns its claims.
func verifyAssertion(t *testing.T, jwksURL, tok string) (map[string]any, error) {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwxjwt.ParseString(tok, jwxjwt.WithKeySet(set), jwxjwt.WithValidate(true),
		jwxjwt.WithIssuer("tokengate"), jwxjwt.WithAudience(assertionAudience))
	if err != nil {
		return nil, err
	}
	return parsed.AsMap(context.Background())
}

// assertionParts decodes an assertion's header and claims (unverified).
func assertionParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// forgeries are what an attacker who skipped the gateway could send, made
// from a genuine assertion.
func forgeries(t *testing.T, jwksURL, genuine string) map[string]string {
	t.Helper()
	header, claims := assertionParts(t, genuine)
	kid, _ := header["kid"].(string)
	parts := strings.Split(genuine, ".")
	forged := map[string]string{}

	// Re-signed by another key under the same kid.
	other, err := tgjwt.Generate(kid, tgjwt.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if forged["another key"], err = tgjwt.Sign(other, "tokengate-assertion+jwt", claims); err != nil {
		t.Fatal(err)
	}
	// alg none, no signature.
	forged["alg none"] = b64JSON(t, map[string]any{"alg": "none", "kid": kid, "typ": "tokengate-assertion+jwt"}) + "." + parts[1] + "."
	// HS256 with the published public key (PEM) as the secret.
	set, err := jwk.Fetch(context.Background(), jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("kid %s is not published", kid)
	}
	var raw any
	if err := pub.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := tgjwt.FromPublic(kid, tgjwt.HS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if forged["HS256 with the public key"], err = tgjwt.Sign(hs, "tokengate-assertion+jwt", claims); err != nil {
		t.Fatal(err)
	}
	// The payload altered, the signature kept.
	altered := map[string]any{}
	for k, v := range claims {
		altered[k] = v
	}
	altered["sub"] = "admin"
	forged["payload altered"] = parts[0] + "." + b64JSON(t, altered) + "." + parts[2]
	return forged
}

// TestIdentityAssertion: the upstream gets a signed assertion for every
// token kind, verifiable against the gateway's assertion JWKS; a
// client-sent copy never passes; forged, expired and missing assertions
// are refused by an upstream that verifies (the README's examples, run
// here).
func TestIdentityAssertion(t *testing.T) {
	upBin := buildReadmeUpstream(t)
	py := pythonWithJWT(t)
	pyScript := filepath.Join(t.TempDir(), "verify.py")
	if err := os.WriteFile(pyScript, []byte(readmeExample(t, "python-verify")), 0o600); err != nil {
		t.Fatal(err)
	}
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up, up2 := startUpstream(t), startUpstream(t)
		readmeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		plainOff := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		toReadme := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		external := `external_jwt {
			issuer https://idp.test
			audience my-api
			hs256_secret {env.TG_TEST_SECRET}
		}`
		g := startGateway(t, kind, up, gatewayConfig{
			env: []string{"TG_TEST_SECRET=" + assertionSecret},
			siteOptions: external + `
		identity_assertion {
			audience ` + assertionAudience + `
			lifetime 5s
		}`,
			extraSites: fmt.Sprintf(`
%s {
	tokengate {
		identity_assertion {
			audience %s
			plain_headers off
		}
	}
	reverse_proxy %s
}
%s {
	tokengate {
		identity_assertion {
			audience %s
		}
	}
	reverse_proxy %s
}
`, plainOff, assertionAudience, up2.addr, toReadme, assertionAudience, readmeAddr),
		})
		jwksURL := g.base + assertionKeysPath
		startReadmeUpstream(t, upBin, readmeAddr, jwksURL)

		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		grantUse(g, "--user", "alice")
		patSecret, patID := createPAT(t, g, "alice", alicePassword, `{"label":"laptop","scopes":["read","write"]}`)
		legacySecret, legacyID := legacyToken(t, g, "alice", alicePassword)
		client := addClient(t, g, "billing", "--scope", "read")
		access := requestToken(t, g.base, client, nil, "&scope=read")
		ext := signWith(t, jwa.HS256, symmetric(t, "hs", assertionSecret), claims{sub: "svc-billing", scope: "orders"})

		type want struct{ sub, ns, subIss, kind, id, scope string }
		cases := map[string]struct {
			headers map[string][]string
			want    want
		}{
			"pat":          {bearer(patSecret), want{"alice", "user", "", "pat", patID, "read write"}},
			"legacy":       {bearer(legacySecret), want{"alice", "user", "", "legacy", legacyID, ""}},
			"access token": {bearer(access), want{client.ID, "oauth_client", "", "oauth", "", "read"}},
			"external jwt": {bearer(ext), want{"svc-billing", "external", "https://idp.test", "jwt", "", "orders"}},
		}
		genuine := map[string]string{}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				h := c.headers
				// A client tries to bring its own assertion, in two spellings.
				h["X-Auth-Assertion"] = []string{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."}
				h["X_Auth_Assertion"] = []string{"forged"}
				r := do(t, http.MethodGet, g.base+"/orders", h, "")
				if r.status != http.StatusOK {
					t.Fatalf("%d %s", r.status, r.body)
				}
				seen := up.last(t)
				var got []string
				for k, v := range seen.Header {
					if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Auth-Assertion") {
						got = append(got, v...)
					}
				}
				if len(got) != 1 {
					t.Fatalf("upstream got assertion headers %q, want exactly the gateway's", got)
				}
				tok := got[0]
				hdr, _ := assertionParts(t, tok)
				if hdr["alg"] != "ES256" || hdr["typ"] != "tokengate-assertion+jwt" || hdr["kid"] == "" {
					t.Errorf("JOSE header %v", hdr)
				}
				cl, err := verifyAssertion(t, jwksURL, tok)
				if err != nil {
					t.Fatalf("the gateway's assertion does not verify: %v", err)
				}
				str := func(k string) string { s, _ := cl[k].(string); return s }
				w := c.want
				if str("sub") != w.sub || str("sub_ns") != w.ns || str("sub_iss") != w.subIss || str("token_kind") != w.kind ||
					str("scope") != w.scope || str("client_ip") != "127.0.0.1" || str("jti") == "" {
					t.Errorf("claims %v, want %+v", cl, w)
				}
				if w.id != "" && str("token_id") != w.id || str("token_id") == "" {
					t.Errorf("token_id %q, want %q", str("token_id"), w.id)
				}
				iat, _ := cl["iat"].(time.Time)
				exp, _ := cl["exp"].(time.Time)
				if d := exp.Sub(iat); d != 5*time.Second {
					t.Errorf("exp - iat = %v, want the lifetime 5s", d)
				}
				if seen.Header.Get("X-Auth-User") != w.sub {
					t.Errorf("plain headers are on by default: X-Auth-User %q", seen.Header.Get("X-Auth-User"))
				}
				// The same token again: the same (cached) assertion.
				r = do(t, http.MethodGet, g.base+"/orders", bearer(strings.TrimPrefix(c.headers["Authorization"][0], "Bearer ")), "")
				if r.status != http.StatusOK || up.last(t).Header.Get("X-Auth-Assertion") != tok {
					t.Errorf("second request: %d, assertion reused: %v", r.status, up.last(t).Header.Get("X-Auth-Assertion") == tok)
				}
				genuine[name] = tok

				// The README's Go upstream takes it (sent straight to it).
				r = do(t, http.MethodGet, "http://"+readmeAddr+"/", map[string][]string{"X-Auth-Assertion": {tok}}, "")
				if r.status != http.StatusOK || r.json(t)["sub"] != w.sub {
					t.Errorf("README Go upstream: %d %s", r.status, r.body)
				}
				// And the README's Python example.
				pc, msg, ok := pythonVerify(t, py, pyScript, jwksURL, tok)
				if !ok || pc["sub"] != w.sub || pc["sub_ns"] != w.ns {
					t.Errorf("README Python example: %v %s", pc, msg)
				}
			})
		}

		t.Run("keys are the gateway's own, apart from the OAuth keyring", func(t *testing.T) {
			r := do(t, http.MethodGet, jwksURL, nil, "")
			if r.status != http.StatusOK || !strings.Contains(r.header.Get("Cache-Control"), "max-age=") {
				t.Fatalf("assertion JWKS: %d %v %s", r.status, r.header, r.body)
			}
			hdr, _ := assertionParts(t, genuine["pat"])
			if !strings.Contains(string(r.body), fmt.Sprintf("%q", hdr["kid"])) {
				t.Errorf("the signing kid %v is not published: %s", hdr["kid"], r.body)
			}
			oauthKeys := do(t, http.MethodGet, g.base+"/.well-known/jwks.json", nil, "")
			if strings.Contains(string(oauthKeys.body), fmt.Sprintf("%q", hdr["kid"])) {
				t.Errorf("the assertion key is in the OAuth JWKS: %s", oauthKeys.body)
			}
		})

		t.Run("a request that skipped the gateway is recognisable", func(t *testing.T) {
			direct := map[string]map[string][]string{
				"no assertion":         {},
				"copied plain headers": {"X-Auth-User": {"alice"}, "X-Auth-Token-Type": {"pat"}},
			}
			for name, tok := range forgeries(t, jwksURL, genuine["pat"]) {
				direct[name] = map[string][]string{"X-Auth-Assertion": {tok}, "X-Auth-User": {"alice"}}
				if _, err := verifyAssertion(t, jwksURL, tok); err == nil {
					t.Errorf("%s: verifies", name)
				}
				if pc, _, ok := pythonVerify(t, py, pyScript, jwksURL, tok); ok {
					t.Errorf("%s: the Python example accepts it: %v", name, pc)
				}
			}
			for name, h := range direct {
				r := do(t, http.MethodGet, "http://"+readmeAddr+"/", h, "")
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s: README Go upstream answered %d %s", name, r.status, r.body)
				}
			}
		})

		t.Run("through the gateway to the README's Go upstream", func(t *testing.T) {
			r := do(t, http.MethodGet, toReadme+"/orders", bearer(patSecret), "")
			if r.status != http.StatusOK || r.json(t)["sub"] != "alice" || r.json(t)["token_kind"] != "pat" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})

		t.Run("plain_headers off", func(t *testing.T) {
			h := bearer(patSecret)
			h["X-Auth-User"] = []string{"admin"}
			r := do(t, http.MethodGet, plainOff+"/x", h, "")
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			seen := up2.last(t)
			if ids := identityValues(seen.Header); seen.Header.Get("X-Auth-Assertion") == "" || len(ids) != 1 {
				t.Errorf("upstream got %v, want the assertion only", seen.Header)
			}
		})

		t.Run("an expired assertion is refused", func(t *testing.T) {
			tok := genuine["pat"]
			_, cl := assertionParts(t, tok)
			exp := time.Unix(int64(cl["exp"].(float64)), 0)
			// The Go example allows 5s of clock skew, Python 5s of leeway.
			wait := time.Until(exp.Add(6 * time.Second))
			if wait > 15*time.Second {
				t.Fatalf("assertion expires in %v, more than its 5s lifetime", time.Until(exp))
			}
			time.Sleep(wait)
			if _, err := verifyAssertion(t, jwksURL, tok); err == nil || !strings.Contains(err.Error(), "exp") {
				t.Errorf("expired assertion: %v", err)
			}
			r := do(t, http.MethodGet, "http://"+readmeAddr+"/", map[string][]string{"X-Auth-Assertion": {tok}}, "")
			if r.status != http.StatusUnauthorized {
				t.Errorf("README Go upstream took an expired assertion: %d %s", r.status, r.body)
			}
			if _, _, ok := pythonVerify(t, py, pyScript, jwksURL, tok); ok {
				t.Errorf("the Python example took an expired assertion")
			}
			// Through the gateway, a fresh one.
			if r := do(t, http.MethodGet, g.base+"/x", bearer(patSecret), ""); r.status != http.StatusOK {
				t.Fatal(r.status)
			}
			fresh := up.last(t).Header.Get("X-Auth-Assertion")
			if fresh == tok {
				t.Fatal("the gateway handed out an expired assertion")
			}
			if _, err := verifyAssertion(t, jwksURL, fresh); err != nil {
				t.Errorf("fresh assertion: %v", err)
			}
		})
	})
}

// assertionKid sends a PAT through g and returns the kid of the
// assertion the upstream got, and the assertion.
func assertionKid(t *testing.T, g *gateway, up *upstream, pat string) (string, string) {
	t.Helper()
	if r := do(t, http.MethodGet, g.base+"/x", bearer(pat), ""); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	tok := up.last(t).Header.Get("X-Auth-Assertion")
	h, _ := assertionParts(t, tok)
	kid, _ := h["kid"].(string)
	return kid, tok
}

// publishedKids lists the kids of the assertion key set.
func publishedKids(t *testing.T, g *gateway) string {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), g.base+assertionKeysPath)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		kids = append(kids, k.KeyID())
	}
	return strings.Join(kids, " ")
}

// TestIdentityAssertionKeys: the assertion keys are sealed with
// secrets_key in the store, apart from the OAuth keyring; a grace
// rotation signs with the published next key after jwks_max_age while the
// old key stays published; an immediate one withdraws the old keys at once.
func TestIdentityAssertionKeys(t *testing.T) {
	up := startUpstream(t)
	cfg := secretsConfig(generateSecretsKey(t), "")
	cfg.appOptions += "jwks_max_age 2s\n"
	cfg.siteOptions = "identity_assertion {\n\taudience " + assertionAudience + "\n}"
	g := startGateway(t, embedded, up, cfg)
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"laptop"}`)

	k1, a1 := assertionKid(t, g, up, pat)
	var shown struct {
		Signing struct{ KID string } `json:"signing"`
		Next    struct{ KID string } `json:"next"`
	}
	out := g.mustCLI("", "assertion-keys", "show", "--json")
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Signing.KID != k1 || shown.Next.KID == "" {
		t.Fatalf("assertion-keys show: %v %s (signing kid %s)", err, out, k1)
	}
	k2 := shown.Next.KID
	if kids := publishedKids(t, g); !strings.Contains(kids, k1) || !strings.Contains(kids, k2) {
		t.Fatalf("published %s, want the active %s and the next %s", kids, k1, k2)
	}

	// Sealed in the store, beside the OAuth keyring and apart from it.
	d := storeState(t, g)
	raw := string(d.Documents["assertion_keys_ES256"])
	if !strings.Contains(raw, `"sealed"`) || strings.Contains(raw, `"material"`) || !strings.Contains(raw, k1) {
		t.Errorf("assertion keys in the store: %s", raw)
	}
	if strings.Contains(string(d.Documents["keyring"]), k1) {
		t.Error("the assertion key is in the OAuth keyring")
	}

	// Grace: the next key signs once published for jwks_max_age; the old
	// one stays published and its assertions keep verifying.
	if out := g.mustCLI("", "assertion-keys", "rotate", "--grace"); !strings.Contains(out, k2) {
		t.Errorf("rotate --grace printed %s", out)
	}
	var kid string
	eventually(20*time.Second, func() bool { kid, _ = assertionKid(t, g, up, pat); return kid != k1 })
	if kid != k2 {
		t.Fatalf("after a grace rotation the assertion is signed by %s, want %s then %s", kid, k1, k2)
	}
	if kids := publishedKids(t, g); !strings.Contains(kids, k1) {
		t.Errorf("the retiring key %s left the key set early: %s", k1, kids)
	}
	if _, err := verifyAssertion(t, g.base+assertionKeysPath, a1); err != nil {
		t.Errorf("an assertion of the retiring key: %v", err)
	}

	// Immediate: fresh keys sign at once, the old ones are withdrawn.
	g.mustCLI("", "assertion-keys", "rotate", "--immediate")
	k3, a3 := assertionKid(t, g, up, pat)
	if k3 == k1 || k3 == k2 {
		t.Fatalf("after an immediate rotation the assertion is signed by %s", k3)
	}
	if kids := publishedKids(t, g); strings.Contains(kids, k1) || strings.Contains(kids, k2) {
		t.Errorf("old keys still published after an immediate rotation: %s", kids)
	}
	if _, err := verifyAssertion(t, g.base+assertionKeysPath, a1); err == nil {
		t.Error("an assertion of a withdrawn key still verifies")
	}
	if _, err := verifyAssertion(t, g.base+assertionKeysPath, a3); err != nil {
		t.Errorf("the fresh assertion: %v", err)
	}
	if _, err := g.cli("", "assertion-keys", "rotate"); err == nil {
		t.Error("rotate without a mode was accepted")
	}
	if out, err := g.cli("", "assertion-keys", "show", "--algorithm", "HS256"); err == nil || !strings.Contains(out, "algorithm") {
		t.Errorf("show --algorithm HS256: %v %s", err, out)
	}
}
