// Package jwt signs and verifies compact JWS tokens (RFC 7515/7519) with
// HS256, RS256, ES256 and EdDSA, using only the standard library.
//
// The algorithm is a property of the key, never of the token: Verify
// refuses a token whose header names another algorithm than the key's, so
// there is no "none" and no HS/RS confusion (an RS256 public key is never
// used as an HMAC secret). Headers that would let a token choose its own
// key (jwk, jku, x5u, x5c) or demand unknown processing (crit) are refused.
package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/token"
)

// Algorithms.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// Errors. Every verification failure wraps ErrInvalid.
var (
	ErrInvalid      = errors.New("invalid token")
	ErrAlgMismatch  = fmt.Errorf("%w: algorithm does not match the key", ErrInvalid)
	ErrBadSignature = fmt.Errorf("%w: signature does not verify", ErrInvalid)
	ErrMalformed    = fmt.Errorf("%w: malformed JWS", ErrInvalid)
	ErrUnsupported  = errors.New("unsupported algorithm")
)

// Algorithms returns the supported algorithms, HS256 (the default) first.
func Algorithms() []string { return []string{HS256, RS256, ES256, EdDSA} }

// IsAsymmetric reports whether alg has a public key that may be published.
func IsAsymmetric(alg string) bool { return alg == RS256 || alg == ES256 || alg == EdDSA }

// Supported reports whether alg is one of ours.
func Supported(alg string) bool { return alg == HS256 || IsAsymmetric(alg) }

// Key is a signing or verification key with its id and algorithm.
type Key struct {
	ID  string
	Alg string

	secret []byte // HS256
	signer crypto.Signer
	public crypto.PublicKey
	highS  bool // ES256: also accept s > n/2 (see AcceptHighS)
}

// Generate makes a new random key: a 256-bit HMAC secret, RSA 2048, P-256
// or Ed25519.
func Generate(kid, alg string) (*Key, error) {
	k := &Key{ID: kid, Alg: alg}
	var err error
	switch alg {
	case HS256:
		k.secret = make([]byte, 32)
		_, err = rand.Read(k.secret)
	case RS256:
		var p *rsa.PrivateKey
		p, err = rsa.GenerateKey(rand.Reader, 2048)
		k.signer = p
	case ES256:
		var p *ecdsa.PrivateKey
		p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k.signer = p
	case EdDSA:
		var p ed25519.PrivateKey
		_, p, err = ed25519.GenerateKey(rand.Reader)
		k.signer = p
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupported, alg)
	}
	if err != nil {
		return nil, err
	}
	if k.signer != nil {
		k.public = k.signer.Public()
	}
	return k, nil
}

// Material returns the key's private material for storage: the raw
// secret for HS256, PKCS #8 DER otherwise.
func (k *Key) Material() ([]byte, error) {
	if k.Alg == HS256 {
		return append([]byte(nil), k.secret...), nil
	}
	if k.signer == nil {
		return nil, errors.New("no private key")
	}
	return x509.MarshalPKCS8PrivateKey(k.signer)
}

// FromMaterial rebuilds a key written by Material.
func FromMaterial(kid, alg string, material []byte) (*Key, error) {
	k := &Key{ID: kid, Alg: alg}
	if alg == HS256 {
		if len(material) < 32 {
			return nil, errors.New("HS256 secret shorter than 256 bits")
		}
		k.secret = append([]byte(nil), material...)
		return k, nil
	}
	if !IsAsymmetric(alg) {
		return nil, fmt.Errorf("%w %q", ErrUnsupported, alg)
	}
	priv, err := x509.ParsePKCS8PrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("parsing %s key %s: %v", alg, kid, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s is not a %s key", kid, alg)
	}
	if err := checkPublic(alg, signer.Public()); err != nil {
		return nil, fmt.Errorf("key %s: %w", kid, err)
	}
	k.signer, k.public = signer, signer.Public()
	return k, nil
}

// FromPublic makes a verification key from a public key (or, for HS256, a
// shared secret as []byte). A key of the wrong type, size or shape for alg
// is refused with an error wrapping ErrBadKey that says why: an Ed25519
// key must be 32 bytes, an RSA modulus MinRSABits to MaxRSABits with an
// odd exponent, an EC key a point on P-256.
func FromPublic(kid, alg string, pub any) (*Key, error) {
	k := &Key{ID: kid, Alg: alg}
	if alg == HS256 {
		secret, ok := pub.([]byte)
		if !ok || len(secret) < 32 {
			return nil, errors.New("HS256 needs a secret of at least 256 bits")
		}
		k.secret = secret
		return k, nil
	}
	if !IsAsymmetric(alg) {
		return nil, fmt.Errorf("%w %q", ErrUnsupported, alg)
	}
	if err := checkPublic(alg, pub); err != nil {
		return nil, fmt.Errorf("key %s: %w", kid, err)
	}
	k.public = pub
	return k, nil
}

