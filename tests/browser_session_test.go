package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserSessionEnds: (a) a page left open after its session ended
// elsewhere keeps what was typed and says to sign in again, and nothing
// is made; (b) the ended session's cookie is refused in any browser, on
// any node; (c) the sign-in page tells a wrong password and an unknown
// name apart in no way, and works from the keyboard (Tab, Escape gives
// the focus back). On Redis the session ends on a second node.
func TestBrowserSessionEnds(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: uiSite})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		other := g // where the session is ended
		if kind == redisKV {
			other = g.startPeer(up, gatewayConfig{siteOptions: uiSite})
		}

		// (c) first: the sign-in page from the keyboard, and its refusals.
		a := startBrowser(t)
		a.navigate(t, g.base+"/account/tokens")
		a.waitVisible(t, "#signin-name")
		// autofocus: the browser focuses the field when it next renders.
		a.waitJS(t, `document.activeElement && document.activeElement.id === "signin-name"`)
		a.pressKey(t, "alice")
		a.pressKey(t, kb.Tab)
		if f := a.focused(t); f != "signin-password" {
			t.Errorf("Tab from the user name goes to %q", f)
		}
		a.pressKey(t, "wrong password")
		a.pressKey(t, kb.Enter)
		a.waitVisible(t, "main .notice")
		wrongPassword := a.text(t, "main")
		if !strings.Contains(wrongPassword, "Wrong user name or password.") {
			t.Errorf("a wrong password reads %q", wrongPassword)
		}
		if got := a.value(t, "#signin-name"); got != "alice" {
			t.Errorf("after a refusal the user name field holds %q", got)
		}
		pageShot(t, a, kind, "signin-failed")
		a.typeInto(t, "#signin-name", "nobody")
		a.typeInto(t, "#signin-password", "wrong password")
		a.exec(t, `window.__oldPage = true`)
		a.click(t, "form[action='/account/signin'] button[type=submit]")
		a.waitJS(t, `!window.__oldPage && document.readyState === "complete"`)
		a.waitVisible(t, "main .notice")
		if unknown := a.text(t, "main"); unknown != wrongPassword {
			t.Errorf("an unknown name reads\n%q\na wrong password\n%q", unknown, wrongPassword)
		}
		_, s1 := pageSignInStatus(t, g, "alice", "wrong password")
		_, s2 := pageSignInStatus(t, g, "nobody", "wrong password")
		if s1 != http.StatusUnauthorized || s2 != http.StatusUnauthorized {
			t.Errorf("sign-in refusals: %d for a wrong password, %d for an unknown name", s1, s2)
		}
		r1 := do(t, http.MethodPost, g.base+"/account/signin", map[string][]string{"Content-Type": {formType}, "Origin": {g.base}}, "name=alice&password=wrong+password")
		r2 := do(t, http.MethodPost, g.base+"/account/signin", map[string][]string{"Content-Type": {formType}, "Origin": {g.base}}, "name=nobody&password=wrong+password")
		if strings.ReplaceAll(string(r1.body), "alice", "NAME") != strings.ReplaceAll(string(r2.body), "nobody", "NAME") {
			t.Error("the pages for a wrong password and an unknown name differ beyond the name typed")
		}

		signInPage(t, a, g, "alice", alicePassword)

		// Escape closes a dialog; the focus goes back to its button.
		a.exec(t, `document.getElementById("create-open").focus()`)
		a.pressKey(t, kb.Enter)
		a.waitVisible(t, "#create-dialog")
		if f := a.focused(t); f != "create-label" {
			t.Errorf("the create dialog opens with the focus on %q", f)
		}
		a.pressKey(t, kb.Escape)
		a.waitGone(t, "#create-dialog")
		// The focus moves on the dialog's close event, which follows the
		// closing: wait for it.
		a.waitJS(t, `document.activeElement && document.activeElement.id === "create-open"`)

		// (a) Her session ends in another browser (on another node), which
		// holds a copy of her cookie.
		own := a.cookie(t, "tokengate-session")
		if own == nil {
			t.Fatal("no session cookie after signing in")
		}
		copyCookie := func(b *browser, base string) {
			t.Helper()
			b.setCookies(t, &network.CookieParam{
				Name: own.Name, Value: own.Value, URL: base + "/", Path: "/", HTTPOnly: true, SameSite: network.CookieSameSiteStrict,
			})
		}
		elsewhere := startBrowser(t)
		copyCookie(elsewhere, other.base)
		elsewhere.navigate(t, other.base+"/account/tokens")
		if got := elsewhere.text(t, "main h1"); got != "Token management" {
			t.Fatalf("the copied cookie before sign-out opens %q", got)
		}
		elsewhere.exec(t, `window.__oldPage = true`)
		elsewhere.click(t, `form[action="/account/signout"] button[type=submit]`)
		elsewhere.waitJS(t, `!window.__oldPage && document.readyState === "complete"`)
		elsewhere.waitVisible(t, "#signin-name")
		if c := elsewhere.cookie(t, "tokengate-session"); c != nil && c.Value != "" {
			t.Error("signing out left the session cookie in the browser")
		}

		// The stale page: the dialog keeps the label and says to sign in.
		label := "after sign-out"
		a.click(t, "#create-open")
		a.waitVisible(t, "#create-dialog")
		a.typeInto(t, "#create-label", label)
		a.click(t, "#create-form button[type=submit]")
		a.waitVisible(t, "#create-form [data-error]")
		msg := a.text(t, "#create-form [data-error]")
		if !strings.Contains(msg, "Your session has ended") || !strings.Contains(msg, "Nothing was changed") {
			t.Errorf("the dialog says %q", msg)
		}
		link := evalJS[map[string]string](t, a, `(() => { const l = document.querySelector("#create-form [data-error] a");
			return l ? {href: l.getAttribute("href"), text: l.textContent.trim(), target: l.target, rel: l.rel} : {}; })()`)
		if link["href"] != "/account/signin?next=%2Faccount%2Ftokens" || !strings.Contains(link["text"], "Sign in again") {
			t.Errorf("the sign-in link: %v", link)
		}
		// It says "in a new tab, so this form is kept": it must open one.
		if link["target"] != "_blank" || !strings.Contains(link["rel"], "noopener") {
			t.Errorf("the sign-in link opens in this tab (target %q, rel %q) and loses the form", link["target"], link["rel"])
		}
		if got := a.value(t, "#create-label"); got != label {
			t.Errorf("the label field holds %q after the refusal", got)
		}
		if !a.visible(t, "#create-dialog") || a.visible(t, "#secret-dialog") {
			t.Error("the dialog closed, or a secret dialog opened")
		}
		pageShot(t, a, kind, "tokens-session-ended")
		if out := g.mustCLI("", "user", "tokens", "alice"); strings.Contains(out, label) {
			t.Errorf("a token was made with an ended session: %s", out)
		}

		// Signing in again (as the link's new tab would: same browser, same
		// cookie jar) lets the kept form go through: the page takes the new
		// session's CSRF token and sends it once more.
		a.exec(t, `fetch("/account/signin", {method: "POST", credentials: "same-origin",
			body: new URLSearchParams({name: "alice", password: `+jsString(alicePassword)+`})}).then(r => { window.__signedIn = r.ok })`)
		a.waitJS(t, `window.__signedIn === true`)
		a.click(t, "#create-form button[type=submit]")
		a.waitVisible(t, "#secret-dialog")
		if secret := a.value(t, "#secret-value"); !strings.HasPrefix(secret, "tgp_") {
			t.Errorf("after signing in again the kept form gave %q", secret)
		}
		if out := g.mustCLI("", "user", "tokens", "alice"); !strings.Contains(out, label) {
			t.Errorf("the kept form made no token after signing in again: %s", out)
		}

		// (b) The copied cookie, after the sign-out, in a third browser:
		// refused on every node.
		for _, base := range []string{g.base, other.base} {
			third := startBrowser(t)
			copyCookie(third, base)
			third.navigate(t, base+"/account/tokens")
			third.waitVisible(t, "#signin-name")
			if u := third.url(t); !strings.HasPrefix(u, base+"/account/signin") {
				t.Errorf("the ended session's cookie opened %s", u)
			}
			third.assertNoConsoleErrors(t)
		}
		r := do(t, http.MethodGet, g.base+"/account/tokens", map[string][]string{"Cookie": {own.Name + "=" + own.Value}}, "")
		if strings.Contains(string(r.body), "Token management") || !strings.Contains(string(r.body), `id="signin-name"`) {
			t.Errorf("the ended session over HTTP: %d", r.status)
		}

		a.assertNoConsoleErrors(t, "401 (Unauthorized)", "403 (Forbidden)") // the ended session; the old CSRF token, on purpose
		elsewhere.assertNoConsoleErrors(t)
		g.assertNoSecrets(own.Value)
	})
}
