package leak

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
)

// The headers GitHub's secret scanning partner program signs its
// requests with: the key's identifier and an ECDSA (P-256, SHA-256)
// signature of the raw body, ASN.1 DER in standard base64.
const (
	KeyIDHeader     = "Github-Public-Key-Identifier"
	SignatureHeader = "Github-Public-Key-Signature"
)

// ErrBadSignature is the answer to an unsigned or wrongly signed report
// when signatures are required (401).
var ErrBadSignature = fmt.Errorf("%w: the report must be signed by a configured key (%s)", apierr.ErrUnauthenticated, SignatureHeader)

// ParsePublicKeys reads the ECDSA public keys of a PEM document ("PUBLIC
// KEY" blocks, as GitHub publishes them at
// https://api.github.com/meta/public_keys/secret_scanning). It refuses a
// document with no key, with another kind of key, or with anything but
// PEM blocks.
func ParsePublicKeys(data []byte) ([]*ecdsa.PublicKey, error) {
	var keys []*ecdsa.PublicKey
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if strings.TrimSpace(string(rest)) != "" {
				return nil, errors.New("not a PEM document (or text between its blocks)")
			}
			break
		}
		if b.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("a %q block, want PUBLIC KEY", b.Type)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key %d: %v", len(keys)+1, err)
		}
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key %d is a %T, want ECDSA", len(keys)+1, k)
		}
		keys = append(keys, ek)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key")
	}
	return keys, nil
}

// verify checks the request's signature of body against keys (any of
// them: a key's identifier is only a hint, and the list is short).
func verify(keys []*ecdsa.PublicKey, h http.Header, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h.Get(SignatureHeader)))
	if err != nil || len(sig) == 0 {
		return ErrBadSignature
	}
	digest := sha256.Sum256(body)
	for _, k := range keys {
		if ecdsa.VerifyASN1(k, digest[:], sig) {
			return nil
		}
	}
	return ErrBadSignature
}
