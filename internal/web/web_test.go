package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/users"
)

// fixture is the pages on a real embedded store with the real services.
type fixture struct {
	t     *testing.T
	ui    *UI
	store *boltstore.Store
	users *users.Service
	pats  *pat.Service
}

const password = "correct horse battery"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	us := users.NewService(st, 4, nil)
	auth, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	pats := pat.NewService(st, lastuse.New(st), 0, nil)
	sessions := session.New(st, st, session.Options{})
	us.SetSessions(sessions) // as the app wires it
	ui, err := New(Options{
		Prefix: "/account", Sessions: sessions, Logins: auth,
		Users: us, Tokens: pats, Scopes: []string{"read", "write"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tt, _ := t.(*testing.T)
	return &fixture{t: tt, ui: ui, store: st, users: us, pats: pats}
}

func (f *fixture) addUser(t testing.TB, name string, tokenLogin bool, roles ...string) {
	t.Helper()
	if _, err := f.users.Create(context.Background(), users.NewUser{Name: name, Password: password, TokenLogin: tokenLogin, Roles: roles}); err != nil {
		t.Fatal(err)
	}
}

// browser is a signed-in (or not) client of the pages.
type browser struct {
	f      *fixture
	cookie string
	csrf   string
}

type result struct {
	status int
	header http.Header
	body   string
}

func (r result) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return v
}

// do sends a request; form != nil makes it a same-origin form POST.
func (b *browser) do(t testing.TB, method, path string, form url.Values, header ...string) result {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://gw.example"+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://gw.example")
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", b.cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	b.f.ui.ServeHTTP(rec, req, "192.0.2.10")
	return result{rec.Code, rec.Header(), rec.Body.String()}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the form and reads the CSRF token off a page.
func (f *fixture) signIn(t testing.TB, name string) *browser {
	t.Helper()
	b := &browser{f: f}
	r := b.do(t, "POST", "/account/signin", url.Values{"name": {name}, "password": {password}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if strings.HasSuffix(c.Name, "tokengate-session") {
			b.cookie = c.Name + "=" + c.Value
		}
	}
	if b.cookie == "" {
		t.Fatal("sign-in set no session cookie")
	}
	page := b.do(t, "GET", "/account/tokens", nil)
	m := csrfInput.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the page: %d %s", page.status, page.body)
	}
	b.csrf = m[1]
	return b
}

// post sends a form with the CSRF token as the page's script does.
func (b *browser) post(t testing.TB, path string, form url.Values) result {
	t.Helper()
	form.Set("csrf", b.csrf)
	return b.do(t, "POST", path, form, "Accept", "application/json")
}

func (f *fixture) tokens(t testing.TB, owner string) []store.Token {
	t.Helper()
	ts, err := f.store.ListTokens(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestSignInLeaksNothingAboutNames(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	f.addUser(t, "carol", true)
	if _, err := f.users.Update(context.Background(), "carol", users.Changes{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	anon := &browser{f: f}
	answer := func(name, pw string) result {
		r := anon.do(t, "POST", "/account/signin", url.Values{"name": {name}, "password": {pw}})
		r.body = strings.ReplaceAll(r.body, `value="`+name+`"`, `value="NAME"`)
		return r
	}
	wrongPassword := answer("alice", "wrong password!")
	for _, r := range []result{answer("nobody", "wrong password!"), answer("carol", password), answer("bad name/", "x")} {
		if r.status != wrongPassword.status || r.body != wrongPassword.body {
			t.Errorf("a refusal differs from a wrong password:\n%d %s\nvs\n%d %s", r.status, r.body, wrongPassword.status, wrongPassword.body)
		}
	}
	if wrongPassword.status != http.StatusUnauthorized || strings.Contains(wrongPassword.header.Get("Set-Cookie"), "session") {
		t.Errorf("wrong password: %d, cookie %q", wrongPassword.status, wrongPassword.header.Get("Set-Cookie"))
	}
}

func TestSignInCookieAndRedirect(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	anon := &browser{f: f}
	for next, want := range map[string]string{
		"/account/tokens":        "/account/tokens",
		"":                       "/account/tokens",
		"//evil.example/x":       "/account/tokens",
		"https://evil.example/":  "/account/tokens",
		"/elsewhere":             "/account/tokens",
		"/account/../etc/passwd": "/account/tokens",
		"/\\evil.example":        "/account/tokens",
	} {
		r := anon.do(t, "POST", "/account/signin", url.Values{"name": {"Alice"}, "password": {password}, "next": {next}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("next %q: %d to %q, want %s", next, r.status, r.header.Get("Location"), want)
		}
		c := r.header.Get("Set-Cookie")
		for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(c, attr) {
				t.Errorf("session cookie %q lacks %s", c, attr)
			}
		}
	}
}

func TestSignedOutRequests(t *testing.T) {
	f := newFixture(t)
	anon := &browser{f: f}
	r := anon.do(t, "GET", "/account/tokens", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/account/signin?next=%2Faccount%2Ftokens" {
		t.Errorf("GET signed out: %d to %q", r.status, r.header.Get("Location"))
	}
	r = anon.do(t, "POST", "/account/tokens", url.Values{"label": {"x"}}, "Accept", "application/json", "X-Page", "/account/tokens")
	j := r.json(t)
	if r.status != http.StatusUnauthorized || j["error"] != "signed_out" || j["signin"] != "/account/signin?next=%2Faccount%2Ftokens" || j["message"] == "" {
		t.Errorf("POST signed out: %d %v", r.status, j)
	}
	stale := &browser{f: f, cookie: "tokengate-session=" + strings.Repeat("A", 43)}
	if r := stale.do(t, "GET", "/account/tokens", nil); r.status != http.StatusSeeOther {
		t.Errorf("unknown session: %d", r.status)
	}
}

func TestStateChangesNeedCSRFAndSameOrigin(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	create := url.Values{"label": {"ci"}, "expires": {"30"}}
	cases := []struct {
		name   string
		form   url.Values
		header []string
		status int
	}{
		{"no csrf", url.Values{"label": {"ci"}, "expires": {"30"}}, nil, http.StatusForbidden},
		{"wrong csrf", url.Values{"label": {"ci"}, "expires": {"30"}, "csrf": {"x" + b.csrf}}, nil, http.StatusForbidden},
		{"other origin", url.Values{"label": {"ci"}, "expires": {"30"}, "csrf": {b.csrf}}, []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", url.Values{"label": {"ci"}, "expires": {"30"}, "csrf": {b.csrf}}, []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"null origin", url.Values{"label": {"ci"}, "expires": {"30"}, "csrf": {b.csrf}}, []string{"Origin", "null"}, http.StatusForbidden},
	}
	for _, c := range cases {
		r := b.do(t, "POST", "/account/tokens", c.form, append([]string{"Accept", "application/json"}, c.header...)...)
		if r.status != c.status {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
		if n := len(f.tokens(t, "alice")); n != 0 {
			t.Fatalf("%s: %d tokens were made", c.name, n)
		}
	}
	if r := b.post(t, "/account/tokens", create); r.status != http.StatusCreated {
		t.Fatalf("with the token: %d %s", r.status, r.body)
	}
	// The CSRF token of another session does not work in this one.
	f.addUser(t, "bob", true)
	bob := f.signIn(t, "bob")
	other := &browser{f: f, cookie: b.cookie, csrf: bob.csrf}
	if r := other.post(t, "/account/tokens", url.Values{"label": {"other"}, "expires": {"30"}}); r.status != http.StatusForbidden {
		t.Errorf("another session's CSRF token: %d", r.status)
	}
}

func TestLargeFormIs413(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	r := b.post(t, "/account/tokens", url.Values{"label": {"big"}, "expires": {"30"}, "allowed_ips": {strings.Repeat("1", 1<<20)}})
	if r.status != http.StatusRequestEntityTooLarge || r.json(t)["error"] != "too_large" {
		t.Errorf("1 MB form: %d %s", r.status, r.body)
	}
	if len(f.tokens(t, "alice")) != 0 {
		t.Error("a token was made from a refused form")
	}
}

func TestCreateToken(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	r := b.post(t, "/account/tokens", url.Values{"label": {"<script>x</script>"}, "expires": {"7"}, "scopes": {"read"}, "allowed_ips": {"203.0.113.0/24, 2001:db8::1"}})
	if r.status != http.StatusCreated || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	created := r.json(t)
	secret, _ := created["token"].(string)
	if secret == "" || created["label"] != "<script>x</script>" {
		t.Fatalf("created: %v", created)
	}
	exp, _ := time.Parse(time.RFC3339, created["expires_at"].(string))
	if d := time.Until(exp); d < 6*24*time.Hour || d > 7*24*time.Hour+time.Minute {
		t.Errorf("7 days expire in %v", d)
	}
	page := b.do(t, "GET", "/account/tokens", nil)
	if strings.Contains(page.body, secret) {
		t.Error("the list shows the secret")
	}
	if strings.Contains(page.body, "<script>x</script>") || !strings.Contains(page.body, "&lt;script&gt;x&lt;/script&gt;") {
		t.Error("a label with markup is not shown as text")
	}
	for _, c := range []struct {
		label, field, code string
		status             int
	}{
		{"", "label", "invalid_request", 400},
		{"   ", "label", "invalid_request", 400},
		{strings.Repeat("я", 21), "label", "invalid_request", 400},
		{"<SCRIPT>X</SCRIPT>", "label", "", 409},
	} {
		r := b.post(t, "/account/tokens", url.Values{"label": {c.label}, "expires": {"30"}})
		j := r.json(t)
		if r.status != c.status || j["field"] != c.field || j["message"] == "" {
			t.Errorf("label %q: %d %v", c.label, r.status, j)
		}
	}
	if r := b.post(t, "/account/tokens", url.Values{"label": {"ok"}, "expires": {"30"}, "scopes": {"admin"}}); r.status != 400 || r.json(t)["field"] != "scopes" {
		t.Errorf("a scope the site does not offer: %d %s", r.status, r.body)
	}
	if n := len(f.tokens(t, "alice")); n != 1 {
		t.Errorf("%d tokens after the refusals, want 1", n)
	}
}

func TestExpiryChoices(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		choice, date, tz string
		want             time.Duration
		err              bool
	}{
		{"30", "", "", 30 * 24 * time.Hour, false},
		{"90", "", "", 90 * 24 * time.Hour, false},
		{"never", "", "", 0, false},
		{"date", "2026-12-07", "UTC", 26 * time.Hour, false},
		{"date", "2026-12-07", "Europe/Kyiv", 24 * time.Hour, false},
		{"date", "2026-12-05", "UTC", 0, true},
		{"date", "9999-01-01", "UTC", 0, true},
		{"date", "tomorrow", "UTC", 0, true},
		{"date", "2026-12-07", "../../etc/passwd", 26 * time.Hour, false},
		{"13", "", "", 0, true},
		{"", "", "", 0, true},
	} {
		got, err := expiresIn(c.choice, c.date, c.tz, now, 0)
		switch {
		case c.err != (err != nil):
			t.Errorf("%s %s %s: error %v", c.choice, c.date, c.tz, err)
		case err == nil && c.want == 0 && got != nil:
			t.Errorf("%s: expires in %d s, want never", c.choice, *got)
		case err == nil && c.want != 0 && (got == nil || time.Duration(*got)*time.Second != c.want):
			t.Errorf("%s %s %s: %v, want %v", c.choice, c.date, c.tz, got, c.want)
		}
	}
}

// A double click on "Save" sends two requests: one token, not two.
func TestDoubleSubmitMakesOneToken(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- b.post(t, "/account/tokens", url.Values{"label": {"twice"}, "expires": {"30"}}).status
		}()
	}
	wg.Wait()
	close(statuses)
	if n := len(f.tokens(t, "alice")); n != 1 {
		t.Errorf("%d tokens from a double submit", n)
	}
}

func TestUpdateAndRevoke(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	f.addUser(t, "bob", true)
	b := f.signIn(t, "alice")
	id := b.post(t, "/account/tokens", url.Values{"label": {"ci"}, "expires": {"never"}}).json(t)["id"].(string)
	for _, c := range []struct {
		form  url.Values
		check func(store.Token) bool
	}{
		{url.Values{"action": {"rename"}, "label": {"deploy"}}, func(tk store.Token) bool { return tk.Label == "deploy" }},
		{url.Values{"action": {"disable"}}, func(tk store.Token) bool { return !tk.Enabled }},
		{url.Values{"action": {"enable"}}, func(tk store.Token) bool { return tk.Enabled }},
		{url.Values{"action": {"allowed_ips"}, "allowed_ips": {"10.0.0.0/8\n192.0.2.1"}}, func(tk store.Token) bool { return len(tk.AllowedIPs) == 2 }},
	} {
		if r := b.post(t, "/account/tokens/"+id, c.form); r.status != http.StatusOK {
			t.Fatalf("%v: %d %s", c.form, r.status, r.body)
		}
		if tk := f.tokens(t, "alice")[0]; !c.check(tk) {
			t.Errorf("%v not applied: %+v", c.form, tk)
		}
	}
	if r := b.post(t, "/account/tokens/"+id, url.Values{"action": {"allowed_ips"}, "allowed_ips": {"not-an-ip"}}); r.status != 400 || r.json(t)["field"] != "allowed_ips" {
		t.Errorf("bad address: %d %s", r.status, r.body)
	}
	// Another user's token is not found from alice's session.
	bob := f.signIn(t, "bob")
	if r := bob.post(t, "/account/tokens/"+id+"/revoke", url.Values{}); r.status != http.StatusNotFound {
		t.Errorf("bob revoking alice's token: %d", r.status)
	}
	if r := b.post(t, "/account/tokens/"+id+"/revoke", url.Values{}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if n := len(f.tokens(t, "alice")); n != 0 {
		t.Errorf("%d tokens after revoke", n)
	}
}

func TestWithoutTokenLogin(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "dave", false)
	b := f.signIn(t, "dave")
	page := b.do(t, "GET", "/account/tokens", nil)
	if page.status != 200 || !strings.Contains(page.body, "administrator has to switch on") {
		t.Errorf("page for a user without token login: %d %s", page.status, page.body)
	}
	if r := b.post(t, "/account/tokens", url.Values{"label": {"x"}, "expires": {"30"}}); r.status != http.StatusForbidden {
		t.Errorf("create without token login: %d", r.status)
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := newFixture(t)
	anon := &browser{f: f}
	for _, path := range []string{"/account/signin", "/account/tokens", "/account/nope", "/account/assets/app.js"} {
		r := anon.do(t, "GET", path, nil)
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %v", path, r.header)
		}
	}
	page := anon.do(t, "GET", "/account/signin", nil)
	if strings.Contains(page.body, "<script>") || strings.Contains(page.body, " onclick=") || strings.Contains(page.body, " style=") {
		t.Error("the page has inline script or style")
	}
}

func TestLanguages(t *testing.T) {
	f := newFixture(t)
	anon := &browser{f: f}
	for header, want := range map[string]string{"ru-RU,ru;q=0.9": "Вход", "uk": "Вхід", "de": "Sign in", "": "Sign in"} {
		r := anon.do(t, "GET", "/account/signin", nil, "Accept-Language", header)
		if !strings.Contains(r.body, "<h1>"+want+"</h1>") {
			t.Errorf("Accept-Language %q: no %q", header, want)
		}
	}
	r := anon.do(t, "GET", "/account/lang/uk?back=/account/signin", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/account/signin" || !strings.Contains(r.header.Get("Set-Cookie"), LangCookie+"=uk") {
		t.Errorf("switch: %d %v", r.status, r.header)
	}
	if r := anon.do(t, "GET", "/account/lang/uk?back=//evil.example", nil); r.header.Get("Location") != "/account/" {
		t.Errorf("switch back to another site: %q", r.header.Get("Location"))
	}
	chosen := &browser{f: f, cookie: LangCookie + "=uk"}
	if r := chosen.do(t, "GET", "/account/signin", nil, "Accept-Language", "ru"); !strings.Contains(r.body, "<h1>Вхід</h1>") {
		t.Error("the remembered language does not win over Accept-Language")
	}
}

func TestAssets(t *testing.T) {
	f := newFixture(t)
	anon := &browser{f: f}
	r := anon.do(t, "GET", "/account/assets/app.js", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") || r.header.Get("ETag") == "" {
		t.Errorf("app.js: %d %v", r.status, r.header)
	}
	if r := anon.do(t, "GET", "/account/assets/app.js", nil, "If-None-Match", r.header.Get("ETag")); r.status != http.StatusNotModified {
		t.Errorf("revalidation: %d", r.status)
	}
	for _, p := range []string{"/account/assets/nope.js", "/account/assets/..%2fweb.go", "/account/assets/"} {
		if r := anon.do(t, "GET", p, nil); r.status != http.StatusNotFound {
			t.Errorf("%s: %d", p, r.status)
		}
	}
}

func TestSignOutEndsSession(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	if r := b.do(t, "POST", "/account/signout", url.Values{"csrf": {b.csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	// The same cookie, copied elsewhere after sign-out, is refused.
	if r := b.do(t, "GET", "/account/tokens", nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/account/signin") {
		t.Errorf("copied cookie after sign-out: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestMatches(t *testing.T) {
	f := newFixture(t)
	for p, want := range map[string]bool{"/account": true, "/account/": true, "/account/x": true, "/accounts": false, "/": false} {
		if f.ui.Matches(p) != want {
			t.Errorf("Matches(%q) = %v", p, !want)
		}
	}
}

// BenchmarkTokensPage renders a user's token page with 50 tokens, the
// whole request path (session, store, template).
func BenchmarkTokensPage(b *testing.B) {
	f := newFixture(b)
	f.addUser(b, "alice", true)
	br := f.signIn(b, "alice")
	for i := range 50 {
		if _, err := f.pats.Create(context.Background(), "alice", pat.CreateRequest{Label: fmt.Sprintf("token %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if r := br.do(b, "GET", "/account/tokens", nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// An administrator's change to a user ends that user's sessions at once
// (the same path as the admin API): disabled, token login off, new password.
func TestUserChangesEndSessions(t *testing.T) {
	f := newFixture(t)
	for name, change := range map[string]users.Changes{
		"disabled":        {Disabled: ptr(true)},
		"token-login-off": {TokenLogin: ptr(false)},
		"new-password":    {Password: ptr("another long password")},
	} {
		f.addUser(t, name, true)
		b := f.signIn(t, name)
		if _, err := f.users.Update(context.Background(), name, change); err != nil {
			t.Fatal(err)
		}
		if r := b.do(t, "GET", "/account/tokens", nil); r.status != http.StatusSeeOther {
			t.Errorf("%s: the old session still opens the page (%d)", name, r.status)
		}
	}
	f.addUser(t, "gone", true)
	b := f.signIn(t, "gone")
	if err := f.users.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	if r := b.post(t, "/account/tokens", url.Values{"label": {"x"}, "expires": {"30"}}); r.status != http.StatusUnauthorized {
		t.Errorf("deleted user: %d", r.status)
	}
}

// BenchmarkCreateTokenPage creates tokens through the page (a session, no
// password check per action; the JSON API pays a bcrypt check per call).
func BenchmarkCreateTokenPage(b *testing.B) {
	f := newFixture(b)
	f.addUser(b, "alice", true)
	br := f.signIn(b, "alice")
	i := 0
	for b.Loop() {
		i++
		if r := br.post(b, "/account/tokens", url.Values{"label": {fmt.Sprintf("t%d", i)}, "expires": {"30"}}); r.status != http.StatusCreated {
			b.Fatal(r.status, r.body)
		}
		if i%40 == 0 { // stay under the per-user cap
			for _, tk := range f.tokens(b, "alice") {
				if err := f.pats.Delete(context.Background(), "alice", tk.ID); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// The page's script can fetch the current session's CSRF token (after a
// sign-in in another tab); signed out it gets 401.
func TestCSRFRefresh(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	r := b.do(t, "GET", "/account/csrf", nil, "Accept", "application/json")
	if r.status != 200 || r.json(t)["csrf"] != b.csrf || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("csrf: %d %s", r.status, r.body)
	}
	anon := &browser{f: f}
	if r := anon.do(t, "GET", "/account/csrf", nil, "Accept", "application/json"); r.status != http.StatusUnauthorized || strings.Contains(r.body, b.csrf) {
		t.Errorf("csrf signed out: %d %s", r.status, r.body)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		url, origin, fetchSite string
		want                   bool
	}{
		{"http://gw.example/x", "http://gw.example", "", true},
		{"http://gw.example/x", "http://GW.example", "", true},
		{"http://gw.example/x", "http://evil.example", "", false},
		{"http://gw.example/x", "null", "", false},
		{"https://gw.example/x", "https://gw.example", "", true},
		{"https://gw.example/x", "http://gw.example", "", false},
		{"http://gw.example/x", "", "same-origin", true},
		{"http://gw.example/x", "", "same-site", false},
		{"http://gw.example/x", "", "cross-site", false},
		{"http://gw.example/x", "", "", true},
	} {
		r := httptest.NewRequest("POST", c.url, nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			r.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		if got := sameOrigin(r); got != c.want {
			t.Errorf("%s from %q (%s): %v", c.url, c.origin, c.fetchSite, got)
		}
	}
}

// With two identity sources the form lets the user pick one, as
// /rest/token's auth-user-type does; each checks its own passwords.
func TestSignInWithAnIdentitySource(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "bob", true) // the gateway's own record, with password
	other, err := boltstore.Open(filepath.Join(t.TempDir(), "backend.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := users.NewService(other, 4, nil).Create(context.Background(), users.NewUser{Name: "bob", Password: "the backend's password"}); err != nil {
		t.Fatal(err)
	}
	local, err := users.NewAuthenticator(f.store, bruteforce.New(f.store, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := users.NewAuthenticator(other, bruteforce.New(other, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	f.ui.opts.Sources, err = login.NewSources(login.Local, map[string]login.Authenticator{login.Local: local, login.Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	anon := &browser{f: f}
	page := anon.do(t, "GET", "/account/signin", nil)
	if !strings.Contains(page.body, `<option value="local" selected>`) && !strings.Contains(page.body, `<option value="local">`) || !strings.Contains(page.body, `<option value="backend">`) {
		t.Fatalf("no source choice on the form: %s", page.body)
	}
	try := func(source, pw string) int {
		return anon.do(t, "POST", "/account/signin", url.Values{"name": {"bob"}, "password": {pw}, "source": {source}}).status
	}
	if s := try("backend", "the backend's password"); s != http.StatusSeeOther {
		t.Errorf("backend password at the backend: %d", s)
	}
	if s := try("local", "the backend's password"); s != http.StatusUnauthorized {
		t.Errorf("backend password at the local source: %d", s)
	}
	if s := try("", password); s != http.StatusSeeOther {
		t.Errorf("no source (the default, local): %d", s)
	}
	if s := try("nonsense", password); s != http.StatusUnauthorized {
		t.Errorf("an unknown source: %d", s)
	}
}

// TestRecentAddressesShown: the token list shows the last use's address
// and site, and the token's other recent addresses below them.
func TestRecentAddressesShown(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	if r := b.post(t, "/account/tokens", url.Values{"label": {"ci"}, "expires": {"30"}}); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	tok := f.tokens(t, "alice")[0]
	at := time.Now().UTC().Truncate(time.Second)
	err := f.store.RecordLastUse(context.Background(), []store.LastUse{
		{Owner: "alice", TokenID: tok.ID, At: at.Add(-time.Minute), IP: "198.51.100.7", Host: "api.example"},
		{Owner: "alice", TokenID: tok.ID, At: at, IP: "203.0.113.9", Host: "app.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	page := b.do(t, "GET", "/account/tokens", nil).body
	for _, want := range []string{"<code>203.0.113.9</code>", "app.example", "also used recently from 198.51.100.7"} {
		if !strings.Contains(page, want) {
			t.Errorf("the token list lacks %q", want)
		}
	}
	if strings.Contains(page, "also used recently from 203.0.113.9") {
		t.Error("the last address is repeated among the others")
	}
}
