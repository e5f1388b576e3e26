// Package keyring manages the keys that sign and verify the gateway's
// access tokens (seed 003's settings): the algorithm, the token lifetime,
// and key changes.
//
// Every key has a kid (HS256 secrets too) and moves through
//
//	next -> active -> retiring -> (removed)
//
// There is always one active key, which signs, and one next key, which is
// published in the JWKS (for RS256, ES256 and EdDSA) before it may sign.
// A key change (a reset or an algorithm switch) has two modes, both
// explicit:
//
//   - grace (planned): the next key takes over once it has been public
//     for at least the JWKS cache lifetime, so that verifiers elsewhere
//     know it before they see a token signed with it; the old key keeps
//     verifying, as retiring, until the last token it signed has expired.
//   - immediate (a compromise; seed 003: "all new JWTs are signed with
//     the new key and the previous key stops working"): every key of the
//     keyring is replaced at once, by fresh ones, so the old keys stop
//     signing, verifying and being published at once. Verifiers elsewhere
//     meet an unknown kid and fetch the JWKS again.
//
// The keyring is one document in the store, so every node signs and
// verifies with the same keys; a change is announced as an EventDocument
// and every node reloads its copy (see Holder).
//
// With a secrets key (the secrets_key option, see Secrets) the private
// material of every key is sealed with AES-256-GCM in the store; the rest
// of the document (algorithm, kids, states, times) stays readable. A
// keyring sealed with a key this gateway does not have is refused, never
// replaced.
package keyring

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jwt"
)

// States of a key.
const (
	StateNext     = "next"
	StateActive   = "active"
	StateRetiring = "retiring"
)

// Rotation modes.
const (
	// ModeGrace keeps the old key for verification until its tokens expire.
	ModeGrace = "grace"
	// ModeImmediate replaces every key with fresh ones at once: tokens
	// signed with the old keys stop working at once.
	ModeImmediate = "immediate"
)

// Leeway is added to a retiring key's life and allowed on exp/nbf.
const Leeway = 30 * time.Second

// MinLifetime and MaxLifetime bound the access token lifetime.
const (
	MinLifetime = 60 * time.Second
	MaxLifetime = 7 * 24 * time.Hour
)

// StoredKey is a key as kept in the store.
type StoredKey struct {
	KID   string `json:"kid"`
	Alg   string `json:"alg"`
	State string `json:"state"`
	// Material is the private key (PKCS #8) or the HS256 secret, in
	// clear: in memory always, in the store only without a secrets_key.
	Material []byte `json:"material,omitempty"`
	// Sealed is Material encrypted with the secrets_key, as the store
	// keeps it when one is configured (see Secrets).
	Sealed *Sealed `json:"sealed,omitempty"`
	// CreatedAt is when the key was made (and, for asymmetric keys,
	// first published in the JWKS).
	CreatedAt time.Time `json:"created_at"`
	// UsableAt is the earliest time a next key may become active.
	UsableAt time.Time `json:"usable_at"`
	// ActiveSince is when the key began to sign (zero: before this was
	// recorded; UsableAt stands in).
	ActiveSince time.Time `json:"active_since,omitzero"`
	// SignedLifetimeSeconds is the longest lifetime of a token the key
	// signed while active: it bounds how long a retiring key must verify.
	SignedLifetimeSeconds int64 `json:"signed_lifetime_seconds,omitempty"`
	// SignedUntil is when a retiring key stopped signing.
	SignedUntil time.Time `json:"signed_until,omitzero"`
	// RetireAt is when a retiring key is removed: SignedUntil plus the
	// longest lifetime it signed plus Leeway, when its last token expires.
	RetireAt time.Time `json:"retire_at,omitzero"`
}

// Pending is a rotation waiting for the next key to be usable.
type Pending struct {
	Mode string    `json:"mode"`
	At   time.Time `json:"at"`
}

// Document is the stored keyring.
type Document struct {
	// Alg is the algorithm new keys use.
	Alg string `json:"alg"`
	// LifetimeSeconds is the access token lifetime.
	LifetimeSeconds int64       `json:"lifetime_seconds"`
	Keys            []StoredKey `json:"keys"`
	Pending         *Pending    `json:"pending,omitempty"`
}

// Policy holds what the keyring needs to know from the configuration.
type Policy struct {
	// PublishDelay is how long an asymmetric next key is published before
	// it may sign: the JWKS cache lifetime.
	PublishDelay time.Duration
}

