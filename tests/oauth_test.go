package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	tokenPath      = "/api-user/oauth/token"
	introspectPath = "/api-user/oauth/introspect"
	revokePath     = "/api-user/oauth/revoke"
	jwksPath       = "/.well-known/jwks.json"
	formType       = "application/x-www-form-urlencoded"
	ccGrant        = "grant_type=client_credentials"
)

// oauthClient is an OAuth key as `tokengate oauth client add` printed it.
type oauthClient struct {
	ID     string `json:"clientId"`
	Secret string `json:"clientSecret"`
	Name   string `json:"name"`
}

// addClient adds an OAuth key through the CLI.
func addClient(t *testing.T, g *gateway, name string, flags ...string) oauthClient {
	t.Helper()
	out := g.mustCLI("", append([]string{"oauth", "client", "add", name}, flags...)...)
	var c oauthClient
	if i := strings.IndexByte(out, '{'); i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&c) != nil {
		t.Fatalf("oauth client add printed %s", out)
	}
	if !strings.HasPrefix(c.ID, "tgc_") || !strings.HasPrefix(c.Secret, "tgs_") || c.Name != name {
		t.Fatalf("oauth client add printed %s", out)
	}
	return c
}

// clientBasic is RFC 6749 2.3.1 client authentication: HTTP Basic with
// both parts form-encoded, on a form body.
func clientBasic(id, secret string) map[string][]string {
	cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
	return map[string][]string{"Authorization": {"Basic " + cred}, "Content-Type": {formType}}
}

func formHeaders() map[string][]string {
	return map[string][]string{"Content-Type": {formType}}
}

// withHeader returns a copy of h with one more header.
func withHeader(h map[string][]string, k string, v ...string) map[string][]string {
	out := map[string][]string{k: v}
	for hk, hv := range h {
		if hk != k {
			out[hk] = hv
		}
	}
	return out
}

// requestToken asks base's token endpoint for a token with Basic
// credentials and returns the access token; extra is more form.
func requestToken(t *testing.T, base string, c oauthClient, headers map[string][]string, extra string) string {
	t.Helper()
	h := clientBasic(c.ID, c.Secret)
	for k, v := range headers {
		h[k] = v
	}
	r := do(t, http.MethodPost, base+tokenPath, h, ccGrant+extra)
	if r.status != http.StatusOK {
		t.Fatalf("token request: %d %s", r.status, r.body)
	}
	v := r.json(t)
	tok, _ := v["access_token"].(string)
	if tok == "" || v["token_type"] != "Bearer" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token answer: %v %s", r.header, r.body)
	}
	return tok
}

// joseHeader decodes a JWT's protected header without verifying anything.
func joseHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	first, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(first)
	var h map[string]any
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("not a JWT: %.20s...", tok)
	}
	return h
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	kid, _ := joseHeader(t, tok)["kid"].(string)
	if kid == "" {
		t.Fatal("access token without kid")
	}
	return kid
}

// callEdge sends a guarded request with a bearer token.
func callEdge(t *testing.T, base, tok string) response {
	t.Helper()
	return do(t, http.MethodGet, base+"/orders", bearer(tok), "")
}

func mustPass(t *testing.T, r response, what string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
}

// introspect asks the introspection endpoint about tok as client c.
func introspect(t *testing.T, g *gateway, c oauthClient, tok string) map[string]any {
	t.Helper()
	r := do(t, http.MethodPost, g.base+introspectPath, clientBasic(c.ID, c.Secret), url.Values{"token": {tok}}.Encode())
	if r.status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	return r.json(t)
}

// signing is what `tokengate oauth signing show --json` prints.
type signing struct {
	Algorithm string `json:"algorithm"`
	Signing   struct {
		KID   string    `json:"kid"`
		Alg   string    `json:"alg"`
		Since time.Time `json:"since"`
	} `json:"signing"`
	Next *struct {
		KID       string    `json:"kid"`
		Alg       string    `json:"alg"`
		SignsFrom time.Time `json:"signs_from"`
		Mode      string    `json:"mode"`
	} `json:"next"`
	Verifying []struct {
		KID           string    `json:"kid"`
		VerifiesUntil time.Time `json:"verifies_until"`
	} `json:"verifying"`
	Keys []struct {
		KID   string `json:"kid"`
		State string `json:"state"`
	} `json:"keys"`
}

func showSigning(t *testing.T, g *gateway) signing {
	t.Helper()
	out := g.mustCLI("", "oauth", "signing", "show", "--json")
	var s signing
	if i := strings.IndexByte(out, '{'); i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&s) != nil {
		t.Fatalf("signing show printed %s", out)
	}
	return s
}

// kid returns the kid of the key in state ("" if none).
func (s signing) kid(state string) string {
	for _, k := range s.Keys {
		if k.State == state {
			return k.KID
		}
	}
	return ""
}

