package store_test

import (
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/store"
)

// TestCleanHost: a Host as Go's HTTP/1 server accepts it is kept; what a
// client can send over HTTP/2 or HTTP/3 to a catch-all site (spaces, tabs,
// line breaks, terminal escapes, non-ASCII, invalid UTF-8, a megabyte) is
// recorded as one bounded printable word.
func TestCleanHost(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	for in, want := range map[string]string{
		"":                          "",
		"api.example.com":           "api.example.com",
		"API.example.com:8443":      "API.example.com:8443",
		"[fe80::1%25eth0]:443":      "[fe80::1%25eth0]:443",
		"a_b~c!$&'()*+,;=":          "a_b~c!$&'()*+,;=",
		"a b\tc":                    "a?b?c",
		"x\r\nSet-Cookie: y":        "x??Set-Cookie:?y",
		"\x1b]0;owned\x07\x1b[2J":   "?]0;owned??[2J",
		"\u009b31mred":              "?31mred",
		"пример.рф":                 "??????.??",
		"\u202egro.elpmaxe":         "?gro.elpmaxe",
		"bad\xffutf8":               "bad?utf8",
		"<script>alert(1)</script>": "?script?alert(1)??script?",
		long:                        long[:store.MaxHostLength],
		strings.Repeat("é", store.MaxHostLength): strings.Repeat("?", store.MaxHostLength),
	} {
		got := store.CleanHost(in)
		if got != want {
			t.Errorf("CleanHost(%.40q) = %.40q, want %.40q", in, got, want)
		}
		if len(got) > store.MaxHostLength || store.CleanHost(got) != got {
			t.Errorf("CleanHost(%.40q) = %.40q: longer than %d or not clean", in, got, store.MaxHostLength)
		}
	}
}
