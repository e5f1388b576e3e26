package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

const (
	formType = "application/x-www-form-urlencoded"
	callerIP = "192.0.2.1"
)

// call is one request to an endpoint.
type call struct {
	path   string // "token" (default), "introspect" or "revoke"
	method string // default POST
	query  string
	ctype  string // default form
	body   string
	basic  []string // id and secret (or user and password) for HTTP Basic
	ip     string   // default callerIP
}

// form encodes name, value pairs in order, repeats included.
func form(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, url.QueryEscape(kv[i])+"="+url.QueryEscape(kv[i+1]))
	}
	return strings.Join(parts, "&")
}

func (e *env) handler() http.Handler {
	serve := map[string]func(http.ResponseWriter, *http.Request, oauth.Request){
		"/token": e.ep.ServeToken, "/introspect": e.ep.ServeIntrospect, "/revoke": e.ep.ServeRevoke,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		serve[r.URL.Path](w, r, oauth.Request{ClientIP: ip, Host: r.Host})
	})
}

func (e *env) do(t *testing.T, c call) *httptest.ResponseRecorder {
	t.Helper()
	if c.path == "" {
		c.path = "token"
	}
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.ctype == "" {
		c.ctype = formType
	}
	if c.ip == "" {
		c.ip = callerIP
	}
	target := "http://api.example/" + c.path
	if c.query != "" {
		target += "?" + c.query
	}
	r := httptest.NewRequest(c.method, target, strings.NewReader(c.body))
	r.RemoteAddr = net.JoinHostPort(c.ip, "40000")
	r.Header.Set("Content-Type", c.ctype)
	if c.basic != nil {
		// RFC 6749 2.3.1: both parts form-encoded first.
		r.SetBasicAuth(url.QueryEscape(c.basic[0]), url.QueryEscape(c.basic[1]))
	}
	w := httptest.NewRecorder()
	e.handler().ServeHTTP(w, r)
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return m
}

