package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SecretsKeySize is the size of a secrets key in bytes (AES-256).
const SecretsKeySize = 32

// sealVersion is the format of Sealed: AES-256-GCM with a random 96-bit
// nonce per seal and sealAAD as additional data.
const sealVersion = 1

// keyIDBytes is how many bytes of the SHA-256 of a secrets key make its id.
const keyIDBytes = 8

// Sealed is a key's private material encrypted with a secrets key
// (the `secrets_key` option), as kept in the store.
type Sealed struct {
	// Version is the format: 1 is AES-256-GCM, a 12-byte nonce, and the
	// format, the key's kid and its alg as additional data, so sealed
	// material moved to another key of the document does not open.
	Version int `json:"v"`
	// KeyID names the secrets key that sealed it: the first 8 bytes of its
	// SHA-256, in hex. It tells a wrong secrets key from corrupted data.
	KeyID string `json:"key_id"`
	Nonce []byte `json:"nonce"`
	// Data is the ciphertext with GCM's tag.
	Data []byte `json:"data"`
}

// sealAAD binds sealed material to its format, its key's kid and alg.
func sealAAD(version int, kid, alg string) []byte {
	return fmt.Appendf(nil, "tokengate keyring material v%d\x00%s\x00%s", version, kid, alg)
}

// secretsKey is one parsed secrets key.
type secretsKey struct {
	id   string
	aead cipher.AEAD
}

