package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const (
	rootPassword = "root password 123"
	bobPassword  = "bob's password 123"
)

// pageHTML is the whole document as the browser holds it now.
func pageHTML(t testing.TB, b *browser) string {
	t.Helper()
	return evalJS[string](t, b, `document.documentElement.outerHTML`)
}

// submitAndReload clicks sel (a submit button of a form the page sends in
// the background and then reloads) and waits for the new page: a mark set
// on the old page is gone and the new one has loaded.
func (b *browser) submitAndReload(t testing.TB, sel string) {
	t.Helper()
	b.exec(t, `window.__oldPage = true`)
	b.click(t, sel)
	b.waitJS(t, `!window.__oldPage && document.readyState === "complete"`)
}

// selectOption chooses value in the select matching sel, as a user would
// (the page hears a change event).
func (b *browser) selectOption(t testing.TB, sel, value string) {
	t.Helper()
	b.exec(t, `(() => { const s = document.querySelector(`+jsString(sel)+`); s.value = `+jsString(value)+`;
		s.dispatchEvent(new Event("change", {bubbles: true})); })()`)
	if got := b.value(t, sel); got != value {
		t.Fatalf("select %s holds %q, not %q", sel, got, value)
	}
}

// disabled tells whether the element matching sel is disabled.
func (b *browser) disabled(t testing.TB, sel string) bool {
	t.Helper()
	return evalJS[bool](t, b, `document.querySelector(`+jsString(sel)+`).disabled`)
}

// tokenAnswer asks the token endpoint for an access token with the key's
// credentials and returns the status and the decoded answer.
func tokenAnswer(t *testing.T, g *gateway, id, secret string) (int, map[string]any) {
	t.Helper()
	r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(id, secret), ccGrant)
	var v map[string]any
	_ = json.Unmarshal(r.body, &v)
	return r.status, v
}

// edgeStatus is the status of a guarded request with tok.
func edgeStatus(t *testing.T, g *gateway, tok string) int {
	t.Helper()
	return callEdge(t, g.base, tok).status
}

