package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestREADMELegacyTokensExample: the README's worked example of
// `tokengate legacy tokens` is what printLegacy prints for its report,
// character for character (rows by owner, as Usages lists them).
func TestREADMELegacyTokensExample(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "```console\n$ tokengate legacy tokens\n")
	example, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("the README has no tokengate legacy tokens example")
	}
	use := func(ip, at, host string) string {
		return `{"ip":"` + ip + `","last_used_at":"` + at + `","host":"` + host + `"}`
	}
	report := `{"tokens":[
	 {"owner":"alice","id":"0b9e77c3a1f25d40","enabled":true,"last_used_at":"2026-03-02T08:55:31Z","last_used_ip":"203.0.113.50","last_used_host":"app.example.com",
	  "recent_addresses":[` + use("203.0.113.50", "2026-03-02T08:55:31Z", "app.example.com") + `,` + use("198.51.100.7", "2026-02-27T17:20:03Z", "app.example.com") + `]},
	 {"owner":"alice","id":"c43d2e8f90ab1e72","enabled":true,"last_used_at":"2025-10-11T16:02:44Z","last_used_ip":"192.0.2.14","last_used_host":"app.example.com",
	  "recent_addresses":[` + use("192.0.2.14", "2025-10-11T16:02:44Z", "app.example.com") + `]},
	 {"owner":"bob","id":"91aa07d5e3c6b824","enabled":true,"last_used_at":null,"recent_addresses":[]},
	 {"owner":"build","id":"6f1c0a9e2b7d4c11","enabled":true,"last_used_at":"2026-03-02T09:14:07Z","last_used_ip":"10.0.4.21","last_used_host":"ci.example.com",
	  "recent_addresses":[` + use("10.0.4.21", "2026-03-02T09:14:07Z", "ci.example.com") + `,` + use("10.0.4.22", "2026-03-02T09:13:55Z", "ci.example.com") + `,` + use("10.0.4.23", "2026-03-02T09:12:40Z", "ci.example.com") + `]}],
	 "summary":{"total":4,"listed":4,"window":"720h0m0s","window_days":30,"used_within":2,"never_used":1,
	  "addresses":[
	   {"address":"10.0.4.21","tokens":1,"last_used_at":"2026-03-02T09:14:07Z"},
	   {"address":"10.0.4.22","tokens":1,"last_used_at":"2026-03-02T09:13:55Z"},
	   {"address":"10.0.4.23","tokens":1,"last_used_at":"2026-03-02T09:12:40Z"},
	   {"address":"203.0.113.50","tokens":1,"last_used_at":"2026-03-02T08:55:31Z"},
	   {"address":"198.51.100.7","tokens":1,"last_used_at":"2026-02-27T17:20:03Z"},
	   {"address":"192.0.2.14","tokens":1,"last_used_at":"2025-10-11T16:02:44Z"}],
	  "sites":[
	   {"site":"app.example.com","tokens":2,"last_used_at":"2026-03-02T08:55:31Z"},
	   {"site":"ci.example.com","tokens":1,"last_used_at":"2026-03-02T09:14:07Z"}]}}`
	var buf bytes.Buffer
	if err := printLegacy(&buf, []byte(report)); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != example {
		t.Errorf("printLegacy prints:\n%s\nthe README shows:\n%s", got, example)
	}
}
