// Package token knows the shapes of the tokens tokengate accepts and issues:
// it tells a token's kind without any store look-up, generates personal
// access tokens with a checksum, and hashes secrets for storage.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"unsafe"
)

// Kind is the kind of a bearer token, told by its shape alone.
type Kind uint8

// Token kinds.
const (
	// Malformed: matches no known shape (or a PAT whose checksum is wrong).
	Malformed Kind = iota
	// PAT: a personal access token, "tgp_" + 30 base62 + 6 base62 CRC32.
	PAT
	// Legacy: 40 lowercase hex characters, as /rest/token issues them.
	Legacy
	// JWT: three base64url parts separated by dots.
	JWT
)

// String names the kind as it appears in headers and logs.
func (k Kind) String() string {
	switch k {
	case PAT:
		return "pat"
	case Legacy:
		return "legacy"
	case JWT:
		return "jwt"
	}
	return "malformed"
}

const (
	// PATPrefix starts every personal access token, so that people and
	// secret scanners can recognise one.
	PATPrefix = "tgp_"
	// patRandomLen base62 characters carry about 178 bits of entropy.
	patRandomLen = 30
	// patChecksumLen base62 characters hold a CRC32 (62^6 > 2^32).
	patChecksumLen = 6
	// PATLen is the length of a personal access token.
	PATLen = len(PATPrefix) + patRandomLen + patChecksumLen
	// LegacyLen is the length of a legacy token.
	LegacyLen = 40
	// MaxLen bounds any bearer token we look at; longer ones are malformed
	// before any parsing or I/O.
	MaxLen = 4096
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Classify tells the kind of tok from its shape. It does no I/O and no
// allocation; a PAT with a wrong checksum is Malformed.
func Classify(tok string) Kind {
	switch {
	case len(tok) == PATLen && tok[:len(PATPrefix)] == PATPrefix:
		if validPAT(tok) {
			return PAT
		}
		return Malformed
	case len(tok) == LegacyLen && isLowerHex(tok):
		return Legacy
	case len(tok) <= MaxLen && isJWTShape(tok):
		return JWT
	}
	return Malformed
}

// NewPAT returns a new random personal access token.
func NewPAT() (string, error) { return newChecksummed(PATPrefix) }

// ClientSecretPrefix starts every OAuth client secret.
const ClientSecretPrefix = "tgs_"

// NewClientSecret returns a new OAuth client secret: the PAT format with
// its own prefix, so scanners tell the two apart.
func NewClientSecret() (string, error) { return newChecksummed(ClientSecretPrefix) }

// IsClientSecret reports whether s has the shape and checksum of a client
// secret (no I/O, no allocation).
func IsClientSecret(s string) bool {
	return len(s) == PATLen && s[:len(ClientSecretPrefix)] == ClientSecretPrefix && validPAT(s)
}

// ClientIDPrefix starts every OAuth client id.
const ClientIDPrefix = "tgc_"

// NewClientID returns a new public OAuth client id: "tgc_" + 16 hex.
func NewClientID() (string, error) {
	id, err := randomHex(8)
	return ClientIDPrefix + id, err
}

// newChecksummed returns prefix + 30 random base62 + 6 base62 CRC32 of
// the random part. Every prefix must be 4 bytes long.
func newChecksummed(prefix string) (string, error) {
	b := make([]byte, PATLen)
	copy(b, prefix)
	random := b[len(prefix) : len(prefix)+patRandomLen]
	if err := randomBase62(random); err != nil {
		return "", err
	}
	putChecksum(b[len(prefix)+patRandomLen:], crc32.ChecksumIEEE(random))
	return string(b), nil
}

// Hash returns the SHA-256 of a token: the only form in which it is stored
// and the key of the cache. Tokens are high-entropy, so a fast hash is
// enough (a slow one would only slow the gateway down).
func Hash(tok string) [32]byte {
	// Hashing the string's bytes in place avoids the copy (and, for
	// tokens longer than 32 bytes, the heap allocation) of []byte(tok):
	// this runs on every request. Sum256 only reads its input.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// NewLegacy returns a new random legacy token: 40 lowercase hex characters
// (160 bits).
func NewLegacy() (string, error) {
	return randomHex(LegacyLen / 2)
}

// NewID returns a random public identifier: 16 lowercase hex characters.
func NewID() (string, error) {
	return randomHex(8)
}

func randomHex(n int) (string, error) {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	out := make([]byte, 2*n)
	for i, v := range b {
		out[2*i] = hexdigits[v>>4]
		out[2*i+1] = hexdigits[v&0x0f]
	}
	return string(out), nil
}

// randomBase62 fills dst with uniformly random base62 characters. Bytes
// >= 248 are rejected so that every character is equally likely
// (248 = 4*62).
func randomBase62(dst []byte) error {
	var buf [64]byte
	for i := 0; i < len(dst); {
		if _, err := rand.Read(buf[:]); err != nil {
			return err
		}
		for _, v := range buf {
			if v >= 248 {
				continue
			}
			dst[i] = base62[v%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
	return nil
}

// putChecksum writes sum in base62, most significant digit first, padded
// with zeros to len(dst).
func putChecksum(dst []byte, sum uint32) {
	v := uint64(sum)
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62[v%62]
		v /= 62
	}
}

// validPAT checks the random part and checksum after a 4-byte prefix.
func validPAT(tok string) bool {
	random := tok[len(PATPrefix) : len(PATPrefix)+patRandomLen]
	for i := 0; i < len(random); i++ {
		if base62Value(random[i]) < 0 {
			return false
		}
	}
	var sum uint64
	for _, c := range []byte(tok[len(PATPrefix)+patRandomLen:]) {
		d := base62Value(c)
		if d < 0 {
			return false
		}
		sum = sum*62 + uint64(d)
	}
	return sum == uint64(crc32String(random))
}

// crc32String is crc32.ChecksumIEEE over a string without converting it
// to a byte slice (which would allocate on the hot path).
func crc32String(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isJWTShape reports whether s is three non-empty base64url parts (no
// padding) separated by two dots.
func isJWTShape(s string) bool {
	dots, partLen := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if partLen == 0 {
				return false
			}
			dots++
			partLen = 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			partLen++
		default:
			return false
		}
	}
	return dots == 2 && partLen > 0
}

// secretRun is the shortest run of base64url characters that LooksSecret
// takes for a secret: every secret we hand out (a PAT, a client secret, a
// legacy token, each part of a signed JWT) has one of at least 36, and
// the names, scopes and addresses a request carries have none this long.
const secretRun = 32

// LooksSecret reports whether s could hold a secret: a run of at least
// 32 characters from the base64url alphabet (A-Z a-z 0-9 - _). Errors
// that quote a client's input check it first, so that a token pasted in
// the wrong field is never echoed or logged.
func LooksSecret(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			if run++; run >= secretRun {
				return true
			}
			continue
		}
		run = 0
	}
	return false
}
