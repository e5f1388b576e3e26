package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrintLegacy(t *testing.T) {
	report := `{"tokens":[
	 {"owner":"alice","id":"t1","enabled":true,"last_used_at":"2026-01-02T03:04:05Z","last_used_ip":"192.0.2.1","last_used_host":"app.example",
	  "recent_addresses":[{"ip":"192.0.2.1","last_used_at":"2026-01-02T03:04:05Z","host":"app.example"},{"ip":"2001:db8::1","last_used_at":"2026-01-01T03:04:05Z","host":"api.example"}]},
	 {"owner":"bob","id":"t2","enabled":true,"last_used_at":null,"recent_addresses":[]}],
	 "summary":{"total":3,"listed":2,"window":"720h0m0s","window_days":30,"used_within":1,"never_used":1,
	  "addresses":[{"address":"192.0.2.1","tokens":1,"last_used_at":"2026-01-02T03:04:05Z"}],
	  "sites":[{"site":"app.example","tokens":1,"last_used_at":"2026-01-02T03:04:05Z"}]}}`
	var buf bytes.Buffer
	if err := printLegacy(&buf, []byte(report)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	want := [][]string{
		{"OWNER", "ID", "ENABLED", "LAST", "USED", "FROM", "HOST", "ALSO", "FROM"},
		{"alice", "t1", "true", "2026-01-02T03:04:05Z", "192.0.2.1", "app.example", "2001:db8::1"},
		{"bob", "t2", "true", "never", "-", "-", "-"},
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}
	for _, s := range []string{
		"3 legacy tokens, 2 listed: 1 used within 30 days, 1 never used",
		"ADDRESS", "SITE",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "LAST USED 192.0.2.1 1 2026-01-02T03:04:05Z") ||
		!strings.Contains(flat, "LAST USED app.example 1 2026-01-02T03:04:05Z") {
		t.Errorf("no address or site row:\n%s", out)
	}
}

// TestPrintCleansAddressesAndSites: a site or address stored before the
// gate cleaned them (a client's tab, line break or terminal escape) is
// printed as store.CleanHost shows it: one word, no control character.
func TestPrintCleansAddressesAndSites(t *testing.T) {
	const host = `evil\tsite\u001b[2J\r\nFAKE ROW`
	report := `{"tokens":[{"owner":"alice","id":"t1","enabled":true,"last_used_at":"2026-01-02T03:04:05Z","last_used_ip":"192.0.2.1","last_used_host":"` + host + `",
	  "recent_addresses":[{"ip":"fe80::1%\u001b]0;x","last_used_at":"2026-01-01T03:04:05Z","host":"` + host + `"}]}],
	 "summary":{"total":1,"listed":1,"window":"720h0m0s","window_days":30,"used_within":1,"never_used":0,
	  "addresses":[{"address":"fe80::1%\u001b]0;x","tokens":1,"last_used_at":"2026-01-02T03:04:05Z"}],
	  "sites":[{"site":"` + host + `","tokens":1,"last_used_at":"2026-01-02T03:04:05Z"}]}}`
	tokens := `{"tokens":[{"id":"t1","label":"ci","scopes":[],"enabled":true,"created_at":"2026-01-01T00:00:00Z","last_used_at":"2026-01-02T03:04:05Z",
	  "last_used_ip":"192.0.2.1","last_used_host":"` + host + `","recent_addresses":[{"ip":"fe80::1%\u001b]0;x"}]}]}`
	for name, print := range map[string]func() (string, error){
		"legacy tokens": func() (string, error) {
			var b bytes.Buffer
			err := printLegacy(&b, []byte(report))
			return b.String(), err
		},
		"user tokens": func() (string, error) {
			var b bytes.Buffer
			err := printTokens(&b, []byte(tokens))
			return b.String(), err
		},
	} {
		out, err := print()
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(out, "\t\r\x1b") || strings.Contains(out, "\nFAKE ROW") || !strings.Contains(out, "evil?site?[2J??FAKE?ROW") {
			t.Errorf("%s prints a client's control characters:\n%q", name, out)
		}
	}
}