func (p Policy) delay(alg string) time.Duration {
	if jwt.IsAsymmetric(alg) {
		return p.PublishDelay
	}
	return 0 // HS256 keys are never published; nothing to wait for
}

// Lifetime returns the token lifetime.
func (d *Document) Lifetime() time.Duration { return time.Duration(d.LifetimeSeconds) * time.Second }

// New returns a keyring with an active and a next key. The first active
// key signs at once: no token exists yet that a verifier could see early.
func New(alg string, lifetime time.Duration, p Policy, now time.Time) (*Document, error) {
	if !jwt.Supported(alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %s (use HS256, RS256, ES256 or EdDSA)", apierr.Quote(alg))
	}
	if err := checkLifetime(lifetime); err != nil {
		return nil, err
	}
	d := &Document{Alg: alg, LifetimeSeconds: int64(lifetime / time.Second)}
	if err := d.freshKeys(p, now); err != nil {
		return nil, err
	}
	return d, nil
}

// freshKeys replaces every key with a fresh active key, which signs at
// once, and a fresh next key, all of d.Alg.
func (d *Document) freshKeys(p Policy, now time.Time) error {
	active, err := newKey(d.Alg, StateActive, now, now)
	if err != nil {
		return err
	}
	next, err := newKey(d.Alg, StateNext, now, now.Add(p.delay(d.Alg)))
	if err != nil {
		return err
	}
	d.activate(&active, now)
	d.Keys = []StoredKey{active, next}
	d.Pending = nil
	return nil
}

// activate makes k the signing key from now.
func (d *Document) activate(k *StoredKey, now time.Time) {
	k.State = StateActive
	k.ActiveSince = now.UTC()
	k.SignedLifetimeSeconds = d.LifetimeSeconds
}

func checkLifetime(l time.Duration) error {
	if l < MinLifetime || l > MaxLifetime {
		return fmt.Errorf("token lifetime must be between %v and %v", MinLifetime, MaxLifetime)
	}
	return nil
}

func newKey(alg, state string, now, usableAt time.Time) (StoredKey, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return StoredKey{}, err
	}
	kid := hex.EncodeToString(b[:])
	k, err := jwt.Generate(kid, alg)
	if err != nil {
		return StoredKey{}, err
	}
	m, err := k.Material()
	if err != nil {
		return StoredKey{}, err
	}
	return StoredKey{KID: kid, Alg: alg, State: state, Material: m, CreatedAt: now.UTC(), UsableAt: usableAt.UTC()}, nil
}

func (d *Document) index(state string) int {
	for i, k := range d.Keys {
		if k.State == state {
			return i
		}
	}
	return -1
}

// Rotate replaces the signing key, in mode. Immediate: fresh keys sign
// and verify from now, and no old key verifies any more. Grace: the next
// key takes over once it is usable (published for the JWKS cache
// lifetime); until then the rotation is pending (see Advance). The
// returned time says when the new key signs.
func (d *Document) Rotate(mode string, p Policy, now time.Time) (time.Time, error) {
	switch mode {
	case ModeImmediate:
		return now, d.freshKeys(p, now)
	case ModeGrace:
	default:
		return time.Time{}, fmt.Errorf("rotation mode must be %q or %q", ModeGrace, ModeImmediate)
	}
	i := d.index(StateNext)
	if i < 0 {
		return time.Time{}, errors.New("keyring has no next key")
	}
	at := d.Keys[i].UsableAt
	if at.Before(now) {
		at = now
	}
	d.Pending = &Pending{Mode: mode, At: at.UTC()}
	_, err := d.Advance(p, now)
	return at, err
}

// SetAlgorithm switches to alg, in mode. Immediate: fresh keys of alg
// sign at once. Grace: a new next key of alg replaces the current next
// key and takes over when it is usable (at once for HS256, after the
// publish delay for the others); the current key signs until then.
func (d *Document) SetAlgorithm(alg, mode string, p Policy, now time.Time) (time.Time, error) {
	if !jwt.Supported(alg) {
		return time.Time{}, fmt.Errorf("unsupported signing algorithm %s (use HS256, RS256, ES256 or EdDSA)", apierr.Quote(alg))
	}
	if alg != d.Alg && mode == ModeGrace {
		next, err := newKey(alg, StateNext, now, now.Add(p.delay(alg)))
		if err != nil {
			return time.Time{}, err
		}
		if i := d.index(StateNext); i >= 0 {
			d.Keys[i] = next
		} else {
			d.Keys = append(d.Keys, next)
		}
	}
	prev := d.Alg
	d.Alg = alg
	at, err := d.Rotate(mode, p, now)
	if err != nil {
		d.Alg = prev
	}
	return at, err
}

