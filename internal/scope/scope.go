// Package scope validates and compares OAuth-style scopes (RFC 6749 3.3):
// case-sensitive strings of printable ASCII without spaces, quotes or
// backslashes.
package scope

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
)

// Limits on a token's scopes.
const (
	MaxScopes = 32
	MaxLen    = 64
)

// Normalize checks a list of scopes and returns it sorted without
// duplicates (nil for an empty list).
func Normalize(scopes []string) ([]string, error) {
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("at most %d scopes are allowed", MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if err := check(s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Parse splits a space-separated scope string (the form of the "scope"
// parameter and claim) and normalizes it.
func Parse(s string) ([]string, error) {
	return Normalize(strings.Fields(s))
}

func check(s string) error {
	if s == "" {
		return fmt.Errorf("scope must not be empty")
	}
	if len(s) > MaxLen {
		return fmt.Errorf("scope %s is longer than %d characters", apierr.Quote(s), MaxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		// RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return fmt.Errorf("scope %s contains a character that is not allowed", apierr.Quote(s))
		}
	}
	return nil
}

// Covers reports whether granted includes every scope in required.
func Covers(granted, required []string) bool {
	for _, r := range required {
		if !slices.Contains(granted, r) {
			return false
		}
	}
	return true
}

// CoversString is Covers for granted scopes held as one space-separated
// string; it does not allocate.
func CoversString(granted string, required []string) bool {
	for _, r := range required {
		if !containsField(granted, r) {
			return false
		}
	}
	return true
}

// containsField reports whether the space-separated list s holds f.
func containsField(s, f string) bool {
	for s != "" {
		var field string
		field, s, _ = strings.Cut(s, " ")
		if field == f {
			return true
		}
	}
	return false
}
