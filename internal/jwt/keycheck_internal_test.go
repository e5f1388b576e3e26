package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"testing"
)

// TestVerifyNeverPanicsOnABadKey: keys are checked when they are made,
// but should one of the wrong shape reach Verify, it is a refusal, not a
// panic (ed25519.Verify panics on a key that is not 32 bytes).
func TestVerifyNeverPanicsOnABadKey(t *testing.T) {
	good, err := Generate("k", EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*Key{
		"Ed25519 of 31 bytes": {ID: "k", Alg: EdDSA, public: ed25519.PublicKey(make([]byte, 31))},
		"Ed25519 nil":         {ID: "k", Alg: EdDSA},
		"RSA without modulus": {ID: "k", Alg: RS256, public: &rsa.PublicKey{E: 65537}},
		"EC on P-384":         {ID: "k", Alg: ES256, public: &ecdsa.PublicKey{Curve: elliptic.P384()}},
		"EC without point":    {ID: "k", Alg: ES256, public: &ecdsa.PublicKey{Curve: elliptic.P256()}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Sign(good, "", map[string]string{"sub": "alice"})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			tok.Header.Alg = k.Alg
			if err := tok.Verify(k); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}
