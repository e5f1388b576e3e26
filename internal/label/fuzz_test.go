package label_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tokengate/tokengate/internal/label"
)

// FuzzNormalize: a label is refused with one of the package's errors, or
// its display form is trimmed NFC of at most MaxLen characters, and
// normalising it again changes nothing (same display, same key), in any
// case: "Deploy" and "DEPLOY" are the same label.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"deploy", "  Deploy ", "", " ", "é", "e\u0301", "ß", "Σίσυφος", "\x00", "\xff",
		"a\u200bb", strings.Repeat("x", 20), strings.Repeat("x", 21), strings.Repeat("e\u0301", 20), "\u212a", "ǅ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		display, key, err := label.Normalize(s)
		if err != nil {
			if !errors.Is(err, label.ErrEmpty) && !errors.Is(err, label.ErrTooLong) && !errors.Is(err, label.ErrInvalid) {
				t.Fatalf("Normalize(%q): unexpected error %v", s, err)
			}
			return
		}
		switch {
		case display == "" || key == "":
			t.Fatalf("Normalize(%q) = %q, %q", s, display, key)
		case utf8.RuneCountInString(display) > label.MaxLen:
			t.Fatalf("Normalize(%q) = %q: longer than %d", s, display, label.MaxLen)
		case strings.TrimSpace(display) != display || !norm.NFC.IsNormalString(display) || !norm.NFC.IsNormalString(key):
			t.Fatalf("Normalize(%q) = %q, %q: not trimmed NFC", s, display, key)
		}
		d2, k2, err := label.Normalize(display)
		if err != nil || d2 != display || k2 != key {
			t.Fatalf("Normalize(%q) = %q, %q; again: %q, %q, %v", s, display, key, d2, k2, err)
		}
		if _, kUp, err := label.Normalize(strings.ToUpper(display)); err == nil && utf8.RuneCountInString(strings.ToUpper(display)) == utf8.RuneCountInString(display) && kUp != key && strings.ToLower(strings.ToUpper(display)) == strings.ToLower(display) {
			t.Fatalf("%q and its upper case %q have different keys %q, %q", display, strings.ToUpper(display), key, kUp)
		}
	})
}
