package label

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantDisplay string
		wantErr     error
	}{
		{"plain", "deploy", "deploy", nil},
		{"trimmed", "  deploy\t", "deploy", nil},
		{"empty", "", "", ErrEmpty},
		{"only spaces", " \t\n ", "", ErrEmpty},
		{"20 ascii", strings.Repeat("a", 20), strings.Repeat("a", 20), nil},
		{"21 ascii", strings.Repeat("a", 21), "", ErrTooLong},
		{"20 cyrillic is 40 bytes", strings.Repeat("ж", 20), strings.Repeat("ж", 20), nil},
		{"21 cyrillic", strings.Repeat("ж", 21), "", ErrTooLong},
		{"decomposed counts once after NFC", strings.Repeat("e\u0301", 20), strings.Repeat("é", 20), nil},
		{"control char", "a\x00b", "", ErrInvalid},
		{"bad utf8", "a\xffb", "", ErrInvalid},
		{"spaces inside kept", "my laptop", "my laptop", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := Normalize(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.wantDisplay {
				t.Fatalf("display = %q, want %q", got, tt.wantDisplay)
			}
		})
	}
}

func TestKeysCompareFoldedAndNormalised(t *testing.T) {
	same := [][2]string{
		{"Deploy", "deploy"},
		{"DEPLOY ", " deploy"},
		{"Café", "CAFE\u0301"},
		{"Straße", "STRASSE"},
		{"Ключ", "КЛЮЧ"},
	}
	for _, p := range same {
		_, a, err1 := Normalize(p[0])
		_, b, err2 := Normalize(p[1])
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%q and %q: keys %q, %q (%v, %v)", p[0], p[1], a, b, err1, err2)
		}
	}
	_, a, _ := Normalize("deploy")
	_, b, _ := Normalize("deploy2")
	if a == b {
		t.Error("different labels share a key")
	}
}

// Cherokee letters are one label in either case (x/text swaps their
// cases when folding: golang/go#46101).
func TestCherokeeCase(t *testing.T) {
	for _, pair := range [][2]string{{"ꮯ", "Ꮯ"}, {"ꭰ", "Ꭰ"}, {"ᏸ", "Ᏸ"}, {"ᏽ", "Ᏽ"}} {
		_, k1, err1 := Normalize(pair[0])
		_, k2, err2 := Normalize(pair[1])
		if err1 != nil || err2 != nil || k1 != k2 || k1 != pair[1] {
			t.Errorf("%q -> %q, %q -> %q; want both %q", pair[0], k1, pair[1], k2, pair[1])
		}
	}
}