func fieldNames(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// viaBody is a token request with the credentials in the form body.
func viaBody(c oauthclient.CreatedClient, extra ...string) call {
	return call{body: form(append([]string{"grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret}, extra...)...)}
}

// viaBasic is a token request with HTTP Basic.
func viaBasic(c oauthclient.CreatedClient, extra ...string) call {
	return call{body: form(append([]string{"grant_type", "client_credentials"}, extra...)...), basic: []string{c.ClientID, c.ClientSecret}}
}

// accessToken gets an access token for c through the endpoint.
func (e *env) accessToken(t *testing.T, c oauthclient.CreatedClient) string {
	t.Helper()
	w := e.do(t, viaBasic(c))
	if w.Code != http.StatusOK {
		t.Fatalf("token request: %d %s", w.Code, w.Body)
	}
	return decode(t, w)["access_token"].(string)
}

func TestTokenSuccess(t *testing.T) {
	cases := []struct {
		name  string
		call  func(oauthclient.CreatedClient) call
		scope string
	}{
		{"seed JSON body", func(c oauthclient.CreatedClient) call {
			return call{ctype: "application/json", body: `{"clientId":"` + c.ClientID + `","clientSecret":"` + c.ClientSecret + `"}`}
		}, "read write"},
		{"seed JSON body with grant type", func(c oauthclient.CreatedClient) call {
			return call{ctype: "application/json; charset=utf-8", body: `{"grant_type":"client_credentials","clientId":"` + c.ClientID + `","clientSecret":"` + c.ClientSecret + `"}`}
		}, "read write"},
		{"form and HTTP Basic", func(c oauthclient.CreatedClient) call { return viaBasic(c) }, "read write"},
		{"form body credentials", func(c oauthclient.CreatedClient) call { return viaBody(c) }, "read write"},
		{"scope narrowing", func(c oauthclient.CreatedClient) call { return viaBasic(c, "scope", "write") }, "write"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.NewClient(t, oauthclient.NewClient{})
			w := e.do(t, tc.call(c))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			m := decode(t, w)
			if f := fieldNames(m); !slices.Equal(f, []string{"access_token", "expires_in", "scope", "token_type"}) {
				t.Errorf("fields %v", f)
			}
			if m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) || m["scope"] != tc.scope {
				t.Errorf("answer %v", m)
			}
			en, err := e.Verify(t, m["access_token"].(string))
			if err != nil || en.Refusal != nil || en.ScopeHeader != tc.scope {
				t.Errorf("the access token does not verify: %+v, %v", en, err)
			}
		})
	}
}

func TestTokenWithOAuth2Library(t *testing.T) {
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		t.Run(map[oauth2.AuthStyle]string{oauth2.AuthStyleInHeader: "header", oauth2.AuthStyleInParams: "params"}[style], func(t *testing.T) {
			e := newEnv(t)
			c := e.NewClient(t, oauthclient.NewClient{})
			srv := httptest.NewServer(e.handler())
			defer srv.Close()
			cfg := clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: srv.URL + "/token", Scopes: []string{"read"}, AuthStyle: style}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if en, err := e.Verify(t, tok.AccessToken); err != nil || en.Refusal != nil || en.ScopeHeader != "read" {
				t.Errorf("Verify = %+v, %v", en, err)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	off := false
	cases := []struct {
		name   string
		client oauthclient.NewClient
		call   func(oauthclient.CreatedClient) call
		status int
		code   string
		// challenge: a WWW-Authenticate: Basic is expected.
		challenge bool
	}{
		{"unsupported grant type", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return call{body: form("grant_type", "password", "client_id", c.ClientID, "client_secret", c.ClientSecret)}
		}, 400, "unsupported_grant_type", false},
		{"unsupported grant type with Basic", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return call{body: form("grant_type", "authorization_code"), basic: []string{c.ClientID, c.ClientSecret}}
		}, 400, "unsupported_grant_type", false},
		{"missing grant type", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return call{body: form("client_id", c.ClientID, "client_secret", c.ClientSecret)}
		}, 400, "invalid_request", false},
		{"repeated parameter", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return viaBody(c, "grant_type", "client_credentials")
		}, 400, "invalid_request", false},
		{"repeated scope", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return viaBasic(c, "scope", "read", "scope", "write")
		}, 400, "invalid_request", false},
		{"Basic and body credentials", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return viaBasic(c, "client_id", c.ClientID)
		}, 400, "invalid_request", false},
		{"no credentials", oauthclient.NewClient{}, func(oauthclient.CreatedClient) call {
			return call{body: form("grant_type", "client_credentials")}
		}, 401, "invalid_client", false},
		{"wrong secret with Basic", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			other, _ := token.NewClientSecret()
			return call{body: form("grant_type", "client_credentials"), basic: []string{c.ClientID, other}}
		}, 401, "invalid_client", true},
		{"wrong secret in the body", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			other, _ := token.NewClientSecret()
			return call{body: form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", other)}
		}, 401, "invalid_client", false},
		{"unknown client", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return call{body: form("grant_type", "client_credentials"), basic: []string{"tgc_0000000000000000", c.ClientSecret}}
		}, 401, "invalid_client", true},
		{"disabled client", oauthclient.NewClient{Enabled: &off}, func(c oauthclient.CreatedClient) call { return viaBasic(c) }, 401, "invalid_client", true},
		{"outside allowed IPs", oauthclient.NewClient{AllowedIPs: []string{"10.0.0.0/8"}}, func(c oauthclient.CreatedClient) call { return viaBasic(c) }, 400, "unauthorized_client", false},
		{"scope not allowed", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call { return viaBasic(c, "scope", "admin") }, 400, "invalid_scope", false},
		{"scope partly allowed", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call { return viaBody(c, "scope", "read admin") }, 400, "invalid_scope", false},
		{"malformed scope", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call { return viaBody(c, "scope", `re"ad`) }, 400, "invalid_scope", false},
		{"wrong content type", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			w := viaBody(c)
			w.ctype = "text/plain"
			return w
		}, 400, "invalid_request", false},
		{"JSON with unknown field", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			return call{ctype: "application/json", body: `{"clientId":"` + c.ClientID + `","clientSecret":"` + c.ClientSecret + `","x":1}`}
		}, 400, "invalid_request", false},
		{"GET", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			w := viaBasic(c)
			w.method = http.MethodGet
			return w
		}, 405, "method_not_allowed", false},
		{"query string", oauthclient.NewClient{}, func(c oauthclient.CreatedClient) call {
			w := viaBasic(c)
			w.query = "scope=read"
			return w
		}, 400, "invalid_request", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			w := e.do(t, tc.call(e.NewClient(t, tc.client)))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if code := decode(t, w)["error"]; code != tc.code {
				t.Errorf("error %q, want %q", code, tc.code)
			}
			challenge := w.Header().Get("WWW-Authenticate")
			if tc.challenge != strings.HasPrefix(challenge, `Basic realm="tokengate"`) || (!tc.challenge && challenge != "") {
				t.Errorf("WWW-Authenticate %q (Basic expected: %v)", challenge, tc.challenge)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if tc.status == 405 && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q", w.Header().Get("Allow"))
			}
		})
	}
}