// fetchJWKS gets the published keys as a third party would.
func fetchJWKS(t *testing.T, g *gateway) (jwk.Set, response) {
	t.Helper()
	r := do(t, http.MethodGet, g.base+jwksPath, nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("JWKS: %d %s", r.status, r.body)
	}
	set, err := jwk.Parse(r.body)
	if err != nil {
		t.Fatalf("jwx cannot parse the JWKS: %v\n%s", err, r.body)
	}
	return set, r
}

func kidsOf(set jwk.Set) []string {
	var kids []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		kids = append(kids, k.KeyID())
	}
	return kids
}

// verifyWithJWKS checks tok with jwx alone, as a resource server elsewhere
// would, and returns its claims.
func verifyWithJWKS(t *testing.T, set jwk.Set, tok string) jwt.Token {
	t.Helper()
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer("tokengate"), jwt.WithAudience("tokengate"))
	if err != nil {
		t.Fatalf("jwx does not verify the access token: %v", err)
	}
	return parsed
}

// TestOAuthClients runs the client-facing flows on both stores, one
// gateway per store: a stock OAuth2 client, header smuggling, switching a
// key off and deleting it, introspection and revocation, and the brute
// force limit. Every subtest uses its own keys.
func TestOAuthClients(t *testing.T) {
	forEachTopology(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: "login_limits 3 100 10m"})
		var secrets []string
		t.Cleanup(func() { g.assertNoSecrets(secrets...) })

		t.Run("x/oauth2 clientcredentials", func(t *testing.T) {
			c := addClient(t, g, "billing", "--scope", "read", "--scope", "write")
			secrets = append(secrets, c.Secret)
			for _, style := range []struct {
				name  string
				style oauth2.AuthStyle
			}{{"AuthStyleInHeader", oauth2.AuthStyleInHeader}, {"AuthStyleInParams", oauth2.AuthStyleInParams}} {
				t.Run(style.name, func(t *testing.T) {
					ctx := context.Background()
					cfg := clientcredentials.Config{
						ClientID: c.ID, ClientSecret: c.Secret, TokenURL: g.base + tokenPath,
						Scopes: []string{"read"}, AuthStyle: style.style,
					}
					tok, err := cfg.Token(ctx)
					if err != nil {
						t.Fatalf("x/oauth2 got no token: %v", err)
					}
					secrets = append(secrets, tok.AccessToken)
					if tok.Type() != "Bearer" || tok.Expiry.IsZero() || tok.Extra("scope") != "read" {
						t.Fatalf("token: type %q expiry %v scope %v", tok.Type(), tok.Expiry, tok.Extra("scope"))
					}
					before := up.count()
					resp, err := cfg.Client(ctx).Get(g.base + "/orders?id=7")
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || up.count() != before+1 {
						t.Fatalf("call through the gateway: %d %s", resp.StatusCode, body)
					}
					seen := up.last(t)
					for k, want := range map[string]string{"X-Auth-User": c.ID, "X-Auth-Token-Type": "oauth", "X-Auth-Scopes": "read"} {
						if got := seen.Header.Values(k); len(got) != 1 || got[0] != want {
							t.Errorf("upstream saw %s = %q, want %q", k, got, want)
						}
					}
					if seen.Header.Get("X-Auth-Token-Id") == "" {
						t.Error("upstream saw no X-Auth-Token-Id")
					}
					if _, ok := seen.Header["Authorization"]; ok {
						t.Error("the access token travelled on to the upstream")
					}
				})
			}

			// The seed's JSON body gets a token too.
			r := do(t, http.MethodPost, g.base+tokenPath, map[string][]string{"Content-Type": {"application/json"}},
				`{"clientId":"`+c.ID+`","clientSecret":"`+c.Secret+`"}`)
			if r.status != http.StatusOK || r.json(t)["access_token"] == nil || r.json(t)["scope"] != "read write" {
				t.Fatalf("seed JSON body: %d %s", r.status, r.body)
			}
			secrets = append(secrets, r.json(t)["access_token"].(string))

			// The stock client understands our refusals (RFC 6749 5.2).
			bad := clientcredentials.Config{ClientID: c.ID, ClientSecret: "tgs_wrong", TokenURL: g.base + tokenPath, AuthStyle: oauth2.AuthStyleInHeader}
			_, err := bad.Token(context.Background())
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong secret: %v", err)
			}
		})

		t.Run("identity header smuggling", func(t *testing.T) {
			c := addClient(t, g, "smuggler")
			tok := requestToken(t, g.base, c, nil, "")
			secrets = append(secrets, c.Secret, tok)
			h := bearer(tok)
			h["X_Auth_User"] = []string{"admin"}
			h["X-Auth-User"] = []string{"admin"}
			h["x-auth-token-type"] = []string{"pat"}
			h["X_Auth_Scopes"] = []string{"admin"}
			mustPass(t, do(t, http.MethodGet, g.base+"/orders", h, ""), "call with smuggled headers")
			seen := up.last(t)
			if got := seen.Header.Values("X-Auth-User"); len(got) != 1 || got[0] != c.ID {
				t.Fatalf("upstream saw X-Auth-User %q, want only %q", got, c.ID)
			}
			if got := seen.Header.Values("X-Auth-Token-Type"); len(got) != 1 || got[0] != "oauth" {
				t.Fatalf("upstream saw X-Auth-Token-Type %q", got)
			}
			for k, v := range seen.Header {
				norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
				if (strings.HasPrefix(norm, "x-auth-") && slices.Contains(v, "admin")) || strings.Contains(k, "_") {
					t.Errorf("smuggled header %s: %q reached the upstream", k, v)
				}
			}
		})

		t.Run("switch off and delete reach a cached token", func(t *testing.T) {
			c := addClient(t, g, "batch")
			tok := requestToken(t, g.base, c, nil, "")
			secrets = append(secrets, c.Secret, tok)
			mustPass(t, callEdge(t, g.base, tok), "fresh token")
			mustPass(t, callEdge(t, g.base, tok), "cached token")

			g.mustCLI("", "oauth", "client", "set", c.ID, "--enabled=false")
			assertRefused(t, g, up, callEdge(t, g.base, tok), http.StatusUnauthorized, "invalid_token")
			r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, c.Secret), ccGrant)
			assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_client")

			g.mustCLI("", "oauth", "client", "set", c.ID, "--enabled=true")
			mustPass(t, callEdge(t, g.base, tok), "switched back on")

			before := up.count()
			g.mustCLI("", "oauth", "client", "delete", c.ID)
			assertRefused(t, g, up, callEdge(t, g.base, tok), http.StatusUnauthorized, "invalid_token")
			r = do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, c.Secret), ccGrant)
			assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_client")
			if up.count() != before {
				t.Error("a refused token reached the upstream")
			}
		})

		t.Run("introspection and revocation", func(t *testing.T) {
			a := addClient(t, g, "reports", "--scope", "read")
			b := addClient(t, g, "other")
			tok := requestToken(t, g.base, a, nil, "")
			secrets = append(secrets, a.Secret, b.Secret, tok)
			mustPass(t, callEdge(t, g.base, tok), "fresh token")

			v := introspect(t, g, a, tok)
			exp, _ := v["exp"].(float64)
			iat, _ := v["iat"].(float64)
			if v["active"] != true || v["client_id"] != a.ID || v["scope"] != "read" || exp-iat != 3600 {
				t.Fatalf("introspect own token: %v", v)
			}
			if v := introspect(t, g, a, "garbage"); v["active"] != false || len(v) != 1 {
				t.Fatalf("introspect garbage: %v", v)
			}

			// Another client cannot revoke it.
			form := url.Values{"token": {tok}}.Encode()
			r := do(t, http.MethodPost, g.base+revokePath, clientBasic(b.ID, b.Secret), form)
			assertRefused(t, g, up, r, http.StatusBadRequest, "unauthorized_client")
			mustPass(t, callEdge(t, g.base, tok), "after a foreign revocation attempt")

			// Its own client can.
			r = do(t, http.MethodPost, g.base+revokePath, clientBasic(a.ID, a.Secret), form)
			if r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			assertRefused(t, g, up, callEdge(t, g.base, tok), http.StatusUnauthorized, "invalid_token")
			if v := introspect(t, g, a, tok); v["active"] != false {
				t.Fatalf("introspect a revoked token: %v", v)
			}

			// A user revokes their own PAT with their password.
			g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
			pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"laptop"}`)
			secrets = append(secrets, pat, alicePassword)
			mustPass(t, callEdge(t, g.base, pat), "fresh PAT")
			h := basic("alice", alicePassword)
			h["Content-Type"] = []string{formType}
			r = do(t, http.MethodPost, g.base+revokePath, h, url.Values{"token": {pat}}.Encode())
			if r.status != http.StatusOK {
				t.Fatalf("user revokes own PAT: %d %s", r.status, r.body)
			}
			assertRefused(t, g, up, callEdge(t, g.base, pat), http.StatusUnauthorized, "invalid_token")
		})

		t.Run("brute force", func(t *testing.T) {
			c := addClient(t, g, "target")
			other := addClient(t, g, "bystander")
			secrets = append(secrets, c.Secret, other.Secret)
			for i := 0; i < 3; i++ {
				// A well-formed secret, but not this key's.
				r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, other.Secret), ccGrant)
				assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_client")
			}
			r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, c.Secret), ccGrant)
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.json(t)["error"] != "rate_limited" {
				t.Fatalf("after 3 failures: %d (Retry-After %q) %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			if strings.Contains(string(r.body), "access_token") {
				t.Fatal("a locked key got a token")
			}
			// Another key from the same address is not locked.
			secrets = append(secrets, requestToken(t, g.base, other, nil, ""))
		})
	})
}

// TestOAuthTokenEndpointErrors: every malformed or refused token request
// gets a JSON error with the RFC 6749 code, and no token.
func TestOAuthTokenEndpointErrors(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	a := addClient(t, g, "reader", "--scope", "read")
	b := addClient(t, g, "writer", "--scope", "write")
	badChecksum := a.Secret[:len(a.Secret)-1] + flip(a.Secret[len(a.Secret)-1])
	jsonType := map[string][]string{"Content-Type": {"application/json"}}
	tests := []struct {
		name    string
		method  string
		query   string
		headers map[string][]string
		body    string
		status  int
		code    string
		// challenge is the WWW-Authenticate scheme expected ("": none).
		challenge string
	}{
		{"wrong secret, Basic", "POST", "", clientBasic(a.ID, b.Secret), ccGrant, 401, "invalid_client", "Basic"},
		{"wrong secret, body", "POST", "", formHeaders(), ccGrant + "&client_id=" + a.ID + "&client_secret=" + b.Secret, 401, "invalid_client", ""},
		{"wrong secret, seed JSON", "POST", "", jsonType, `{"clientId":"` + a.ID + `","clientSecret":"` + b.Secret + `"}`, 401, "invalid_client", ""},
		{"unknown client", "POST", "", clientBasic("tgc_0000000000000000", a.Secret), ccGrant, 401, "invalid_client", "Basic"},
		{"secret of the wrong shape", "POST", "", clientBasic(a.ID, "hunter2hunter2"), ccGrant, 401, "invalid_client", "Basic"},
		{"secret with a bad checksum", "POST", "", clientBasic(a.ID, badChecksum), ccGrant, 401, "invalid_client", "Basic"},
		{"no credentials", "POST", "", formHeaders(), ccGrant, 401, "invalid_client", ""},
		{"unsupported grant type", "POST", "", clientBasic(a.ID, a.Secret), "grant_type=password&username=a&password=b", 400, "unsupported_grant_type", ""},
		{"missing grant_type", "POST", "", clientBasic(a.ID, a.Secret), "scope=read", 400, "invalid_request", ""},
		{"duplicated grant_type", "POST", "", clientBasic(a.ID, a.Secret), ccGrant + "&" + ccGrant, 400, "invalid_request", ""},
		{"duplicated client_id", "POST", "", formHeaders(), ccGrant + "&client_id=" + a.ID + "&client_id=" + a.ID + "&client_secret=" + a.Secret, 400, "invalid_request", ""},
		{"Basic and body credentials", "POST", "", clientBasic(a.ID, a.Secret), ccGrant + "&client_id=" + a.ID, 400, "invalid_request", ""},
		{"two Authorization headers", "POST", "", withHeader(clientBasic(a.ID, a.Secret), "Authorization", clientBasic(a.ID, a.Secret)["Authorization"][0], clientBasic(a.ID, a.Secret)["Authorization"][0]), ccGrant, 400, "invalid_request", ""},
		{"parameters in the URL", "POST", "?" + ccGrant, clientBasic(a.ID, a.Secret), "", 400, "invalid_request", ""},
		{"wrong content type", "POST", "", withHeader(clientBasic(a.ID, a.Secret), "Content-Type", "text/plain"), ccGrant, 400, "invalid_request", ""},
		{"JSON with an unknown field", "POST", "", jsonType, `{"clientId":"` + a.ID + `","clientSecret":"` + a.Secret + `","admin":true}`, 400, "invalid_request", ""},
		{"scope not granted to the key", "POST", "", clientBasic(a.ID, a.Secret), ccGrant + "&scope=read+write", 400, "invalid_scope", ""},
		{"malformed scope", "POST", "", clientBasic(a.ID, a.Secret), ccGrant + "&scope=%22read%22", 400, "invalid_scope", ""},
		{"GET", "GET", "", clientBasic(a.ID, a.Secret), "", 405, "method_not_allowed", ""},
	}
	before := up.count()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, g.base+tokenPath+tt.query, tt.headers, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			v := r.json(t)
			if v["error"] != tt.code || v["error_description"] == nil {
				t.Fatalf("error %v, want %q: %s", v["error"], tt.code, r.body)
			}
			if _, ok := v["access_token"]; ok {
				t.Fatal("an error answer holds a token")
			}
			if r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", r.header)
			}
			ch := r.header.Get("WWW-Authenticate")
			switch {
			case tt.challenge == "" && ch != "":
				t.Errorf("unexpected challenge %q", ch)
			case tt.challenge != "" && !strings.HasPrefix(ch, tt.challenge+" "):
				t.Errorf("challenge %q, want %s", ch, tt.challenge)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
		})
	}
	if up.count() != before {
		t.Error("a token request reached the upstream")
	}
	// Nothing was created: still the two keys, and both still get tokens
	// (the failures stayed under the brute-force limit).
	if out := g.mustCLI("", "oauth", "client", "list"); strings.Count(out, "tgc_") != 2 {
		t.Fatalf("client list after the errors:\n%s", out)
	}
	tok := requestToken(t, g.base, a, nil, "&scope=read")
	mustPass(t, callEdge(t, g.base, tok), "token after the errors")
	g.assertNoSecrets(a.Secret, b.Secret, tok)
}

// TestOAuthJWKSVerification: a third party verifies our access tokens with
// jwx and nothing but the published JWKS, for every asymmetric algorithm;
// an HS256 secret is never published.
func TestOAuthJWKSVerification(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			up := startUpstream(t)
			g := startGateway(t, embedded, up, gatewayConfig{appOptions: "signing " + alg + "\n\t\tjwks_max_age 90s"})
			c := addClient(t, g, "verifier", "--scope", "read")
			tok := requestToken(t, g.base, c, nil, "")
			set, r := fetchJWKS(t, g)
			if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=90") {
				t.Errorf("JWKS Cache-Control %q", cc)
			}
			if alg == "HS256" {
				var raw struct {
					Keys []map[string]any `json:"keys"`
				}
				if err := json.Unmarshal(r.body, &raw); err != nil {
					t.Fatal(err)
				}
				for _, k := range raw.Keys {
					if _, ok := k["k"]; ok {
						t.Fatalf("the JWKS publishes an HS256 secret: %s", r.body)
					}
				}
				if set.Len() != 0 || strings.Contains(string(r.body), `"k"`) {
					t.Fatalf("HS256 JWKS: %s", r.body)
				}
				mustPass(t, callEdge(t, g.base, tok), "HS256 token at the edge")
				return
			}
			msg, err := jws.Parse([]byte(tok))
			if err != nil || len(msg.Signatures()) != 1 {
				t.Fatalf("jws.Parse: %v", err)
			}
			h := msg.Signatures()[0].ProtectedHeaders()
			if h.Type() != "at+jwt" || h.KeyID() == "" || h.Algorithm().String() != alg {
				t.Fatalf("header typ %q kid %q alg %q", h.Type(), h.KeyID(), h.Algorithm())
			}
			if !slices.Contains(kidsOf(set), h.KeyID()) {
				t.Fatalf("kid %s is not in the JWKS %v", h.KeyID(), kidsOf(set))
			}
			claims := verifyWithJWKS(t, set, tok)
			if claims.Subject() != c.ID {
				t.Fatalf("sub %q, want %q", claims.Subject(), c.ID)
			}
			if cid, _ := claims.Get("client_id"); cid != c.ID {
				t.Fatalf("client_id %v", cid)
			}
			// A token altered in transit does not verify with jwx either.
			parts := strings.Split(tok, ".")
			forged, _ := json.Marshal(map[string]any{"iss": "tokengate", "aud": "tokengate", "sub": "admin", "client_id": "admin",
				"exp": time.Now().Add(time.Hour).Unix(), "jti": "x"})
			parts[1] = base64.RawURLEncoding.EncodeToString(forged)
			if _, err := jwt.Parse([]byte(strings.Join(parts, ".")), jwt.WithKeySet(set)); err == nil {
				t.Fatal("jwx verified a forged token")
			}
			assertRefused(t, g, up, callEdge(t, g.base, strings.Join(parts, ".")), http.StatusUnauthorized, "invalid_token")
			g.assertNoSecrets(c.Secret, tok)
		})
	}
}

// TestOAuthIPRules: a key's allow-list is checked against Caddy's client
// address at the token endpoint and at the edge, so a spoofed
// X-Forwarded-For counts only from a trusted proxy.
func TestOAuthIPRules(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	office := addClient(t, g, "office", "--allow-ip", "203.0.113.0/24")
	spoof := map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}

	r := do(t, http.MethodPost, g.base+tokenPath, withHeader(clientBasic(office.ID, office.Secret), "X-Forwarded-For", "203.0.113.7"), ccGrant)
	assertRefused(t, g, up, r, http.StatusBadRequest, "unauthorized_client")
	r = do(t, http.MethodPost, g.trusted+tokenPath, withHeader(clientBasic(office.ID, office.Secret), "X-Forwarded-For", "198.51.100.1"), ccGrant)
	assertRefused(t, g, up, r, http.StatusBadRequest, "unauthorized_client")

	// Through the trusted listener the header counts: a token.
	tok := requestToken(t, g.trusted, office, spoof, "")
	spoofed := withHeader(bearer(tok), "X-Forwarded-For", "203.0.113.7")
	assertRefused(t, g, up, do(t, http.MethodGet, g.base+"/", spoofed, ""), http.StatusForbidden, "ip_not_allowed")
	assertRefused(t, g, up, callEdge(t, g.trusted, tok), http.StatusForbidden, "ip_not_allowed")
	mustPass(t, do(t, http.MethodGet, g.trusted+"/", spoofed, ""), "through a trusted proxy")
	if got := up.last(t).Header.Get("X-Auth-User"); got != office.ID {
		t.Fatalf("upstream saw X-Auth-User %q", got)
	}

	// An allow-list set on a key whose token is in use (and cached).
	roaming := addClient(t, g, "roaming")
	rtok := requestToken(t, g.base, roaming, nil, "")
	mustPass(t, callEdge(t, g.base, rtok), "before the allow-list")
	mustPass(t, callEdge(t, g.base, rtok), "cached, before the allow-list")
	g.mustCLI("", "oauth", "client", "set", roaming.ID, "--allow-ip", "203.0.113.0/24")
	assertRefused(t, g, up, callEdge(t, g.base, rtok), http.StatusForbidden, "ip_not_allowed")
	mustPass(t, do(t, http.MethodGet, g.trusted+"/", withHeader(bearer(rtok), "X-Forwarded-For", "203.0.113.9"), ""), "allowed address")
	r = do(t, http.MethodPost, g.base+tokenPath, clientBasic(roaming.ID, roaming.Secret), ccGrant)
	assertRefused(t, g, up, r, http.StatusBadRequest, "unauthorized_client")
	g.assertNoSecrets(office.Secret, roaming.Secret, tok, rtok)
}

// TestOAuthKeyRotation: resetting the HS256 key in grace mode keeps old
// tokens working, in immediate mode refuses them at once, and nothing
// happens without --confirm.
func TestOAuthKeyRotation(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	c := addClient(t, g, "rotor")
	t1 := requestToken(t, g.base, c, nil, "")
	kid1 := kidOf(t, t1)
	mustPass(t, callEdge(t, g.base, t1), "first token")
	s := showSigning(t, g)
	if s.Algorithm != "HS256" || s.kid("active") != kid1 || s.kid("next") == "" {
		t.Fatalf("signing show: %+v (token kid %s)", s, kid1)
	}

	// Without --confirm: refused, and nothing changes.
	if out, err := g.cli("", "oauth", "signing", "set", "--reset"); err == nil || !strings.Contains(out, "confirm") {
		t.Fatalf("reset without --confirm: %v\n%s", err, out)
	}
	if out, err := g.cli("", "oauth", "signing", "set", "--reset", "--immediate"); err == nil || !strings.Contains(out, "confirm") {
		t.Fatalf("immediate reset without --confirm: %v\n%s", err, out)
	}
	if after := showSigning(t, g); !slices.Equal(after.Keys, s.Keys) {
		t.Fatalf("an unconfirmed reset changed the keys: %+v -> %+v", s.Keys, after.Keys)
	}
	mustPass(t, callEdge(t, g.base, t1), "after unconfirmed resets")
	if kidOf(t, requestToken(t, g.base, c, nil, "")) != kid1 {
		t.Fatal("an unconfirmed reset changed the signing key")
	}

	// The mode is never implied: --reset --confirm alone names the modes.
	if out, err := g.cli("", "oauth", "signing", "set", "--reset", "--confirm"); err == nil || !strings.Contains(out, "--immediate") || !strings.Contains(out, "--grace") {
		t.Fatalf("reset without a mode: %v\n%s", err, out)
	}

	// Grace: the old token keeps working, new tokens have a new kid.
	g.mustCLI("", "oauth", "signing", "set", "--reset", "--grace", "--confirm")
	mustPass(t, callEdge(t, g.base, t1), "old token after a grace reset")
	t2 := requestToken(t, g.base, c, nil, "")
	kid2 := kidOf(t, t2)
	if kid2 == kid1 || kid2 != s.kid("next") {
		t.Fatalf("after a grace reset the kid is %s (was %s, next was %s)", kid2, kid1, s.kid("next"))
	}
	mustPass(t, callEdge(t, g.base, t2), "new token after a grace reset")

	// Immediate: the token signed with the key just replaced is refused
	// at once, though it is cached.
	g.mustCLI("", "oauth", "signing", "set", "--reset", "--immediate", "--confirm")
	assertRefused(t, g, up, callEdge(t, g.base, t2), http.StatusUnauthorized, "invalid_token")
	// So is one signed with the key before it, still kept (retiring) from
	// the grace reset: an immediate reset leaves no old key behind.
	assertRefused(t, g, up, callEdge(t, g.base, t1), http.StatusUnauthorized, "invalid_token")
	if s := showSigning(t, g); s.kid("retiring") != "" || len(s.Keys) != 2 {
		t.Fatalf("keys after an immediate reset: %+v", s.Keys)
	}
	t3 := requestToken(t, g.base, c, nil, "")
	if k := kidOf(t, t3); k == kid2 || k == kid1 {
		t.Fatalf("after an immediate reset the kid is still %s", k)
	}
	mustPass(t, callEdge(t, g.base, t3), "new token after an immediate reset")

	// The JWKS never publishes an HS256 key, whatever the rotations.
	if _, r := fetchJWKS(t, g); strings.Contains(string(r.body), `"k"`) || strings.Contains(string(r.body), kid2) {
		t.Fatalf("JWKS after HS256 rotations: %s", r.body)
	}
	g.assertNoSecrets(c.Secret, t1, t2, t3)
}

// TestOAuthAsymmetricRotationPublishesFirst: with RS256, the next key is in
// the JWKS before any token is signed with it, so a verifier that caches
// the JWKS for jwks_max_age never meets an unknown kid.
func TestOAuthAsymmetricRotationPublishesFirst(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{appOptions: "signing RS256\n\t\tjwks_max_age 2s"})
	c := addClient(t, g, "rsa")
	set0, r := fetchJWKS(t, g)
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=2") {
		t.Errorf("JWKS Cache-Control %q", cc)
	}
	s := showSigning(t, g)
	active, next := s.kid("active"), s.kid("next")
	if s.Algorithm != "RS256" || !slices.Contains(kidsOf(set0), active) || !slices.Contains(kidsOf(set0), next) {
		t.Fatalf("JWKS %v does not list active %s and next %s", kidsOf(set0), active, next)
	}
	t1 := requestToken(t, g.base, c, nil, "")
	if kidOf(t, t1) != active {
		t.Fatalf("token kid %s, active %s", kidOf(t, t1), active)
	}
	verifyWithJWKS(t, set0, t1)

	g.mustCLI("", "oauth", "signing", "set", "--reset", "--grace", "--confirm")
	// Wait for the state change (the next key becomes usable), not for a
	// fixed time: each round fetches the JWKS first, then a token.
	var t2 string
	var set jwk.Set
	published := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); ; {
		set, _ = fetchJWKS(t, g)
		for _, k := range kidsOf(set) {
			published[k] = true
		}
		tok := requestToken(t, g.base, c, nil, "")
		if kid := kidOf(t, tok); kid != active {
			if !published[kid] {
				t.Fatalf("a token was signed with %s before the JWKS listed it", kid)
			}
			t2 = tok
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token signed with the new key within 10s; signing: %+v", showSigning(t, g))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if kidOf(t, t2) != next {
		t.Fatalf("new kid %s, want the published next key %s", kidOf(t, t2), next)
	}
	verifyWithJWKS(t, set, t2)
	// Grace: the old token still verifies, at the edge and with the JWKS.
	mustPass(t, callEdge(t, g.base, t1), "old token after the rotation")
	mustPass(t, callEdge(t, g.base, t2), "new token")
	set, _ = fetchJWKS(t, g)
	verifyWithJWKS(t, set, t1)
	after := showSigning(t, g)
	if after.kid("active") != next || after.kid("retiring") != active || !slices.Contains(kidsOf(set), after.kid("next")) {
		t.Fatalf("after the rotation: %+v, JWKS %v", after, kidsOf(set))
	}
}

// TestOAuthAuditLog: one JSON line per token request in
// <audit_log>/auth/oauth/<day>, with no secret and no token in it.
func TestOAuthAuditLog(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{appOptions: "audit_log " + dir})
	c := addClient(t, g, "payroll export")
	other := addClient(t, g, "other")
	start := time.Now()
	tok := requestToken(t, g.base, c, nil, "")
	r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, other.Secret), ccGrant)
	assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_client")
	// Id and secret swapped, a common slip: the secret must not be logged
	// as the name.
	r = do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.Secret, c.ID), ccGrant)
	assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_client")

	files, err := filepath.Glob(filepath.Join(dir, "auth", "oauth", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no audit file under %s: %v", dir, err)
	}
	day := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	var lines []map[string]any
	var raw strings.Builder
	for _, f := range files { // one file, unless the test ran across midnight
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(b)
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var v map[string]any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("audit line is not JSON: %q", sc.Text())
			}
			ts, err := time.Parse(time.RFC3339Nano, v["timestamp"].(string))
			if err != nil || !day.MatchString(filepath.Base(f)) || ts.Format("2006-01-02") != filepath.Base(f) {
				t.Fatalf("line %v in file %s", v, filepath.Base(f))
			}
			if ts.Before(start.Add(-time.Minute)) || ts.After(time.Now().Add(time.Minute)) {
				t.Fatalf("timestamp %v is not now", ts)
			}
			lines = append(lines, v)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d audit lines, want 3:\n%s", len(lines), raw.String())
	}
	host := strings.TrimPrefix(g.base, "http://")
	for i, want := range []struct {
		name, id, level string
		code            float64
	}{{c.Name, c.ID, "INFO", 200}, {c.Name, c.ID, "ERROR", 401}, {"", "", "ERROR", 401}} {
		// Every line names the key by its name, a failed request's too,
		// and the client id it claimed, if that has a client id's shape.
		l := lines[i]
		if id, _ := l["client_id"].(string); id != want.id {
			t.Errorf("line %d: client_id %q, want %q", i, id, want.id)
		}
		if l["name"] != want.name || l["hostname"] != host || l["ip"] != "127.0.0.1" || l["level"] != want.level || l["resp_code"] != want.code {
			t.Errorf("line %d: %v, want name %q level %s code %v", i, l, want.name, want.level, want.code)
		}
		resp, has := l["response"].(string)
		if want.code == 200 && has {
			t.Errorf("success line has a response: %v", l)
		}
		if want.code != 200 && !strings.Contains(resp, "invalid_client") {
			t.Errorf("failure line response %q", resp)
		}
	}
	for _, s := range []string{c.Secret, other.Secret, tok} {
		if strings.Contains(raw.String(), s) {
			t.Errorf("the audit log holds a secret (%.8s...)", s)
		}
	}
	g.assertNoSecrets(c.Secret, other.Secret, tok)
}

// TestRefusedTokenDoesNotTellWhy: a forged or tampered token is refused
// with the RFC 6750 code and a generic description in the body and in
// WWW-Authenticate; the reason (signature, kid...) goes to the debug log
// only.
func TestRefusedTokenDoesNotTellWhy(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	c := addClient(t, g, "reader", "--scope", "read")
	tok := requestToken(t, g.base, c, nil, "")
	parts := strings.Split(tok, ".")
	badSig := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"no-such-kid"}`))
	unknownKid := hdr + "." + parts[1] + "." + parts[2]
	for name, forged := range map[string]string{"bad signature": badSig, "unknown kid": unknownKid} {
		r := callEdge(t, g.base, forged)
		assertRefused(t, g, up, r, http.StatusUnauthorized, "invalid_token")
		answer := strings.ToLower(string(r.body) + r.header.Get("WWW-Authenticate"))
		for _, why := range []string{"signature", "kid", "signing key", "verif"} {
			if strings.Contains(answer, why) {
				t.Errorf("%s: the answer tells the reason (%q): %s", name, why, answer)
			}
		}
		if d := r.json(t)["error_description"]; d != "the access token is invalid" {
			t.Errorf("%s: error_description %q", name, d)
		}
	}
	g.waitLog("unknown signing key") // the debug log keeps the reason (it may lag the answer)
}

