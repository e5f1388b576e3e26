package tests

import (
	"net/http"
	"strings"
	"testing"
)

// TestBrowserRotate: the Rotate button of the token page shows the new
// secret once, like create; the old secret works for the overlap chosen
// (the page says until when), or stops at once with "Not at all".
func TestBrowserRotate(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{siteOptions: uiSite})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		old, id := createPAT(t, g, "alice", alicePassword, `{"label":"deploy"}`)
		b := startBrowser(t)
		signInPage(t, b, g, "alice", alicePassword)

		row := "tr[data-token='" + id + "']"
		b.click(t, row+" button[data-open=rotate-dialog]")
		b.waitVisible(t, "#rotate-dialog")
		if got := b.text(t, "#rotate-text"); !strings.Contains(got, "deploy") {
			t.Errorf("the rotate dialog says %q", got)
		}
		if got := b.value(t, "#rotate-overlap"); got != "1h" {
			t.Errorf("the default overlap is %q", got)
		}
		pageShot(t, b, kind, "tokens-rotate-dialog")
		b.click(t, "#rotate-dialog button[type=submit]")
		b.waitVisible(t, "#secret-dialog")
		fresh := b.value(t, "#secret-value")
		if !strings.HasPrefix(fresh, "tgp_") || fresh == old {
			t.Fatalf("the dialog shows %q", fresh)
		}
		for _, tok := range []string{fresh, old} {
			if r := do(t, http.MethodGet, g.base+"/orders", bearer(tok), ""); r.status != http.StatusOK {
				t.Fatalf("after a rotation with an overlap: %d %s", r.status, r.body)
			}
		}
		b.click(t, "#secret-dialog [data-close]")
		b.waitGone(t, "#secret-dialog")
		b.waitReload(t)
		b.waitVisible(t, row+" .replaced-until")
		if got := b.text(t, row+" .replaced-until"); !strings.HasPrefix(got, "The old secret works until ") || strings.Contains(got, "<") {
			t.Errorf("the row says %q", got)
		}
		pageShot(t, b, kind, "tokens-rotated")

		// "Not at all": the secret being replaced stops at once.
		b.click(t, row+" button[data-open=rotate-dialog]")
		b.waitVisible(t, "#rotate-dialog")
		b.exec(t, `document.querySelector("#rotate-overlap").value = "0"`)
		b.click(t, "#rotate-dialog button[type=submit]")
		b.waitVisible(t, "#secret-dialog")
		newest := b.value(t, "#secret-value")
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(fresh), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("the secret replaced with no overlap: %d %s", r.status, r.body)
		}
		for _, tok := range []string{newest, old} {
			if r := do(t, http.MethodGet, g.base+"/orders", bearer(tok), ""); r.status != http.StatusOK {
				t.Fatalf("the newest secret, or the first in its own overlap: %d %s", r.status, r.body)
			}
		}
		b.assertNoConsoleErrors(t)
		g.assertNoSecrets(old, fresh, newest)
	})
}
