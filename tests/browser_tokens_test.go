package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// exec runs a script in the page for its effect.
func (b *browser) exec(t testing.TB, expr string) {
	t.Helper()
	b.run(t, chromedp.Evaluate[chromedp.Void](expr))
}

// pageShot takes a screenshot on the embedded store's run only, so each
// page is saved once however many stores the test runs on.
func pageShot(t *testing.T, b *browser, kind storeKind, name string) {
	t.Helper()
	if kind == embedded {
		b.screenshot(t, name)
	}
}

// signInPage signs in through the page's form and waits for the token page.
func signInPage(t *testing.T, b *browser, g *gateway, name, password string) {
	t.Helper()
	b.navigate(t, g.base+"/account/tokens")
	b.waitVisible(t, "#signin-name")
	b.typeInto(t, "#signin-name", name)
	b.typeInto(t, "#signin-password", password)
	b.click(t, "form[action='/account/signin'] button[type=submit]")
	b.waitJS(t, `location.pathname !== "/account/signin"`)
	b.waitReady(t)
	if u := b.url(t); !strings.HasSuffix(u, "/account/tokens") {
		t.Fatalf("after sign-in the browser is at %s: %s", u, b.text(t, "main"))
	}
}

// waitReady waits until the page's script has wired the page up (after a
// navigation or a reload the script's own actions cause).
func (b *browser) waitReady(t testing.TB) {
	t.Helper()
	b.waitJS(t, `document.readyState === "complete" && document.documentElement.dataset.ready === "1"`)
}

// waitReload waits for a reload the page started itself to finish.
func (b *browser) waitReload(t testing.TB) {
	t.Helper()
	b.waitJS(t, `performance.getEntriesByType("navigation")[0].type === "reload"`)
	b.waitReady(t)
}

// labelError is the message shown next to the label field of a form.
func labelError(t *testing.T, b *browser, form string) string {
	t.Helper()
	return evalJS[string](t, b, `(() => { const e = document.querySelector(`+jsString(form+" [data-error-for=label]")+`); return e && !e.hidden ? e.textContent : "" })()`)
}

