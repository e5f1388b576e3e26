package tests

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// uiSite turns the pages on at /account.
const uiSite = "ui /account {\n\t\t\tscopes read write\n\t\t}"

// pageSignIn signs in through the form, as a browser would, without
// following redirects, and returns the session cookie; anything but a
// redirect with a cookie fails the test.
func pageSignIn(t *testing.T, g *gateway, name, password string) *http.Cookie {
	t.Helper()
	c, status := pageSignInStatus(t, g, name, password)
	if status != http.StatusSeeOther || c == nil {
		t.Fatalf("sign-in: %d, cookie %v", status, c != nil)
	}
	return c
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestPagesAreNeverProxied: every path under the prefix is answered by
// the gateway, whatever it is; the upstream never sees it, and never sees
// the session cookie on the requests it does get.
func TestPagesAreNeverProxied(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: uiSite})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		for _, p := range []string{"/account", "/account/", "/account/signin", "/account/tokens", "/account/nope", "/account/admin/users", "/account/assets/app.js"} {
			r := do(t, http.MethodGet, g.base+p, nil, "")
			if r.status >= 500 || up.count() != 0 {
				t.Fatalf("%s: %d, upstream saw %d requests", p, r.status, up.count())
			}
		}
		if r := do(t, http.MethodGet, g.base+"/account/signin", nil, ""); !strings.Contains(string(r.body), "<form") ||
			!strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("sign-in page: %d %v", r.status, r.header)
		}

		cookie := pageSignIn(t, g, "alice", alicePassword)
		secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"laptop"}`)
		h := bearer(secret)
		h["Cookie"] = []string{"theme=dark; " + cookie.Name + "=" + cookie.Value + "; lang=ru"}
		if r := do(t, http.MethodGet, g.base+"/orders", h, ""); r.status != http.StatusOK {
			t.Fatalf("proxied call: %d %s", r.status, r.body)
		}
		got := up.last(t).Header.Values("Cookie")
		if strings.Contains(strings.Join(got, ";"), "tokengate-session") || !strings.Contains(strings.Join(got, ";"), "theme=dark") {
			t.Errorf("the upstream saw cookies %q", got)
		}
		// A session cookie is no credential for the upstream.
		h = map[string][]string{"Cookie": {cookie.Name + "=" + cookie.Value}}
		if r := do(t, http.MethodGet, g.base+"/orders", h, ""); r.status != http.StatusUnauthorized {
			t.Errorf("a session cookie alone reached the upstream: %d", r.status)
		}
		g.assertNoSecrets(secret, cookie.Value)
	})
}

// TestPageFormLimits: a 1 MB form gets 413 from the real server, a form
// from another origin 403, and nothing is made.
func TestPageFormLimits(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: uiSite})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	cookie := pageSignIn(t, g, "alice", alicePassword)
	send := func(body, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, g.base+"/account/tokens", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(cookie)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := send("label=big&expires=30&allowed_ips="+strings.Repeat("1", 1<<20), g.base); s != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MB form: %d", s)
	}
	if s := send("label=evil&expires=30", "http://evil.example"); s != http.StatusForbidden {
		t.Errorf("cross-origin form: %d", s)
	}
	if s := send("label=nocsrf&expires=30", g.base); s != http.StatusForbidden {
		t.Errorf("form without CSRF token: %d", s)
	}
	if out := g.mustCLI("", "user", "tokens", "alice"); strings.Contains(out, "big") || strings.Contains(out, "evil") || strings.Contains(out, "nocsrf") {
		t.Errorf("a refused form made a token: %s", out)
	}
	if up.count() != 0 {
		t.Errorf("the upstream saw %d requests", up.count())
	}
}

// TestUpstreamCannotTossASession: on a site with the pages, an upstream's
// Set-Cookie for the session cookie never reaches the browser; its other
// cookies do.
func TestUpstreamCannotTossASession(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "tokengate-session=planted; Path=/")
		w.Header().Add("Set-Cookie", "__Host-tokengate-session=planted; Path=/; Secure")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		if r.URL.Path == "/stream" {
			io.Copy(w, strings.NewReader("streamed")) // the header goes out through Write
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	up := &upstream{addr: strings.TrimPrefix(srv.URL, "http://")}
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: uiSite})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"laptop"}`)
	for _, path := range []string{"/orders", "/stream"} {
		r := do(t, http.MethodGet, g.base+path, bearer(secret), "")
		got := r.header.Values("Set-Cookie")
		if r.status != http.StatusOK || len(got) != 1 || !strings.HasPrefix(got[0], "theme=dark") {
			t.Errorf("%s: %d, Set-Cookie %q", path, r.status, got)
		}
	}
}

// TestSessionCookieBehindTLSProxy: behind a proxy in trusted_proxies that
// ended TLS (X-Forwarded-Proto: https) the cookie is __Host- and Secure;
// the same header from anyone else changes nothing.
func TestSessionCookieBehindTLSProxy(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: uiSite})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	signIn := func(base string) (*http.Response, error) {
		host := strings.TrimPrefix(base, "http://")
		req, _ := http.NewRequest(http.MethodPost, base+"/account/signin", strings.NewReader(url.Values{"name": {"alice"}, "password": {alicePassword}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://"+host)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := noRedirects.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := signIn(g.trusted)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Header.Get("Set-Cookie"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(c, "__Host-tokengate-session=") || !strings.Contains(c, "; Secure") {
		t.Errorf("through the trusted proxy: %d %q", resp.StatusCode, c)
	}
	// From an untrusted peer the header is not believed: a plain cookie.
	resp, err = signIn(g.base)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "tokengate-session=") || strings.Contains(c, "Secure") {
		t.Errorf("X-Forwarded-Proto from an untrusted peer: %d %q", resp.StatusCode, c)
	}
}
