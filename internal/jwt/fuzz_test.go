package jwt_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/jwt"
)

// fuzzRSA is a fixed RSA 2048 test key (PKCS #8, made for this test and
// used nowhere else), so that every fuzzing process verifies with the
// same keys and the corpus means the same to all of them.
const fuzzRSA = `
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDENw7ugEMrUsEMYjLdBY0u
3257xHpCMbntwaqmuCxJu7s5zezjbqpfLMrZWWKGy7X5bvdzqpVLb5PcNXcN21kXMvfZbWLb
jiIjf38P4nBLfFLljH8WNWQiy9bwps7BZWRQLAeruEjxuKh+dcT7phvmOyn+Ro0QtRjk8RlL
h54uOet9IvNHn/juvKNXtgFANX+SX75TPgfpK6Nko7j2lPxS/nAV0n3b7H6izQFI2sxBt7gS
GzgklqgwPIWMccCAdnLf4SPc92iF8YlosKXzVoPWjh7F9IAz764ULNHS8s6hgBqGJFp6kIa4
HXRgCZ6r9za5Cfj6rJyj8qxitnh5EUo5AgMBAAECggEAOpkGyItdg+6u4HfjIMarpzfq0uOW
b3ZSRIL159xQvaRnAZhSConeL5Y87jQXjJIBwoA1PkHPXDvyOG1vJKBBNwBtrG1SfKcx4tAM
rj29s41pZExVF9jSEuI1SqFGVdNl5duAXvQmNKolB788GLs+0b8Rh3KiZj7vNFAcccYKo1r6
4lKAOVszH7kfGiIRTNQ7u0++CJf28LXr1SGDERrdKuX+tRPFR2Xm4/qTfVl/Bw/mpD0s4noF
47Rj0eddbGLh81tTxk6CcGvpbwWw4XvhU85ph/MgbKVADGrTQZVrfkHZfL085jmLWFtK1mGr
+DU3Zj7u+legIPwsrCGd4JXokQKBgQDmUxitVG/MNlmuQWvuQfh6f3MtEmrMz28ndq9zvvaL
e46T2sM2vvzxhBeZQuRGyGo99OXgWmtjHVd2F+Ewa72L4hBEMBlC2l3OU4okBjn+ZDGftMt7
MMcGJuJJtu/aKkV9q3tDZLB1hme1Dfpk/kibPQfRGMqdbCMy94Xb7nH3ZwKBgQDaFo8hvyM+
1kIC6MGHAAyrTKO4incMvIsxH/REjiFd+8H7Kesy4E7ZAtr6klLcUS//ry68Z6pZdLPi2VfO
B9j++hWiEtx2kgOrqYpVrLIrxmPbHmN0qlm5A31JN0LgHhxteJPufhBj1ZfHWxqnDeHiwDPl
UKloNy27i/bgbG/NXwKBgQCeLx/Zmw4VQJajGQdZYTGYYAPoRqfW9fgvMFIbumF1NmybmzlL
Viw+aywR9GD3RBnDZ3ihdzgdoD87OfdM3BIYCjCFxEr1ISgf1jwfta8KyiFSwEan2r41uWrc
maltOm7zelxz0qlmbeK39FuuFP4kr+u4bcBqEaSzElB61e6rrQKBgQDNeC2X/M3HGPQOa55R
g5FsHoOtjP8Gx+hX+yQXJtV3B4fGC8NlJoIC4TbQluVsXy1atoDQztZm+5WzZ1Pbb/dYmuOg
1CZTq9O7erszZsZiicJwohvPweNQdWInheIC5zufQ9gT/T+R353lHAdrVp/4E1+RcEJ7RmlW
5lJNNLzM/wKBgQC49n7cBrYQzz5R+ymTGXt+5dXCh+kwi5wjvrkLiCIgFr7ArEh/SWqtA9E8
y3ffgX78hCSyNslbURtHY0U5CyYDrc8ACiTk0yACjvXGbpB+/DhYzw0jO2kv2o5RLEBV7+yO
537ofZmM2XqRKfXtjMzgxUQ8+kGGanZXQj10q96ITg==
`

// fuzzKeys are fixed keys of every algorithm, from constant material.
func fuzzKeys(tb testing.TB) []*jwt.Key {
	tb.Helper()
	seed := bytes.Repeat([]byte{0x5a}, 32)
	mustKey := func(alg string, material []byte) *jwt.Key {
		k, err := jwt.FromMaterial("fuzz-"+alg, alg, material)
		if err != nil {
			tb.Fatalf("%s: %v", alg, err)
		}
		return k
	}
	pkcs8 := func(priv any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
	if err != nil {
		tb.Fatal(err)
	}
	rsaDER, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(fuzzRSA), ""))
	if err != nil {
		tb.Fatal(err)
	}
	return []*jwt.Key{
		mustKey(jwt.HS256, seed),
		mustKey(jwt.RS256, rsaDER),
		mustKey(jwt.ES256, pkcs8(ec)),
		mustKey(jwt.EdDSA, pkcs8(ed25519.NewKeyFromSeed(seed))),
	}
}

// FuzzVerify: with fixed keys of every algorithm, a fuzzed string that
// parses never verifies unless it is a token the key signed, spelled the
// one way we wrote it: its signing input is one we signed with that key
// and its three parts are canonical base64url (no second spelling of a
// token, no signature moved between keys or algorithms). Parse and
// Verify never panic and fail only with errors wrapping ErrInvalid.
func FuzzVerify(f *testing.F) {
	keys := fuzzKeys(f)
	signed := map[string]map[string]bool{} // kid -> signing inputs
	claimSets := []any{
		map[string]any{"sub": "alice", "exp": 4102444800},
		map[string]any{"iss": "https://gw.example", "aud": "https://api.example", "scope": "read write", "jti": "j1"},
		map[string]any{},
	}
	for _, k := range keys {
		signed[k.ID] = map[string]bool{}
		for i, cl := range claimSets {
			tok, err := jwt.Sign(k, "at+jwt", cl)
			if err != nil {
				f.Fatal(err)
			}
			signed[k.ID][tok[:strings.LastIndexByte(tok, '.')]] = true
			if i == 0 {
				f.Add(tok)
			}
		}
	}
	for _, s := range []string{"", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.e30\n"} {
		f.Add(s)
	}
	canonical := func(part string) bool {
		b, err := base64.RawURLEncoding.Strict().DecodeString(part)
		return err == nil && base64.RawURLEncoding.EncodeToString(b) == part
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := jwt.Parse(s)
		if err != nil {
			if !errors.Is(err, jwt.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, k := range keys {
			err := tok.Verify(k)
			if err != nil {
				if !errors.Is(err, jwt.ErrInvalid) {
					t.Fatalf("Verify error %v does not wrap ErrInvalid", err)
				}
				continue
			}
			parts := strings.Split(s, ".")
			if len(parts) != 3 || !signed[k.ID][parts[0]+"."+parts[1]] {
				t.Fatalf("%s key verified a token it never signed: %q", k.Alg, s)
			}
			for _, p := range parts {
				if !canonical(p) {
					t.Fatalf("%s key verified a second spelling of its token: %q", k.Alg, s)
				}
			}
		}
	})
}
