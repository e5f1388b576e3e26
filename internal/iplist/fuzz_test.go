package iplist_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
)

// FuzzParse: an allow-list (entries separated by ",") is refused with an
// error that echoes no secret, or parses into at most MaxEntries masked
// prefixes whose canonical form parses to itself and that allow their
// own addresses.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.1.2.3/8,::1", "2001:db8::/32", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104",
		"::ffff:0:0/95", "fe80::1%eth0", "10.0.0.256", " 10.0.0.1 ", "", "$PAT", "10.0.0.1/$LEGACY", "0.0.0.0/0,::/0",
		strings.Repeat("1.2.3.4,", 257)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		secrets := fuzztest.NewSecrets(t)
		entries := strings.Split(secrets.Expand(s), ",")
		l, err := iplist.Parse(entries)
		if err != nil {
			if leak := secrets.Leaked(err.Error()); leak != "" {
				t.Fatalf("Parse error echoes a secret: %v", err)
			}
			return
		}
		if len(l) > iplist.MaxEntries || len(l) != len(entries) {
			t.Fatalf("Parse(%q) = %d entries", entries, len(l))
		}
		canon := l.Strings()
		again, err := iplist.Parse(canon)
		if err != nil || !slices.Equal(again.Strings(), canon) {
			t.Fatalf("canonical %q parses to %q, %v", canon, again.Strings(), err)
		}
		for _, p := range l {
			if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("entry %v is not canonical", p)
			}
			if !l.Allows(p.Addr()) {
				t.Fatalf("%q does not allow its own %v", canon, p.Addr())
			}
		}
	})
}
