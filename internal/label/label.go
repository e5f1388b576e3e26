// Package label applies the rules for token labels (seed 000): not empty,
// at most MaxLen characters, unique among one user's labels.
//
// Length is counted in Unicode characters (runes), not bytes, after
// trimming and NFC normalisation; uniqueness compares the case-folded NFC
// form, so "Deploy", "deploy" and "DEPLOY" are the same label, and so are a
// precomposed "é" and "e" + combining accent.
package label

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MaxLen is the most characters a label may have.
const MaxLen = 20

// Errors returned by Normalize.
var (
	ErrEmpty   = errors.New("label must not be empty")
	ErrTooLong = fmt.Errorf("label must be at most %d characters", MaxLen)
	ErrInvalid = errors.New("label must be valid UTF-8 without control characters")
)

// Normalize checks a label and returns the form to show (trimmed, NFC) and
// the key to compare for uniqueness (NFC of the case-folded form).
func Normalize(s string) (display, key string, err error) {
	if !utf8.ValidString(s) {
		return "", "", ErrInvalid
	}
	display = norm.NFC.String(strings.TrimSpace(s))
	if display == "" {
		return "", "", ErrEmpty
	}
	if utf8.RuneCountInString(display) > MaxLen {
		return "", "", ErrTooLong
	}
	for _, r := range display {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", "", ErrInvalid
		}
	}
	// cases.Caser is not safe for concurrent use: make one per call.
	key = norm.NFC.String(strings.Map(cherokeeFold, cases.Fold().String(display)))
	return display, key, nil
}

// cherokeeFold finishes x/text's case folding of Cherokee, which swaps
// the two cases instead of folding both to the capital letters as
// Unicode's CaseFolding.txt says (golang/go#46101): without it "Ꮯ" and
// "ꮯ" would be two labels.
func cherokeeFold(r rune) rune {
	switch {
	case r >= 0xAB70 && r <= 0xABBF: // small letters of the Cherokee Supplement
		return r - 0xAB70 + 0x13A0
	case r >= 0x13F8 && r <= 0x13FD: // small ye to mv
		return r - 8
	}
	return r
}
