package token_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/token"
)

// FuzzClassify: Classify never panics, tells each kind only for its exact
// shape, Hash is SHA-256, and a generated PAT (or client secret) with any
// one byte changed is never taken for one of its kind: the checksum
// catches every single-byte change.
func FuzzClassify(f *testing.F) {
	pat, err := token.NewPAT()
	if err != nil {
		f.Fatal(err)
	}
	legacy, err := token.NewLegacy()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"", pat, legacy, "tgp_" + strings.Repeat("0", 36), strings.ToUpper(legacy),
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "a.b.c", "a..c", ".b.c", "a.b.", "a.b.c.d",
		"tgs_" + strings.Repeat("A", 36), strings.Repeat("a", token.MaxLen+1),
	} {
		f.Add(s, uint8(0), byte('x'))
	}
	f.Fuzz(func(t *testing.T, s string, pos uint8, b byte) {
		k := token.Classify(s)
		switch k {
		case token.PAT:
			if len(s) != token.PATLen || !strings.HasPrefix(s, token.PATPrefix) {
				t.Fatalf("%q classified as a PAT", s)
			}
		case token.Legacy:
			if len(s) != token.LegacyLen || strings.Trim(s, "0123456789abcdef") != "" {
				t.Fatalf("%q classified as legacy", s)
			}
		case token.JWT:
			if len(s) > token.MaxLen || strings.Count(s, ".") != 2 || strings.Contains(s, "..") ||
				strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") ||
				strings.Trim(s, ".-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				t.Fatalf("%q classified as a JWT", s)
			}
		case token.Malformed:
		default:
			t.Fatalf("Classify(%q) = %d, no such kind", s, k)
		}
		if token.IsClientSecret(s) && (len(s) != token.PATLen || !strings.HasPrefix(s, token.ClientSecretPrefix)) {
			t.Fatalf("%q taken for a client secret", s)
		}
		if token.Hash(s) != sha256.Sum256([]byte(s)) {
			t.Fatalf("Hash(%q) is not its SHA-256", s)
		}

		// A fresh PAT and client secret, with the fuzzer's byte at the
		// fuzzer's position: valid only when nothing changed.
		fresh, err := token.NewPAT()
		if err != nil {
			t.Fatal(err)
		}
		secret, err := token.NewClientSecret()
		if err != nil {
			t.Fatal(err)
		}
		if token.Classify(fresh) != token.PAT || !token.IsClientSecret(secret) ||
			token.Classify(secret) != token.Malformed || token.IsClientSecret(fresh) {
			t.Fatalf("generated %q / %q misclassified", fresh, secret)
		}
		// The checksum covers the random part only, so a prefix changed
		// into the other kind's is that kind (with a hash nobody holds);
		// any other change is no valid token at all.
		i := int(pos) % token.PATLen
		for _, tok := range []string{fresh, secret} {
			changed := tok[:i] + string([]byte{b}) + tok[i+1:]
			if changed == tok {
				continue
			}
			isPAT, isSecret := token.Classify(changed) == token.PAT, token.IsClientSecret(changed)
			if (isPAT && tok == fresh) || (isSecret && tok == secret) || (i >= len(token.PATPrefix) && (isPAT || isSecret)) {
				t.Fatalf("%q with byte %d changed to %q still checks: %q", tok, i, b, changed)
			}
		}
	})
}