// TestBrowserTokenFlow: sign in, create a token (wrong labels first, a
// double click on Save), copy it, use it through the gateway, see the last
// access, switch it off and on, revoke it; the secret is never shown again.
func TestBrowserTokenFlow(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: uiSite})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		b := startBrowser(t)

		b.navigate(t, g.base+"/account/tokens")
		b.waitVisible(t, "#signin-name")
		if !strings.Contains(b.url(t), "/account/signin?next=") {
			t.Errorf("signed out, the token page sent the browser to %s", b.url(t))
		}
		pageShot(t, b, kind, "signin")
		signInPage(t, b, g, "alice", alicePassword)
		if got := b.text(t, "main h1"); got != "Token management" {
			t.Errorf("heading %q", got)
		}
		if c := b.cookie(t, "tokengate-session"); c == nil || !c.HTTPOnly || c.SameSite != "Strict" {
			t.Errorf("session cookie %+v", c)
		}
		pageShot(t, b, kind, "tokens-empty")

		// A label taken after the page was loaded: only the server knows.
		createPAT(t, g, "alice", alicePassword, `{"label":"Deploy"}`)

		b.click(t, "#create-open")
		b.waitVisible(t, "#create-dialog")
		if f := b.focused(t); f != "create-label" {
			t.Errorf("focus in the create dialog is on %q", f)
		}
		pageShot(t, b, kind, "tokens-create-dialog")
		b.click(t, "#create-form button[type=submit]")
		if e := labelError(t, b, "#create-form"); e != "Enter a label." {
			t.Errorf("empty label: %q", e)
		}
		b.typeInto(t, "#create-label", strings.Repeat("ж", 21))
		if e := labelError(t, b, "#create-form"); !strings.Contains(e, "at most 20") {
			t.Errorf("21 characters: %q", e)
		}
		pageShot(t, b, kind, "tokens-create-label-too-long")
		b.typeInto(t, "#create-label", "deploy")
		b.click(t, "#create-form button[type=submit]")
		b.waitJS(t, `document.querySelector("#create-form [data-error-for=label]").textContent.includes("already have")`)
		pageShot(t, b, kind, "tokens-create-label-taken")

		// A double click on Save makes one token.
		b.typeInto(t, "#create-label", "laptop <b>1</b>")
		b.click(t, "#create-form input[name=scopes][value=read]")
		b.exec(t, (`(() => { const s = document.querySelector("#create-form button[type=submit]"); s.click(); s.click(); })()`))
		b.waitVisible(t, "#secret-dialog")
		secret := b.value(t, "#secret-value")
		if !strings.HasPrefix(secret, "tgp_") {
			t.Fatalf("the dialog shows %q", secret)
		}
		if masked := evalJS[bool](t, b, `document.querySelector("#secret-value").classList.contains("masked")`); !masked {
			t.Error("the new token is not shown masked")
		}
		pageShot(t, b, kind, "tokens-secret-dialog")
		b.click(t, "#secret-dialog [data-copy]")
		b.waitGone(t, "#secret-dialog")
		b.waitReload(t)
		if got := b.clipboard(t); got != secret {
			t.Errorf("the clipboard holds %q", got)
		}
		b.waitVisible(t, "tr[data-token]")
		if n := strings.Count(g.mustCLI("", "user", "tokens", "alice"), "laptop <b>1</b>"); n != 1 {
			t.Errorf("%d tokens labelled laptop after a double click", n)
		}
		if !strings.Contains(b.text(t, "table.tokens"), "laptop <b>1</b>") {
			t.Error("a label with markup is not shown as typed")
		}

		// Use it through the gateway: the page shows the access.
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusOK {
			t.Fatalf("the new token: %d %s", r.status, r.body)
		}
		b.navigate(t, g.base+"/account/tokens")
		b.waitReady(t)
		laptop := evalJS[string](t, b, `[...document.querySelectorAll("tr[data-token]")].find(r => r.querySelector(".label-text").textContent === "laptop <b>1</b>").dataset.token`)
		sel := `tr[data-token="` + laptop + `"]`
		if got := b.text(t, sel+" .last-access"); strings.Contains(got, "No access yet") || got == "" {
			t.Errorf("last access after a use: %q", got)
		}
		if !strings.Contains(b.text(t, sel), "127.0.0.1") {
			t.Errorf("the row does not show the address of the last access: %q", b.text(t, sel))
		}
		pageShot(t, b, kind, "tokens-list")
		if html := evalJS[string](t, b, `document.documentElement.outerHTML`); strings.Contains(html, secret) {
			t.Error("the page shows the secret again after a reload")
		}
		b.run(t, chromedp.NavigateBack())
		b.waitVisible(t, "main h1")
		if html := evalJS[string](t, b, `document.documentElement.outerHTML`); strings.Contains(html, secret) {
			t.Error("going back shows the secret again")
		}
		b.navigate(t, g.base+"/account/tokens")
		b.waitReady(t)

		// Switch it off: refused; on again: works.
		b.click(t, sel+` button[data-open=edit-dialog]`)
		b.waitVisible(t, "#edit-dialog")
		pageShot(t, b, kind, "tokens-edit-dialog")
		b.click(t, `#edit-dialog form:not([hidden]) input[value=disable] ~ .buttons button`)
		b.waitJS(t, `document.querySelector(`+jsString(sel+" .status")+`)?.textContent === "Switched off"`)
		b.waitReady(t)
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusUnauthorized {
			t.Errorf("a switched-off token: %d", r.status)
		}
		b.click(t, sel+` button[data-open=edit-dialog]`)
		b.waitVisible(t, "#edit-dialog")
		b.click(t, `#edit-dialog form:not([hidden]) input[value=enable] ~ .buttons button`)
		b.waitJS(t, `document.querySelector(`+jsString(sel+" .status")+`)?.textContent === "Active"`)
		b.waitReady(t)
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusOK {
			t.Errorf("switched on again: %d", r.status)
		}

		// Revoke, after a confirmation naming the token.
		b.click(t, sel+` button[data-open=revoke-dialog]`)
		b.waitVisible(t, "#revoke-dialog")
		if got := b.text(t, "#revoke-text"); !strings.Contains(got, "“laptop <b>1</b>”") {
			t.Errorf("the confirmation says %q", got)
		}
		if f := b.focused(t); f != "" && !strings.Contains(f, "revoke") {
			t.Logf("focus in the revoke dialog: %q", f)
		}
		pageShot(t, b, kind, "tokens-revoke-dialog")
		b.click(t, `#revoke-dialog button[type=submit]`)
		b.waitGone(t, sel)
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusUnauthorized {
			t.Errorf("a revoked token: %d", r.status)
		}
		b.assertNoConsoleErrors(t, "409 (Conflict)") // the taken label, on purpose
		g.assertNoSecrets(secret)
	})
}