func TestTokenRateLimit(t *testing.T) {
	e := newEnv(t)
	c := e.NewClient(t, oauthclient.NewClient{})
	other, _ := token.NewClientSecret()
	wrong := call{body: form("grant_type", "client_credentials"), basic: []string{c.ClientID, other}}
	for i := range perClient {
		if w := e.do(t, wrong); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, w.Code)
		}
	}
	for _, tc := range []struct {
		name string
		call call
	}{{"wrong secret", wrong}, {"right secret", viaBasic(c)}} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(t, tc.call)
			if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "900" {
				t.Errorf("status %d, Retry-After %q; want 429 and 900", w.Code, w.Header().Get("Retry-After"))
			}
			if code := decode(t, w)["error"]; code != "rate_limited" {
				t.Errorf("error %q", code)
			}
		})
	}
	t.Run("other client", func(t *testing.T) {
		if w := e.do(t, viaBasic(e.NewClient(t, oauthclient.NewClient{}))); w.Code != http.StatusOK {
			t.Errorf("status %d: a locked client locked another", w.Code)
		}
	})
}

// auditLines reads today's audit file.
func (e *env) auditLines(t *testing.T) ([]audit.Record, string) {
	t.Helper()
	b, err := os.ReadFile(e.ep.Audit.Path(e.Clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs, string(b)
}

func TestTokenAudit(t *testing.T) {
	e := newEnv(t)
	c := e.NewClient(t, oauthclient.NewClient{Name: "deploy bot"})
	other, _ := token.NewClientSecret()
	disabled := false
	off := e.NewClient(t, oauthclient.NewClient{Name: "switched off", Enabled: &disabled})
	fenced := e.NewClient(t, oauthclient.NewClient{Name: "fenced", AllowedIPs: []string{"198.51.100.0/24"}})
	unknown := e.NewClient(t, oauthclient.NewClient{Name: "deleted"})
	if err := e.Clients.Delete(context.Background(), unknown.ClientID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		call  call
		level string
		code  int
		who   string
	}{
		{"success with Basic", viaBasic(c), audit.LevelInfo, 200, "deploy bot"},
		{"success with body credentials", viaBody(c), audit.LevelInfo, 200, "deploy bot"},
		{"wrong secret", call{body: form("grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", other)}, audit.LevelError, 401, "deploy bot"},
		{"unsupported grant type", call{body: form("grant_type", "password", "client_id", c.ClientID, "client_secret", c.ClientSecret)}, audit.LevelError, 400, "deploy bot"},
		{"key switched off", viaBasic(off), audit.LevelError, 401, "switched off"},
		{"address not allowed", viaBasic(fenced), audit.LevelError, 400, "fenced"},
		{"unknown client", call{body: form("grant_type", "client_credentials", "client_id", unknown.ClientID, "client_secret", unknown.ClientSecret)}, audit.LevelError, 401, ""},
		{"scope not allowed", viaBasic(c, "scope", "admin"), audit.LevelError, 400, "deploy bot"},
		{"id and secret swapped", call{body: form("grant_type", "client_credentials", "client_id", c.ClientSecret, "client_secret", c.ClientID)}, audit.LevelError, 401, ""},
		{"secret as Basic user", call{body: form("grant_type", "client_credentials"), basic: []string{c.ClientSecret, c.ClientSecret}}, audit.LevelError, 401, ""},
	}
	var issued []string
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(t, tc.call)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			if tc.code == 200 {
				issued = append(issued, decode(t, w)["access_token"].(string))
			}
			recs, _ := e.auditLines(t)
			if len(recs) != i+1 {
				t.Fatalf("%d audit lines after %d requests", len(recs), i+1)
			}
			r := recs[i]
			if r.Level != tc.level || r.RespCode != tc.code || r.Name != tc.who || r.IP != callerIP || r.Hostname != "api.example" {
				t.Errorf("audit %+v", r)
			}
			if (r.Response != "") != (tc.code != 200) {
				t.Errorf("response %q for status %d", r.Response, tc.code)
			}
		})
	}
	t.Run("no secrets", func(t *testing.T) {
		_, file := e.auditLines(t)
		for _, s := range append([]string{c.ClientSecret, other}, issued...) {
			if strings.Contains(file, s) {
				t.Errorf("the audit file holds a secret or token: %s", file)
			}
		}
	})
}

// introspect asks about tok with the given credentials.
func (e *env) introspect(t *testing.T, tok string, basic ...string) map[string]any {
	t.Helper()
	w := e.do(t, call{path: "introspect", body: form("token", tok), basic: basic})
	if w.Code != http.StatusOK {
		t.Fatalf("introspect: %d %s", w.Code, w.Body)
	}
	return decode(t, w)
}