// parseSecretsKey decodes a secrets key: 32 bytes in base64, standard or
// URL alphabet, padded or not. The error never holds the value.
func parseSecretsKey(s string) (*secretsKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			raw = b
			break
		}
	}
	switch {
	case raw == nil:
		return nil, errors.New("must be base64 (generate one with `tokengate secrets-key generate`)")
	case len(raw) != SecretsKeySize:
		return nil, fmt.Errorf("must be %d bytes in base64, not %d (generate one with `tokengate secrets-key generate`)", SecretsKeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &secretsKey{id: hex.EncodeToString(sum[:keyIDBytes]), aead: aead}, nil
}

// GenerateSecretsKey returns a fresh random secrets key in padded
// standard base64.
func GenerateSecretsKey() (string, error) {
	var b [SecretsKeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// Secrets seals the keyring's private material for the store and opens it
// again. A nil *Secrets stands for no secrets_key: material is written in
// clear, and sealed material is refused (never replaced: that would sign
// with keys nobody asked for, and lose the sealed ones).
type Secrets struct {
	current  *secretsKey
	previous *secretsKey // nil: none
}

// NewSecrets parses the secrets key and the previous one (accepted for
// opening only, during a rotation). Both empty: nil, no secrets key. The
// errors name the option and never hold its value.
func NewSecrets(current, previous string) (*Secrets, error) {
	if current == "" && previous == "" {
		return nil, nil
	}
	if current == "" {
		return nil, errors.New("secrets_key_previous needs secrets_key (the key to seal with)")
	}
	cur, err := parseSecretsKey(current)
	if err != nil {
		return nil, fmt.Errorf("secrets_key %v", err)
	}
	s := &Secrets{current: cur}
	if previous != "" {
		if s.previous, err = parseSecretsKey(previous); err != nil {
			return nil, fmt.Errorf("secrets_key_previous %v", err)
		}
		if s.previous.id == cur.id {
			return nil, errors.New("secrets_key_previous is the same key as secrets_key")
		}
	}
	return s, nil
}

// KeyID returns the id of the key that seals ("" for nil: none).
func (s *Secrets) KeyID() string {
	if s == nil {
		return ""
	}
	return s.current.id
}

// PreviousKeyID returns the id of the previous key ("" if none).
func (s *Secrets) PreviousKeyID() string {
	if s == nil || s.previous == nil {
		return ""
	}
	return s.previous.id
}

// key returns the configured key with id, or nil.
func (s *Secrets) key(id string) *secretsKey {
	switch {
	case s == nil:
		return nil
	case s.current.id == id:
		return s.current
	case s.previous != nil && s.previous.id == id:
		return s.previous
	}
	return nil
}

// WrongKeyError is what opening says when material is sealed with a
// secrets key that is neither secrets_key nor secrets_key_previous (or
// when no secrets_key is configured at all).
type WrongKeyError struct {
	// KeyID is the id of the key the material is sealed with.
	KeyID string
	// Current and Previous are the ids of the configured keys ("": none).
	Current, Previous string
}

// Error says which key sealed the material and which keys are configured.
func (e *WrongKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signing keys are encrypted with another secrets_key (id %s)", e.KeyID)
	switch {
	case e.Current == "":
		b.WriteString("; this gateway has no secrets_key")
	case e.Previous == "":
		fmt.Fprintf(&b, "; this gateway's secrets_key has id %s", e.Current)
	default:
		fmt.Fprintf(&b, "; this gateway's secrets_key has id %s and secrets_key_previous id %s", e.Current, e.Previous)
	}
	b.WriteString(": configure the key they were encrypted with (as secrets_key, or as secrets_key_previous to rotate)")
	return b.String()
}

// ErrSealed is matched (errors.Is) by every error of opening sealed
// material: a wrong key (*WrongKeyError), altered data, an unknown format.
var ErrSealed = errors.New("signing keys cannot be opened")

// Is makes a WrongKeyError match ErrSealed.
func (e *WrongKeyError) Is(target error) bool { return target == ErrSealed }

// Sealing says how a stored document keeps its material.
type Sealing struct {
	// Clear: some key's material is in clear.
	Clear bool
	// Previous: some key's material is sealed with secrets_key_previous.
	Previous bool
}

// Stale reports whether the document should be written again, sealed
// with the current key: it holds material in clear, or (with reseal)
// material sealed with the previous key. Without a secrets key nothing
// is stale: clear is what it writes.
func (s *Secrets) Stale(st Sealing, reseal bool) bool {
	return s != nil && (st.Clear || (reseal && st.Previous))
}

// Encode serialises d for the store with every key's material sealed with
// the current secrets key (in clear for nil). d is not changed.
func (s *Secrets) Encode(d *Document) ([]byte, error) {
	if s == nil {
		return d.Encode()
	}
	out := *d
	out.Keys = make([]StoredKey, len(d.Keys))
	for i, k := range d.Keys {
		if k.Material != nil {
			sealed, err := s.current.seal(k)
			if err != nil {
				return nil, err
			}
			k.Material, k.Sealed = nil, sealed
		}
		out.Keys[i] = k
	}
	return out.Encode()
}

func (k *secretsKey) seal(sk StoredKey) (*Sealed, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	data := k.aead.Seal(nil, nonce, sk.Material, sealAAD(sealVersion, sk.KID, sk.Alg))
	return &Sealed{Version: sealVersion, KeyID: k.id, Nonce: nonce, Data: data}, nil
}

// Decode reads a stored document and opens its sealed material, so that
// every key of the result holds its material in clear. It also says how
// the document kept it. Material sealed with a key that is not configured
// is a *WrongKeyError; material that does not open with the key that
// sealed it (altered, or moved from another key) an error naming the kid;
// both match ErrSealed.
func (s *Secrets) Decode(b []byte) (*Document, Sealing, error) {
	var st Sealing
	d, err := Decode(b)
	if err != nil {
		return nil, st, err
	}
	for i := range d.Keys {
		k := &d.Keys[i]
		if k.Sealed == nil {
			if k.Material != nil {
				st.Clear = true
			}
			continue
		}
		key := s.key(k.Sealed.KeyID)
		if key == nil {
			return nil, st, &WrongKeyError{KeyID: k.Sealed.KeyID, Current: s.KeyID(), Previous: s.PreviousKeyID()}
		}
		if key != s.current {
			st.Previous = true
		}
		if k.Material, err = key.open(*k); err != nil {
			return nil, st, err
		}
		k.Sealed = nil
	}
	return d, st, nil
}

func (k *secretsKey) open(sk StoredKey) ([]byte, error) {
	s := sk.Sealed
	if s.Version != sealVersion {
		return nil, fmt.Errorf("%w: signing key %s is sealed in format %d, which this gateway does not know", ErrSealed, sk.KID, s.Version)
	}
	if len(s.Nonce) != k.aead.NonceSize() {
		return nil, fmt.Errorf("%w: signing key %s: sealed material is damaged (nonce)", ErrSealed, sk.KID)
	}
	m, err := k.aead.Open(nil, s.Nonce, s.Data, sealAAD(s.Version, sk.KID, sk.Alg))
	if err != nil {
		return nil, fmt.Errorf("%w: signing key %s does not open with secrets_key id %s although that key sealed it: "+
			"the stored material was altered or moved from another key", ErrSealed, sk.KID, k.id)
	}
	return m, nil
}
