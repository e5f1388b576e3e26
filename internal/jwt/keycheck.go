package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Bounds on RSA keys. Below 2048 bits a modulus is within reach of
// factoring (NIST SP 800-131A); above 8192 bits each verification costs
// so much that an issuer's key set could be used to make us burn CPU on
// every token naming it, and no issuer we know of publishes one.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// ErrBadKey is a public key of the wrong type, size or shape for its
// algorithm. Every key built from outside material (a JWKS, the store, the
// configuration) is checked, so verification never meets one.
var ErrBadKey = errors.New("unusable key")

// checkPublic tells why pub cannot be used with alg, or nil if it can.
func checkPublic(alg string, pub any) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadKey, fmt.Sprintf(format, args...))
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch {
		case alg != RS256:
			return bad("an RSA key is not for %s", alg)
		case p.N == nil || p.N.Sign() <= 0 || p.N.Bit(0) == 0:
			return bad("RSA modulus is not a positive odd number")
		case p.N.BitLen() < MinRSABits || p.N.BitLen() > MaxRSABits:
			return bad("RSA modulus of %d bits, want %d to %d", p.N.BitLen(), MinRSABits, MaxRSABits)
		case p.E < 3 || p.E > 1<<31-1 || p.E%2 == 0:
			// crypto/rsa takes no exponent above 2^31-1 either.
			return bad("RSA public exponent %d is not an odd number from 3 to 2^31-1", p.E)
		}
	case *ecdsa.PublicKey:
		switch {
		case alg != ES256:
			return bad("an EC key is not for %s", alg)
		case p.Curve != elliptic.P256():
			return bad("EC key is not on P-256")
		case p.X == nil || p.Y == nil:
			return bad("EC key has no point")
		}
		// ECDH decodes the point with crypto/ecdh, which refuses the point
		// at infinity and any point not on the curve.
		if _, err := p.ECDH(); err != nil {
			return bad("EC point is not on P-256: %v", err)
		}
	case ed25519.PublicKey:
		switch {
		case alg != EdDSA:
			return bad("an Ed25519 key is not for %s", alg)
		case len(p) != ed25519.PublicKeySize:
			// ed25519.Verify panics on any other length.
			return bad("Ed25519 key of %d bytes, want %d", len(p), ed25519.PublicKeySize)
		}
	default:
		return bad("%T is not a public key we support", pub)
	}
	return nil
}