func (e *env) newPAT(t *testing.T) pat.Created {
	t.Helper()
	p, err := e.pats.Create(context.Background(), "alice", pat.CreateRequest{Label: "laptop", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntrospect(t *testing.T) {
	e := newEnv(t)
	rs := e.NewClient(t, oauthclient.NewClient{Name: "resource server"})
	c := e.NewClient(t, oauthclient.NewClient{})
	at := e.accessToken(t, c)
	p := e.newPAT(t)
	unknownPAT, _ := token.NewPAT()
	cases := []struct {
		name  string
		tok   string
		basic []string
		want  map[string]any // expected members (all of them when inactive)
	}{
		{"access token", at, []string{rs.ClientID, rs.ClientSecret},
			map[string]any{"active": true, "client_id": c.ClientID, "scope": "read write", "tokengate_kind": "oauth", "iss": issuer, "token_type": "Bearer"}},
		{"PAT", p.Token, []string{rs.ClientID, rs.ClientSecret},
			map[string]any{"active": true, "username": "alice", "scope": "read", "tokengate_kind": "pat", "jti": p.ID}},
		{"garbage", "garbage", []string{rs.ClientID, rs.ClientSecret}, map[string]any{"active": false}},
		{"unknown PAT", unknownPAT, []string{rs.ClientID, rs.ClientSecret}, map[string]any{"active": false}},
		{"user's own PAT", p.Token, []string{"alice", alicePassword}, map[string]any{"active": true, "username": "alice"}},
		{"user asking about an access token", at, []string{"alice", alicePassword}, map[string]any{"active": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.introspect(t, tc.tok, tc.basic...)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v (answer %v)", k, got[k], v, got)
				}
			}
			if tc.want["active"] == false && len(got) != 1 {
				t.Errorf("inactive answer says more: %v", got)
			}
		})
	}
	t.Run("unauthenticated", func(t *testing.T) {
		if w := e.do(t, call{path: "introspect", body: form("token", at)}); w.Code != http.StatusUnauthorized {
			t.Errorf("status %d", w.Code)
		}
	})
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	a := e.NewClient(t, oauthclient.NewClient{Name: "a"})
	b := e.NewClient(t, oauthclient.NewClient{Name: "b"})
	at := e.accessToken(t, a)
	p := e.newPAT(t)
	aCreds, bCreds, alice := []string{a.ClientID, a.ClientSecret}, []string{b.ClientID, b.ClientSecret}, []string{"alice", alicePassword}
	unknownPAT, _ := token.NewPAT()
	check := func(tok string) error {
		_, err := e.Checker.Check(context.Background(), gate.Request{Token: tok})
		return err
	}
	// Steps run in order: the refused ones first, while the tokens live.
	steps := []struct {
		name   string
		tok    string
		basic  []string
		status int
		code   string
		after  func(t *testing.T)
	}{
		{"another client", at, bCreds, 400, "unauthorized_client", func(t *testing.T) {
			if err := check(at); err != nil {
				t.Errorf("refused revocation revoked the token: %v", err)
			}
		}},
		{"a user revoking an access token", at, alice, 400, "unauthorized_client", nil},
		{"a client revoking a PAT", p.Token, aCreds, 400, "unauthorized_client", nil},
		{"own access token", at, aCreds, 200, "", func(t *testing.T) {
			if got := e.introspect(t, at, aCreds...); got["active"] != false {
				t.Errorf("introspection after revocation: %v", got)
			}
			if err := check(at); !errors.Is(err, apierr.ErrInvalidToken) {
				t.Errorf("Check after revocation: %v", err)
			}
		}},
		{"own access token again", at, aCreds, 200, "", nil},
		{"user's own PAT", p.Token, alice, 200, "", func(t *testing.T) {
			if err := check(p.Token); !errors.Is(err, apierr.ErrInvalidToken) {
				t.Errorf("Check after revocation: %v", err)
			}
			if _, err := e.St.GetToken(context.Background(), "alice", p.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetToken after revocation: %v", err)
			}
		}},
		{"unknown PAT", unknownPAT, aCreds, 200, "", nil},
		{"garbage", "garbage", alice, 200, "", nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			w := e.do(t, call{path: "revoke", body: form("token", s.tok), basic: s.basic})
			if w.Code != s.status {
				t.Fatalf("status %d, want %d: %s", w.Code, s.status, w.Body)
			}
			if s.code != "" {
				if code := decode(t, w)["error"]; code != s.code {
					t.Errorf("error %q, want %q", code, s.code)
				}
			}
			if s.after != nil {
				s.after(t)
			}
		})
	}
}