// TestOAuthPostmanBodies: the seed's clientId/clientSecret without
// grant_type get a token in every body form Postman sends; an RFC 6749
// request without grant_type is still 400.
func TestOAuthPostmanBodies(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	c := addClient(t, g, "postman", "--scope", "read")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("clientId", c.ID)
	_ = mw.WriteField("clientSecret", c.Secret)
	_ = mw.Close()
	seedForm := url.Values{"clientId": {c.ID}, "clientSecret": {c.Secret}}.Encode()
	for name, req := range map[string]struct{ ctype, body string }{
		"x-www-form-urlencoded": {formType, seedForm},
		"form-data":             {mw.FormDataContentType(), mp.String()},
		"raw JSON":              {"application/json", `{"clientId":"` + c.ID + `","clientSecret":"` + c.Secret + `"}`},
	} {
		r := do(t, http.MethodPost, g.base+tokenPath, map[string][]string{"Content-Type": {req.ctype}, "User-Agent": {"PostmanRuntime/7.39.0"}}, req.body)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		tok, _ := r.json(t)["access_token"].(string)
		mustPass(t, callEdge(t, g.base, tok), name)
	}
	rfc := url.Values{"client_id": {c.ID}, "client_secret": {c.Secret}}.Encode()
	r := do(t, http.MethodPost, g.base+tokenPath, formHeaders(), rfc)
	assertRefused(t, g, up, r, http.StatusBadRequest, "invalid_request")
	if r.json(t)["field"] != "grant_type" {
		t.Errorf("RFC 6749 request without grant_type: %s", r.body)
	}
	g.assertNoSecrets(c.Secret)
}
