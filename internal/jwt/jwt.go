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
	"strings"
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
	if !ok || !matches(alg, signer.Public()) {
		return nil, fmt.Errorf("key %s is not a %s key", kid, alg)
	}
	k.signer, k.public = signer, signer.Public()
	return k, nil
}

// FromPublic makes a verification key from a public key (or, for HS256, a
// shared secret as []byte).
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
	if !IsAsymmetric(alg) || !matches(alg, pub) {
		return nil, fmt.Errorf("key %s does not fit %s", kid, alg)
	}
	k.public = pub
	return k, nil
}

func matches(alg string, pub any) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return alg == RS256 && p.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == ES256 && p.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == EdDSA
	}
	return false
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
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case EdDSA:
		return ed25519.Sign(k.signer.(ed25519.PrivateKey), input), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, k.Alg)
}

// Token is a parsed, not yet verified, compact JWS.
type Token struct {
	Header  Header
	Payload []byte // the decoded claims JSON
	input   string
	sig     []byte
}

// rawHeader catches header members we refuse.
type rawHeader struct {
	Header
	Crit json.RawMessage `json:"crit"`
	JWK  json.RawMessage `json:"jwk"`
	JKU  json.RawMessage `json:"jku"`
	X5U  json.RawMessage `json:"x5u"`
	X5C  json.RawMessage `json:"x5c"`
}

// Parse splits and decodes a compact JWS without verifying it.
func Parse(s string) (*Token, error) {
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
	var rh rawHeader
	if err := json.Unmarshal(hb, &rh); err != nil {
		return nil, ErrMalformed
	}
	if rh.Crit != nil || rh.JWK != nil || rh.JKU != nil || rh.X5U != nil || rh.X5C != nil {
		return nil, fmt.Errorf("%w: header names its own key or critical extensions", ErrInvalid)
	}
	return &Token{Header: rh.Header, Payload: pb, input: s[:len(h)+1+len(p)], sig: sb}, nil
}

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
		ok = isRSA && rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], t.sig) == nil
	case ES256:
		d := sha256.Sum256([]byte(t.input))
		pub, isEC := k.public.(*ecdsa.PublicKey)
		if isEC && len(t.sig) == 64 {
			r, s := new(big.Int).SetBytes(t.sig[:32]), new(big.Int).SetBytes(t.sig[32:])
			ok = ecdsa.Verify(pub, d[:], r, s)
		}
	case EdDSA:
		pub, isEd := k.public.(ed25519.PublicKey)
		ok = isEd && ed25519.Verify(pub, []byte(t.input), t.sig)
	default:
		return fmt.Errorf("%w %q", ErrUnsupported, k.Alg)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
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
	if json.Unmarshal(tok.Payload, &c) != nil {
		return ""
	}
	return c.Iss
}