// AcceptHighS returns a copy of k that also accepts an ES256 signature
// whose s is above n/2. An ECDSA signature (r, s) has a twin (r, n-s)
// that verifies as well, so by default Verify takes only the low-S one and
// each token has one spelling; our own signer always makes it. Most
// other signers (jwx, Java, OpenSSL) do not normalise s, so half of a
// conforming issuer's ES256 tokens have a high s: use this for keys of
// another issuer, never for our own.
func (k *Key) AcceptHighS() *Key {
	c := *k
	c.highS = true
	return &c
}

// Secret returns the HMAC secret of an HS256 key (nil otherwise).
func (k *Key) Secret() []byte { return k.secret }

// PublicKey returns the public key of an asymmetric key (nil for HS256).
func (k *Key) PublicKey() crypto.PublicKey { return k.public }

// JWK returns the public key as a JSON Web Key (RFC 7517/7518/8037); false
// for HS256, whose secret must never be published.
func (k *Key) JWK() (map[string]any, bool) {
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kid": k.ID, "alg": k.Alg, "use": "sig"}
	switch p := k.public.(type) {
	case *rsa.PublicKey:
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		ecdh, err := p.ECDH()
		if err != nil {
			return nil, false
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		jwk["kty"], jwk["crv"], jwk["x"], jwk["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	case ed25519.PublicKey:
		jwk["kty"], jwk["crv"], jwk["x"] = "OKP", "Ed25519", b64(p)
	default:
		return nil, false
	}
	return jwk, true
}

// Header is the part of a JOSE header we read.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// Sign returns the compact JWS of claims, with typ (e.g. "at+jwt") and the
// key's alg and kid in the header.
func Sign(k *Key, typ string, claims any) (string, error) {
	h, err := json.Marshal(Header{Alg: k.Alg, Kid: k.ID, Typ: typ})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	sig, err := k.sign([]byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + enc.EncodeToString(sig), nil
}

func (k *Key) sign(input []byte) ([]byte, error) {
	switch k.Alg {
	case HS256:
		m := hmac.New(sha256.New, k.secret)
		m.Write(input)
		return m.Sum(nil), nil
	case RS256:
		d := sha256.Sum256(input)
		return rsa.SignPKCS1v15(rand.Reader, k.signer.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case ES256:
		d := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, k.signer.(*ecdsa.PrivateKey), d[:])
		if err != nil {
			return nil, err
		}
		// Verify takes only the low-S half of the two valid signatures
		// (r, s) and (r, n-s), so sign that one.
		if s.Cmp(p256HalfOrder) > 0 {
			s.Sub(p256Order, s)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case EdDSA:
		return ed25519.Sign(k.signer.(ed25519.PrivateKey), input), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, k.Alg)
}

// MaxLen bounds the compact JWS that Parse reads: the gate refuses longer
// bearer tokens before any parsing, and Parse does not rely on it.
const MaxLen = token.MaxLen

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	Header Header
	// Payload is the decoded claims JSON: an object whose member names
	// are unique (Parse checks). Read it with Claims, which matches names
	// exactly; encoding/json would fold their case.
	Payload []byte
	claims  []member
	input   string
	sig     []byte
}

// refusedHeaders would let a token choose its own key (jwk, jku, x5u, x5c)
// or demand processing we do not do (crit).
var refusedHeaders = []string{"crit", "jwk", "jku", "x5u", "x5c"}

// Parse splits and decodes a compact JWS without verifying it. The header
// and the claims must be JSON objects with unique member names; only the
// exact names alg, kid and typ are read from the header, and alg must be
// there.
func Parse(s string) (*Token, error) {
	if len(s) > MaxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLen)
	}
	h, rest, ok := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	// The base64 decoder skips CR and LF even in strict mode: refuse them
	// here, or one token would have many accepted spellings.
	if !ok || !ok2 || strings.Contains(sig, ".") || strings.ContainsAny(s, "\r\n") {
		return nil, ErrMalformed
	}
	enc := base64.RawURLEncoding.Strict()
	hb, err1 := enc.DecodeString(h)
	pb, err2 := enc.DecodeString(p)
	sb, err3 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, ErrMalformed
	}
	header, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	claims, err := members(pb, 12) // an access token has 9 or 10
	if err != nil {
		return nil, err
	}
	return &Token{Header: header, Payload: pb, claims: claims, input: s[:len(h)+1+len(p)], sig: sb}, nil
}

