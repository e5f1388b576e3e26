package users_test

import (
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/users"
)

// FuzzNormalizeName: a user name is refused, or its canonical form is
// 1-64 characters of a-z 0-9 . _ @ + -, not only dots, normalises to
// itself, and is what CanonicalName makes of the name and of its upper
// case.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"alice", "Alice", "a.b_c@d+e-f", "", ".", "..", "a/b", "\u212aelvin", "ı", strings.Repeat("a", 65), "ALICE@EXAMPLE.COM"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := users.NormalizeName(s)
		if err != nil {
			if users.CanonicalName(s) != "" {
				t.Fatalf("CanonicalName(%q) = %q for a refused name", s, users.CanonicalName(s))
			}
			return
		}
		if n == "" || len(n) > users.MaxNameLen || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789._@+-") != "" || strings.Trim(n, ".") == "" {
			t.Fatalf("NormalizeName(%q) = %q", s, n)
		}
		if again, err := users.NormalizeName(n); err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q; again %q, %v", s, n, again, err)
		}
		if users.CanonicalName(s) != n || users.CanonicalName(strings.ToUpper(s)) != n {
			t.Fatalf("CanonicalName(%q) = %q, of upper case %q; NormalizeName %q", s, users.CanonicalName(s), users.CanonicalName(strings.ToUpper(s)), n)
		}
	})
}
