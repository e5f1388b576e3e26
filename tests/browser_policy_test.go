package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBrowserPolicyAndRecentAddresses: under a token policy with a
// maximum lifetime the create dialog offers "Longest allowed" instead of
// "Never" and no lifetime beyond the maximum; a token used from three
// addresses shows the two besides its last one in the list.
func TestBrowserPolicyAndRecentAddresses(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{
		siteOptions: uiSite,
		appOptions:  "\n\t\ttoken_policy {\n\t\t\tpat_max_lifetime 60d\n\t\t}",
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	secret, _ := createPAT(t, g, "alice", alicePassword, `{"label":"fleet"}`)
	for _, from := range []string{"198.51.100.7", "203.0.113.9"} {
		mustPass(t, do(t, http.MethodGet, g.trusted+"/x", withHeader(bearer(secret), "X-Forwarded-For", from), ""), "from "+from)
	}
	mustPass(t, do(t, http.MethodGet, g.base+"/x", bearer(secret), ""), "from 127.0.0.1")

	b := startBrowser(t)
	signInPage(t, b, g, "alice", alicePassword)
	// The uses reach the store with the next flush; the page shows them then.
	if !eventually(30*time.Second, func() bool {
		b.navigate(t, g.base+"/account/tokens")
		b.waitReady(t)
		return strings.Contains(b.text(t, "main"), "also used recently from")
	}) {
		t.Fatalf("the token list never showed the other recent addresses: %s", b.text(t, "main"))
	}
	row := b.text(t, ".recent-addresses")
	if !strings.Contains(row, "198.51.100.7") || !strings.Contains(row, "203.0.113.9") || strings.Contains(row, "127.0.0.1") {
		t.Errorf("recent addresses shown as %q, want the two addresses besides the last one (127.0.0.1)", row)
	}
	b.screenshot(t, "tokens-recent-addresses")

	b.click(t, "#create-open")
	b.waitVisible(t, "#create-dialog")
	options := evalJS[[]string](t, b, `[...document.querySelectorAll("#create-expires option")].map(o => o.textContent.trim())`)
	joined := strings.Join(options, " | ")
	if !strings.Contains(joined, "Longest allowed (60 days)") || strings.Contains(joined, "Never") || strings.Contains(joined, "90 days") {
		t.Errorf("lifetimes offered under a 60-day maximum: %s", joined)
	}
	b.screenshot(t, "tokens-create-policy")
	b.assertNoConsoleErrors(t)
}