// SetLifetime changes the lifetime of tokens signed from now on.
func (d *Document) SetLifetime(l time.Duration) error {
	if err := checkLifetime(l); err != nil {
		return err
	}
	d.LifetimeSeconds = int64(l / time.Second)
	if i := d.index(StateActive); i >= 0 {
		d.Keys[i].SignedLifetimeSeconds = max(d.Keys[i].SignedLifetimeSeconds, d.LifetimeSeconds)
	}
	return nil
}

// Advance carries out a due rotation and removes retiring keys whose time
// has come. It reports whether the document changed.
func (d *Document) Advance(p Policy, now time.Time) (bool, error) {
	changed := false
	if d.Pending != nil && !now.Before(d.Pending.At) {
		if err := d.promote(d.Pending.Mode, p, now); err != nil {
			return false, err
		}
		d.Pending = nil
		changed = true
	}
	kept := d.Keys[:0]
	for _, k := range d.Keys {
		if k.State == StateRetiring && !now.Before(k.RetireAt) {
			changed = true
			continue
		}
		kept = append(kept, k)
	}
	d.Keys = kept
	return changed, nil
}

// promote carries out a pending rotation. Grace: next becomes active,
// the active key retires (verifying until its last token expires) and a
// new next key is made. Immediate (pending only in keyrings written by
// older versions): fresh keys replace all.
func (d *Document) promote(mode string, p Policy, now time.Time) error {
	if mode == ModeImmediate {
		return d.freshKeys(p, now)
	}
	ni, ai := d.index(StateNext), d.index(StateActive)
	if ni < 0 || ai < 0 {
		return errors.New("keyring has no next or no active key")
	}
	fresh, err := newKey(d.Alg, StateNext, now, now.Add(p.delay(d.Alg)))
	if err != nil {
		return err
	}
	old := &d.Keys[ai]
	signed := time.Duration(max(old.SignedLifetimeSeconds, d.LifetimeSeconds)) * time.Second
	old.State = StateRetiring
	old.SignedUntil = now.UTC()
	old.RetireAt = now.Add(signed + Leeway).UTC()
	d.activate(&d.Keys[ni], now)
	d.Keys = append(d.Keys, fresh)
	return nil
}

// Encode serialises the document for the store.
func (d *Document) Encode() ([]byte, error) { return json.Marshal(d) }

// Decode reads a stored document.
func Decode(b []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decoding keyring: %v", err)
	}
	return &d, nil
}

// Keys is a keyring ready for use: parsed keys by kid.
type Keys struct {
	Doc      *Document
	signer   *jwt.Key
	verifier map[string]*jwt.Key // active and retiring
	public   []*jwt.Key          // next, active, retiring
}

// Parse turns a document into usable keys.
func Parse(d *Document) (*Keys, error) {
	ks := &Keys{Doc: d, verifier: make(map[string]*jwt.Key)}
	for _, sk := range d.Keys {
		k, err := jwt.FromMaterial(sk.KID, sk.Alg, sk.Material)
		if err != nil {
			return nil, err
		}
		switch sk.State {
		case StateActive:
			ks.signer = k
			ks.verifier[k.ID] = k
		case StateRetiring:
			ks.verifier[k.ID] = k
		}
		ks.public = append(ks.public, k)
	}
	if ks.signer == nil {
		return nil, errors.New("keyring has no active key")
	}
	return ks, nil
}

// Signer returns the active key.
func (ks *Keys) Signer() *jwt.Key { return ks.signer }

// Verifier returns the key that may verify tokens with kid: the active or
// a retiring key. A next key verifies nothing: it has signed nothing.
func (ks *Keys) Verifier(kid string) (*jwt.Key, bool) {
	k, ok := ks.verifier[kid]
	return k, ok
}

// JWKS returns the published keys: the public halves of the next, active
// and retiring asymmetric keys. HS256 secrets never appear.
func (ks *Keys) JWKS() map[string]any {
	keys := []map[string]any{}
	for _, k := range ks.public {
		if jwk, ok := k.JWK(); ok {
			keys = append(keys, jwk)
		}
	}
	return map[string]any{"keys": keys}
}
