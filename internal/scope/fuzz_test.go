package scope_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
)

// FuzzParse: a scope string is refused with an error that echoes no
// secret, or parses into a sorted list without duplicates of at most
// MaxScopes RFC 6749 scope tokens, whose canonical form (joined by
// spaces) parses to itself and covers each of them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"read write", "write read read", "", "  ", "a\"b", "a\\b", "é", "\x7f",
		strings.Repeat("s", 65), strings.Repeat("a ", 33), "$PAT", "read $LEGACY\"", "x$JWT\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		secrets := fuzztest.NewSecrets(t)
		s = secrets.Expand(s)
		got, err := scope.Parse(s)
		if err != nil {
			if leak := secrets.Leaked(err.Error()); leak != "" {
				t.Fatalf("Parse error echoes a secret: %v", err)
			}
			return
		}
		if len(got) > scope.MaxScopes || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("Parse(%q) = %q", s, got)
		}
		for _, sc := range got {
			if sc == "" || len(sc) > scope.MaxLen || strings.ContainsAny(sc, "\" \\") || strings.IndexFunc(sc, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
				t.Fatalf("Parse(%q) took scope %q", s, sc)
			}
		}
		joined := strings.Join(got, " ")
		again, err := scope.Parse(joined)
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("canonical %q parses to %q, %v", joined, again, err)
		}
		if !scope.Covers(got, got) || !scope.CoversString(joined, got) {
			t.Fatalf("%q does not cover itself", joined)
		}
	})
}