// parseHeader reads the JOSE header hb.
func parseHeader(hb []byte) (Header, error) {
	var h Header
	ms, err := members(hb, 3)
	if err != nil {
		return h, err
	}
	hasAlg := false
	for _, m := range ms {
		var dst *string
		switch string(m.name) {
		case "alg":
			dst, hasAlg = &h.Alg, true
		case "kid":
			dst = &h.Kid
		case "typ":
			dst = &h.Typ
		default:
			if slices.Contains(refusedHeaders, string(m.name)) {
				return h, fmt.Errorf("%w: header names its own key or critical extensions", ErrInvalid)
			}
			continue // unknown members are ignored (RFC 7515 4)
		}
		if len(m.value) == 0 || m.value[0] != '"' {
			return h, fmt.Errorf("%w: header member %q is not a string", ErrMalformed, m.name)
		}
		v, err := unquote(m.value)
		if err != nil {
			return h, ErrMalformed
		}
		*dst = string(v)
	}
	if !hasAlg {
		return h, fmt.Errorf("%w: no alg in the header", ErrMalformed)
	}
	return h, nil
}

// Claims decodes the token's claims into v, a pointer to a struct (each
// exported field takes the member named exactly as its json tag) or to a
// map[string]any (numbers as json.Number). Member names are matched
// exactly: "EXP" is not exp. Members without a field are ignored.
func (t *Token) Claims(v any) error { return decodeObject(t.claims, v) }

// Verify checks the signature with k. The header's alg must be exactly
// the key's algorithm.
func (t *Token) Verify(k *Key) error {
	if t.Header.Alg != k.Alg {
		return ErrAlgMismatch
	}
	var ok bool
	switch k.Alg {
	case HS256:
		m := hmac.New(sha256.New, k.secret)
		m.Write([]byte(t.input))
		ok = hmac.Equal(m.Sum(nil), t.sig) // constant time
	case RS256:
		d := sha256.Sum256([]byte(t.input))
		pub, isRSA := k.public.(*rsa.PublicKey)
		ok = isRSA && pub.N != nil && rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], t.sig) == nil
	case ES256:
		pub, isEC := k.public.(*ecdsa.PublicKey)
		if isEC && pub.Curve == elliptic.P256() && pub.X != nil && pub.Y != nil && canonicalES256(t.sig, k.highS) {
			d := sha256.Sum256([]byte(t.input))
			r, s := new(big.Int).SetBytes(t.sig[:32]), new(big.Int).SetBytes(t.sig[32:])
			ok = ecdsa.Verify(pub, d[:], r, s)
		}
	case EdDSA:
		// Keys are checked when they are made (checkPublic); the cheap
		// tests here and above keep ed25519.Verify and ecdsa.Verify from
		// panicking should a bad one ever slip through.
		pub, isEd := k.public.(ed25519.PublicKey)
		ok = isEd && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(t.input), t.sig)
	default:
		return fmt.Errorf("%w %q", ErrUnsupported, k.Alg)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// The order n of P-256 and n/2, as big-endian bytes for canonicalES256
// and as numbers for sign.
var (
	p256Order      = elliptic.P256().Params().N
	p256HalfOrder  = new(big.Int).Rsh(p256Order, 1)
	p256OrderBytes = p256Order.FillBytes(make([]byte, 32))
	p256HalfBytes  = p256HalfOrder.FillBytes(make([]byte, 32))
)

// canonicalES256 reports whether sig is the one spelling of an ES256
// signature we accept: r || s, 32 bytes each, 0 < r < n and 0 < s <= n/2
// (0 < s < n with highS). (r, n-s) verifies whenever (r, s) does, so
// without the low-S rule anyone could make a second valid token from a
// first, with another hash.
func canonicalES256(sig []byte, highS bool) bool {
	if len(sig) != 64 {
		return false
	}
	r, s := sig[:32], sig[32:]
	sMax, sCmp := p256HalfBytes, 0 // s <= n/2
	if highS {
		sMax, sCmp = p256OrderBytes, -1 // s < n
	}
	var zero [32]byte
	return !bytes.Equal(r, zero[:]) && bytes.Compare(r, p256OrderBytes) < 0 &&
		!bytes.Equal(s, zero[:]) && bytes.Compare(s, sMax) <= sCmp
}

// UnverifiedIssuer returns the iss claim of a JWT without verifying it,
// only to pick the verifier; "" if there is none.
func UnverifiedIssuer(raw string) string {
	tok, err := Parse(raw)
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if tok.Claims(&c) != nil {
		return ""
	}
	return c.Iss
}