// TestBrowserAdminFlow: an administrator manages users, OAuth keys, JWT
// signing and reads the OAuth log through the pages, in a real browser,
// and every change holds at the gateway's edge; a non-admin is turned
// away with a clear page.
func TestBrowserAdminFlow(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: uiSite})
		g.mustCLI(rootPassword+"\n", "user", "add", "root", "--role", "admin", "--token-login")
		g.mustCLI(bobPassword+"\n", "user", "add", "bob", "--token-login")

		admin := startBrowser(t)
		signInPage(t, admin, g, "root", rootPassword)
		bob := startBrowser(t)
		signInPage(t, bob, g, "bob", bobPassword)
		bobPAT, _ := createPAT(t, g, "bob", bobPassword, `{"label":"bob laptop"}`)
		if s := edgeStatus(t, g, bobPAT); s != http.StatusOK {
			t.Fatalf("bob's token before any change: %d", s)
		}

		// A non-admin gets 403 and a page that says why.
		bob.navigate(t, g.base+"/account/admin/users")
		if got := bob.text(t, "main .error-text"); got != "This page is for administrators." {
			t.Errorf("bob on the users page reads %q", got)
		}
		if bob.visible(t, "table.users") || strings.Contains(bob.text(t, "main"), "root") {
			t.Error("the refusal shows the list of users")
		}
		pageShot(t, bob, kind, "admin-forbidden")
		bobCookie := pageSignIn(t, g, "bob", bobPassword)
		if r := do(t, http.MethodGet, g.base+"/account/admin/users", map[string][]string{"Cookie": {bobCookie.Name + "=" + bobCookie.Value}}, ""); r.status != http.StatusForbidden {
			t.Errorf("bob on the users page: %d", r.status)
		}
		bob.navigate(t, g.base+"/account/tokens")
		bob.waitText(t, "table.tokens", "bob laptop")

		// The users, a search, bob's page.
		admin.navigate(t, g.base+"/account/admin/users")
		if got := admin.text(t, "main h1"); got != "Users" {
			t.Errorf("users page heading %q", got)
		}
		for _, name := range []string{"root", "bob"} {
			if !admin.visible(t, `table.users a.label-text[href="/account/admin/users/`+name+`"]`) {
				t.Errorf("the list does not show %s", name)
			}
		}
		pageShot(t, admin, kind, "admin-users")
		admin.typeInto(t, "#users-q", "BO")
		admin.click(t, `form[role=search] button[type=submit]`)
		admin.waitJS(t, `document.readyState === "complete" && location.search.includes("q=BO")`)
		admin.waitVisible(t, "table.users")
		if n := evalJS[int](t, admin, `document.querySelectorAll("table.users tbody tr").length`); n != 1 ||
			!admin.visible(t, `table.users a[href="/account/admin/users/bob"]`) {
			t.Errorf("a search for BO shows %d rows: %s", n, admin.text(t, "table.users"))
		}
		if got := admin.text(t, "main p.muted[role=status]"); got != "1 of 2 users match." {
			t.Errorf("search summary %q", got)
		}
		pageShot(t, admin, kind, "admin-users-search")
		admin.click(t, `table.users a.label-text[href="/account/admin/users/bob"]`)
		admin.waitJS(t, `document.readyState === "complete" && location.pathname === "/account/admin/users/bob"`)
		if got := admin.text(t, "main h1"); got != "User bob" {
			t.Errorf("bob's page heading %q", got)
		}
		admin.waitText(t, "table.tokens", "bob laptop")
		pageShot(t, admin, kind, "admin-user")

		// Token login off: bob's token is refused, his session is over.
		sw := `#token-login-text ~ div button.switch`
		if got := evalJS[string](t, admin, `document.querySelector(`+jsString(sw)+`).getAttribute("aria-checked")`); got != "true" {
			t.Fatalf("bob's token login switch says %q", got)
		}
		admin.submitAndReload(t, sw)
		if got := evalJS[string](t, admin, `document.querySelector(`+jsString(sw)+`).getAttribute("aria-checked")`); got != "false" {
			t.Errorf("after the switch, aria-checked=%q", got)
		}
		if got := admin.text(t, "#token-login-text"); !strings.Contains(got, "not allowed") {
			t.Errorf("after the switch the page says %q", got)
		}
		if s := edgeStatus(t, g, bobPAT); s != http.StatusUnauthorized {
			t.Errorf("bob's token with token login off: %d", s)
		}
		bob.navigate(t, g.base+"/account/tokens")
		bob.waitVisible(t, "#signin-name")
		if u := bob.url(t); !strings.Contains(u, "/account/signin") {
			t.Errorf("bob's browser is at %s after his token login was switched off", u)
		}
		pageShot(t, bob, kind, "signin-after-session-ended")

		// Revoke bob's token, after a confirmation naming it.
		admin.click(t, `table.tokens button[data-open^="revoke-"]`)
		admin.waitVisible(t, `dialog[id^="revoke-"][open]`)
		if got := admin.text(t, `dialog[id^="revoke-"][open]`); !strings.Contains(got, "“bob laptop” of bob") {
			t.Errorf("the revoke confirmation says %q", got)
		}
		// A destructive confirmation starts on its safe button.
		if !evalJS[bool](t, admin, `document.activeElement.matches('dialog[id^="revoke-"][open] button[data-close]')`) {
			t.Errorf("focus in the revoke dialog is on %s", evalJS[string](t, admin, `document.activeElement.outerHTML.slice(0, 80)`))
		}
		pageShot(t, admin, kind, "admin-user-revoke-dialog")
		admin.submitAndReload(t, `dialog[id^="revoke-"][open] button[type=submit]`)
		if admin.visible(t, "table.tokens") || !strings.Contains(admin.text(t, "main"), "The user has no tokens.") {
			t.Errorf("after the revocation bob's tokens read %q", admin.text(t, "main"))
		}
		if out := g.mustCLI("", "user", "tokens", "bob"); strings.Contains(out, "bob laptop") {
			t.Errorf("the revoked token is still listed: %s", out)
		}

		// Add a user through the dialog.
		admin.navigate(t, g.base+"/account/admin/users")
		admin.click(t, `button[data-open=add-user]`)
		admin.waitVisible(t, "#add-user")
		if f := admin.focused(t); f != "add-user-name" {
			t.Errorf("focus in the add dialog is on %q", f)
		}
		admin.typeInto(t, "#add-user-name", "carol")
		admin.typeInto(t, "#add-user-password", "carol first 123")
		admin.click(t, `#add-user input[name=token_login]`)
		pageShot(t, admin, kind, "admin-users-add-dialog")
		admin.submitAndReload(t, `#add-user button[type=submit]`)
		admin.waitVisible(t, `table.users a[href="/account/admin/users/carol"]`)
		if out := g.mustCLI("", "user", "show", "carol"); !strings.Contains(out, "carol") {
			t.Errorf("user show carol: %s", out)
		}
		pageSignIn(t, g, "carol", "carol first 123")

		// A new password and a permission on carol's page.
		admin.click(t, `table.users a.label-text[href="/account/admin/users/carol"]`)
		admin.waitJS(t, `document.readyState === "complete" && location.pathname === "/account/admin/users/carol"`)
		admin.typeInto(t, "#user-password", "carol second 456")
		admin.submitAndReload(t, `#user-password ~ .buttons button[type=submit]`)
		pageSignIn(t, g, "carol", "carol second 456")
		if _, s := pageSignInStatus(t, g, "carol", "carol first 123"); s != http.StatusUnauthorized {
			t.Errorf("the old password after a change: %d", s)
		}
		if got := admin.value(t, "#grant-permission") + " " + admin.value(t, "#grant-resource"); got != "use ws:::gen-ws-token" {
			t.Errorf("the permission form suggests %q", got)
		}
		admin.submitAndReload(t, `#grant-resource ~ .buttons button[type=submit]`)
		admin.waitVisible(t, "table.grants")
		if got := admin.text(t, "table.grants tbody"); !strings.Contains(got, "use") || !strings.Contains(got, "ws:::gen-ws-token") {
			t.Errorf("carol's permissions: %q", got)
		}
		if out := g.mustCLI("", "acl", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "ws:::gen-ws-token") {
			t.Errorf("acl list after the grant: %s", out)
		}
		pageShot(t, admin, kind, "admin-user-permission")

		// Delete carol, after a confirmation.
		admin.click(t, `button[data-open=delete-user]`)
		admin.waitVisible(t, "#delete-user")
		if got := admin.text(t, "#delete-user h2"); got != "Delete the user “carol”?" {
			t.Errorf("delete dialog title %q", got)
		}
		pageShot(t, admin, kind, "admin-user-delete-dialog")
		admin.click(t, `#delete-user button[type=submit]`)
		admin.waitJS(t, `document.readyState === "complete" && location.pathname === "/account/admin/users"`)
		admin.waitVisible(t, "table.users")
		if admin.visible(t, `table.users a[href="/account/admin/users/carol"]`) {
			t.Error("carol is still listed")
		}
		if out, err := g.cli("", "user", "show", "carol"); err == nil {
			t.Errorf("user show carol after the deletion: %s", out)
		}

		// OAuth keys: add one, its secret shown once.
		admin.navigate(t, g.base+"/account/admin/oauth")
		admin.waitVisible(t, "main h1")
		admin.click(t, `button[data-open=add-key]`)
		admin.waitVisible(t, "#add-key")
		admin.typeInto(t, "#add-key-name", "billing")
		admin.typeInto(t, "#add-key-ips", "127.0.0.1")
		pageShot(t, admin, kind, "admin-oauth-add-dialog")
		admin.click(t, `#add-key button[type=submit]`)
		admin.waitVisible(t, "#key-secret")
		clientID := admin.value(t, "#key-secret-id")
		if !strings.HasPrefix(clientID, "tgc_") {
			t.Fatalf("the dialog shows clientId %q", clientID)
		}
		if !evalJS[bool](t, admin, `document.querySelector("#key-secret-value").classList.contains("masked")`) {
			t.Error("the clientSecret is not shown masked")
		}
		pageShot(t, admin, kind, "admin-oauth-secret-dialog")
		admin.click(t, `#key-secret button[data-copy=key-secret-value]`)
		admin.waitText(t, "#key-secret .copy-status", "Copied")
		clientSecret := admin.clipboard(t)
		if !strings.HasPrefix(clientSecret, "tgs_") || clientSecret != admin.value(t, "#key-secret-value") {
			t.Fatalf("the clipboard holds %.6q..., the field %.6q...", clientSecret, admin.value(t, "#key-secret-value"))
		}
		admin.exec(t, `document.querySelector("#key-secret .copy-status").textContent = ""`)
		admin.click(t, `#key-secret button[data-copy=key-secret-id]`)
		admin.waitText(t, "#key-secret .copy-status", "Copied")
		if got := admin.clipboard(t); got != clientID {
			t.Errorf("Copy of the clientId gave %q", got)
		}
		admin.exec(t, `window.__oldPage = true`)
		admin.click(t, `#key-secret button[data-close]`)
		admin.waitJS(t, `!window.__oldPage && document.readyState === "complete"`)
		row := `table.keys tr:has(form[action="/account/admin/oauth/` + clientID + `"])`
		admin.waitVisible(t, row)
		if got := admin.text(t, row); !strings.Contains(got, "billing") || !strings.Contains(got, "127.0.0.1") {
			t.Errorf("the key's row: %q", got)
		}
		pageShot(t, admin, kind, "admin-oauth")

		status, answer := tokenAnswer(t, g, clientID, clientSecret)
		access, _ := answer["access_token"].(string)
		if status != http.StatusOK || access == "" {
			t.Fatalf("token request with the new key: %d %v", status, answer)
		}
		if s := edgeStatus(t, g, access); s != http.StatusOK {
			t.Fatalf("the access token through the gateway: %d", s)
		}
		if s, _ := tokenAnswer(t, g, clientID, "tgs_"+strings.Repeat("x", 40)); s != http.StatusUnauthorized {
			t.Errorf("a wrong secret: %d", s)
		}

		// Allowed IPs: elsewhere refused, back to 127.0.0.1 it works.
		editIPs := func(ips string) {
			t.Helper()
			admin.click(t, row+` details.menu summary`)
			admin.click(t, row+` button[data-open="edit-`+clientID+`"]`)
			admin.waitVisible(t, "#edit-"+clientID)
			if evalJS[bool](t, admin, `document.querySelector(`+jsString(row+" details.menu")+`).open`) {
				t.Error("the row's menu stays open under the edit dialog")
			}
			admin.typeInto(t, "#edit-"+clientID+"-ips", ips)
			if ips != "127.0.0.1" {
				pageShot(t, admin, kind, "admin-oauth-edit-dialog")
				// Cancel: nothing changes, the focus is back on the menu.
				admin.click(t, "#edit-"+clientID+` button[data-close]`)
				admin.waitGone(t, "#edit-"+clientID)
				// The focus moves on the dialog's close event, which
				// follows the closing: wait for it.
				admin.waitJS(t, `document.activeElement.matches(`+jsString(row+" details.menu summary")+`)`)
				admin.click(t, row+` details.menu summary`)
				admin.click(t, row+` button[data-open="edit-`+clientID+`"]`)
				admin.waitVisible(t, "#edit-"+clientID)
				admin.typeInto(t, "#edit-"+clientID+"-ips", ips)
			}
			admin.submitAndReload(t, "#edit-"+clientID+` button[type=submit]`)
			admin.waitText(t, row, ips)
		}
		editIPs("203.0.113.0/24")
		if r := callEdge(t, g.base, access); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "ip_not_allowed") {
			t.Errorf("the token from outside the key's addresses: %d %s", r.status, r.body)
		}
		editIPs("127.0.0.1")
		if s := edgeStatus(t, g, access); s != http.StatusOK {
			t.Errorf("the token with 127.0.0.1 allowed again: %d", s)
		}

		// Off on the list: refused.
		admin.submitAndReload(t, row+` button.switch`)
		if got := evalJS[string](t, admin, `document.querySelector(`+jsString(row+" button.switch")+`).getAttribute("aria-checked")`); got != "false" {
			t.Errorf("the key's switch after a click: aria-checked=%q", got)
		}
		if s := edgeStatus(t, g, access); s != http.StatusUnauthorized {
			t.Errorf("the token of a key switched off: %d", s)
		}

		// Delete it from its menu.
		admin.click(t, row+` details.menu summary`)
		admin.click(t, row+` button[data-open="delete-`+clientID+`"]`)
		admin.waitVisible(t, "#delete-"+clientID)
		if got := admin.text(t, "#delete-"+clientID); !strings.Contains(got, "“billing”") {
			t.Errorf("the delete confirmation says %q", got)
		}
		pageShot(t, admin, kind, "admin-oauth-delete-dialog")
		admin.submitAndReload(t, "#delete-"+clientID+` button[type=submit]`)
		if admin.visible(t, row) {
			t.Error("the deleted key is still listed")
		}
		if s, _ := tokenAnswer(t, g, clientID, clientSecret); s != http.StatusUnauthorized {
			t.Errorf("a token request with a deleted key: %d", s)
		}
		admin.navigate(t, g.base+"/account/admin/oauth")
		if strings.Contains(pageHTML(t, admin), clientSecret) {
			t.Error("the page shows the clientSecret after a reload")
		}

		// Signing: the validation key, the lifetime, a reset, an algorithm.
		signer := addClient(t, g, "signer")
		admin.navigate(t, g.base+"/account/admin/signing")
		if got := admin.text(t, "main h1"); got != "JWT signing" {
			t.Errorf("signing page heading %q", got)
		}
		pageShot(t, admin, kind, "admin-signing")
		key := admin.value(t, "#validation-key")
		admin.click(t, `button[data-copy=validation-key]`)
		admin.waitText(t, "#key-title ~ .copy-status", "Copied")
		if got := admin.clipboard(t); got != key || key == "" {
			t.Errorf("the clipboard holds %.6q..., the field %.6q...", got, key)
		}
		admin.typeInto(t, "#lifetime", "1800")
		admin.submitAndReload(t, `#lifetime ~ .buttons button[type=submit]`)
		if got := admin.value(t, "#lifetime"); got != "1800" {
			t.Errorf("the lifetime after saving reads %q", got)
		}
		status, answer = tokenAnswer(t, g, signer.ID, signer.Secret)
		if status != http.StatusOK || answer["expires_in"] != float64(1800) {
			t.Errorf("a token after the lifetime change: %d expires_in=%v", status, answer["expires_in"])
		}
		before, _ := answer["access_token"].(string)
		if s := edgeStatus(t, g, before); s != http.StatusOK {
			t.Fatalf("a token before the reset: %d", s)
		}

		admin.click(t, `button[data-open=reset-dialog]`)
		admin.waitVisible(t, "#reset-dialog")
		apply := `#reset-dialog button[data-requires=reset-confirm]`
		if !admin.disabled(t, apply) {
			t.Error("“Yes, apply” is enabled before “I understand” is ticked")
		}
		// The mode's radio buttons sit next to their words, not stretched
		// across the dialog with the words squeezed beside them.
		if w := evalJS[float64](t, admin, `document.querySelector("#reset-dialog input[name=mode][value=immediate]").getBoundingClientRect().width`); w > 40 {
			t.Errorf("the mode's radio button is %.0f px wide", w)
		}
		admin.click(t, `#reset-dialog input[name=mode][value=immediate]`)
		if !admin.disabled(t, apply) {
			t.Error("“Yes, apply” is enabled with a mode but without “I understand”")
		}
		immediateHint := admin.text(t, "#reset-immediate-hint")
		if !strings.Contains(immediateHint, "Every token already issued is refused") {
			t.Errorf("the immediate mode says %q", immediateHint)
		}
		admin.click(t, "#reset-confirm")
		if admin.disabled(t, apply) {
			t.Error("“Yes, apply” stays disabled after “I understand”")
		}
		pageShot(t, admin, kind, "admin-signing-reset-dialog")
		admin.click(t, "#reset-confirm")
		if !admin.disabled(t, apply) {
			t.Error("“Yes, apply” is enabled again after unticking “I understand”")
		}
		admin.click(t, "#reset-confirm")
		admin.submitAndReload(t, apply)
		if got := admin.value(t, "#validation-key"); got == key {
			t.Error("the validation key is unchanged after a reset")
		}
		if s := edgeStatus(t, g, before); s != http.StatusUnauthorized {
			t.Errorf("a token issued before an immediate reset: %d (the page said %q)", s, immediateHint)
		}
		graceTok := requestToken(t, g.base, signer, nil, "")
		mustPass(t, callEdge(t, g.base, graceTok), "a token after the reset")

		admin.click(t, `button[data-open=alg-dialog]`)
		admin.waitVisible(t, "#alg-dialog")
		admin.selectOption(t, "#alg-select", "RS256")
		admin.click(t, `#alg-dialog input[name=mode][value=grace]`)
		graceHint := admin.text(t, "#alg-grace-hint")
		if !strings.Contains(graceHint, "keep working until they expire") {
			t.Errorf("the grace mode says %q", graceHint)
		}
		if !admin.disabled(t, `#alg-dialog button[data-requires=alg-confirm]`) {
			t.Error("“Yes, apply” is enabled before “I understand” is ticked")
		}
		admin.click(t, "#alg-confirm")
		pageShot(t, admin, kind, "admin-signing-alg-dialog")
		admin.submitAndReload(t, `#alg-dialog button[data-requires=alg-confirm]`)
		if got := admin.text(t, "#alg-title ~ p.notice"); !strings.Contains(got, "RS256") {
			t.Errorf("after a grace change the page says %q", got)
		}
		pageShot(t, admin, kind, "admin-signing-pending")
		if s := edgeStatus(t, g, graceTok); s != http.StatusOK {
			t.Errorf("a token issued before a grace change: %d (the page said %q)", s, graceHint)
		}

		// The OAuth log lists the requests above.
		admin.navigate(t, g.base+"/account/admin/log")
		if got := admin.text(t, "main h1"); got != "OAuth log" {
			t.Errorf("log page heading %q", got)
		}
		admin.waitVisible(t, "table.log")
		logText := admin.text(t, "table.log tbody")
		for _, want := range []string{"billing", "signer", clientID, "200", "401", "ERROR", "INFO"} {
			if !strings.Contains(logText, want) {
				t.Errorf("the log does not show %q:\n%s", want, logText)
			}
		}
		if strings.Contains(pageHTML(t, admin), clientSecret) || strings.Contains(pageHTML(t, admin), signer.Secret) {
			t.Error("the log page shows a client secret")
		}
		pageShot(t, admin, kind, "admin-log")
		column := func(n int) []string {
			return evalJS[[]string](t, admin, `[...document.querySelectorAll("table.log tbody tr")].map(r => r.children[`+strconv.Itoa(n)+`].innerText.trim())`)
		}
		admin.selectOption(t, "#log-level", "ERROR")
		admin.click(t, `form[role=search] button[type=submit]`)
		admin.waitJS(t, `document.readyState === "complete" && location.search.includes("level=ERROR")`)
		admin.waitVisible(t, "table.log")
		levels := column(4)
		if len(levels) == 0 {
			t.Error("no ERROR records")
		}
		for _, l := range levels {
			if l != "ERROR" {
				t.Errorf("filtered by ERROR, the log shows %q", l)
			}
		}
		if codes := strings.Join(column(5), " "); !strings.Contains(codes, "401") || strings.Contains(codes, "200") {
			t.Errorf("ERROR records have codes %s", codes)
		}
		pageShot(t, admin, kind, "admin-log-errors")
		admin.selectOption(t, "#log-level", "")
		admin.typeInto(t, "#log-key", "signer")
		admin.click(t, `form[role=search] button[type=submit]`)
		admin.waitJS(t, `document.readyState === "complete" && location.search.includes("key=signer")`)
		admin.waitVisible(t, "table.log")
		names := column(1)
		if len(names) == 0 {
			t.Error("no records of the key signer")
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "signer") {
				t.Errorf("filtered by key signer, the log shows %q", n)
			}
		}
		q := url.Values{"key": {clientID}}.Encode()
		admin.navigate(t, g.base+"/account/admin/log?"+q)
		admin.waitVisible(t, "table.log")
		for _, n := range column(1) {
			if !strings.Contains(n, clientID) {
				t.Errorf("filtered by client id, the log shows %q", n)
			}
		}

		admin.assertNoConsoleErrors(t)
		bob.assertNoConsoleErrors(t, "403 (Forbidden)")
		g.assertNoSecrets(bobPAT, clientSecret, signer.Secret, access, before, graceTok)
	})
}

// pageSignInStatus signs in through the form over HTTP and returns the
// session cookie (nil on a refusal) and the status.
func pageSignInStatus(t *testing.T, g *gateway, name, password string) (*http.Cookie, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.base+"/account/signin", strings.NewReader(url.Values{"name": {name}, "password": {password}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", g.base)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "tokengate-session") && c.Value != "" {
			return c, resp.StatusCode
		}
	}
	return nil, resp.StatusCode
}
