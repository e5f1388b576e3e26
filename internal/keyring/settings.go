package keyring

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/jwt"
)

// KeyView describes a key without its private material.
type KeyView struct {
	KID                   string    `json:"kid"`
	Alg                   string    `json:"alg"`
	State                 string    `json:"state"`
	CreatedAt             time.Time `json:"created_at"`
	UsableAt              time.Time `json:"usable_at"`
	ActiveSince           time.Time `json:"active_since,omitzero"`
	SignedLifetimeSeconds int64     `json:"signed_lifetime_seconds,omitempty"`
	SignedUntil           time.Time `json:"signed_until,omitzero"`
	RetireAt              time.Time `json:"retire_at,omitzero"`
}

// SignerView is the key that signs new tokens now.
type SignerView struct {
	KID   string    `json:"kid"`
	Alg   string    `json:"alg"`
	Since time.Time `json:"since"`
}

// NextView is the key that signs next.
type NextView struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// SignsFrom is when it takes over: set when a grace change is
	// pending, absent when it waits for the next key change.
	SignsFrom time.Time `json:"signs_from,omitzero"`
	// Mode is the mode of the pending change ("" when none is pending).
	Mode string `json:"mode,omitempty"`
	// PublishedSince is when it was first listed in the JWKS (RS256,
	// ES256 and EdDSA; HS256 secrets are never published).
	PublishedSince time.Time `json:"published_since,omitzero"`
	// UsableAt is the earliest time a grace change lets it sign: once it
	// has been published for the JWKS cache lifetime.
	UsableAt time.Time `json:"usable_at"`
}

// RetiringView is an old key that no longer signs but still verifies the
// tokens it signed, until the last of them expires.
type RetiringView struct {
	KID           string    `json:"kid"`
	Alg           string    `json:"alg"`
	SignedUntil   time.Time `json:"signed_until,omitzero"`
	VerifiesUntil time.Time `json:"verifies_until"`
}

// SettingsView is what the admin sees (seed 003): the lifetime, the
// validation key, which key signs now, which signs next and from when,
// which old keys still verify and until when, and the keys' states.
type SettingsView struct {
	// Algorithm is the algorithm of the key that signs now (during a
	// grace switch to another algorithm, Next names the new one).
	Algorithm       string `json:"algorithm"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	// ValidationKey is what a verifier needs: the active key as a JWK for
	// RS256/ES256/EdDSA, or the HS256 shared secret (base64url) — shown to
	// the administrator only, never published.
	ValidationKey map[string]any `json:"validation_key"`
	// Signing is the key that signs new tokens now.
	Signing SignerView `json:"signing"`
	// Next is the key that signs after the next key change (or the
	// pending one).
	Next *NextView `json:"next,omitempty"`
	// Verifying lists the old keys that still verify, until when.
	Verifying []RetiringView `json:"verifying"`
	Keys      []KeyView      `json:"keys"`
	Pending   *Pending       `json:"pending,omitempty"`
}

// Settings shows the keyring.
func (h *Holder) Settings(ctx context.Context) (SettingsView, error) {
	ks, err := h.Get(ctx)
	if err != nil {
		return SettingsView{}, apierr.FromStore(err)
	}
	return view(ks), nil
}

func view(ks *Keys) SettingsView {
	d := ks.Doc
	s := ks.Signer()
	v := SettingsView{Algorithm: s.Alg, LifetimeSeconds: d.LifetimeSeconds, Pending: d.Pending, Verifying: []RetiringView{}}
	for _, k := range d.Keys {
		v.Keys = append(v.Keys, KeyView{k.KID, k.Alg, k.State, k.CreatedAt, k.UsableAt, k.ActiveSince, k.SignedLifetimeSeconds, k.SignedUntil, k.RetireAt})
		switch k.State {
		case StateActive:
			v.Signing = SignerView{KID: k.KID, Alg: k.Alg, Since: k.ActiveSince}
			if k.ActiveSince.IsZero() {
				v.Signing.Since = k.UsableAt
			}
		case StateNext:
			n := &NextView{KID: k.KID, Alg: k.Alg, UsableAt: k.UsableAt}
			if jwt.IsAsymmetric(k.Alg) {
				n.PublishedSince = k.CreatedAt
			}
			if d.Pending != nil {
				n.SignsFrom, n.Mode = d.Pending.At, d.Pending.Mode
			}
			v.Next = n
		case StateRetiring:
			v.Verifying = append(v.Verifying, RetiringView{KID: k.KID, Alg: k.Alg, SignedUntil: k.SignedUntil, VerifiesUntil: k.RetireAt})
		}
	}
	if jwk, ok := s.JWK(); ok {
		v.ValidationKey = jwk
	} else {
		v.ValidationKey = map[string]any{"kid": s.ID, "alg": s.Alg, "kty": "oct", "k": base64.RawURLEncoding.EncodeToString(s.Secret())}
	}
	return v
}

// Change is a settings change. A key change (Algorithm or Reset) is
// applied only with Confirm (seed 003's "I understand").
type Change struct {
	Algorithm       *string `json:"algorithm"`
	LifetimeSeconds *int64  `json:"lifetime_seconds"`
	// Reset replaces the signing key.
	Reset bool `json:"reset"`
	// Mode is required with a key change, there is no default:
	// "immediate" (a compromise: fresh keys sign at once, and tokens
	// signed with the old keys stop working at once) or "grace" (planned:
	// the published next key signs once verifiers have had the JWKS cache
	// lifetime to learn it, and the old key verifies until its tokens
	// expire).
	Mode    string `json:"mode"`
	Confirm bool   `json:"confirm"`
}

var (
	errConfirm = errors.New(`a key change must be confirmed: set "confirm": true`)
	errMode    = errors.New(`a key change needs "mode": "immediate" (old tokens stop working at once) or "grace" (old tokens work until they expire)`)
)

// Apply carries out a change and returns the new settings.
func (h *Holder) Apply(ctx context.Context, c Change) (SettingsView, error) {
	keyChange := c.Algorithm != nil || c.Reset
	switch {
	case keyChange && !c.Confirm:
		return SettingsView{}, apierr.Field("confirm", errConfirm)
	case keyChange && c.Mode == "":
		return SettingsView{}, apierr.Field("mode", errMode)
	case c.Mode != "" && c.Mode != ModeGrace && c.Mode != ModeImmediate:
		return SettingsView{}, apierr.Field("mode", errors.New(`must be "grace" or "immediate"`))
	}
	if !keyChange && c.LifetimeSeconds == nil {
		return SettingsView{}, apierr.BadRequest("nothing to change: give algorithm, reset or lifetime_seconds")
	}
	ks, err := h.Update(ctx, func(d *Document) error {
		now := h.now()
		if c.LifetimeSeconds != nil {
			l := time.Duration(*c.LifetimeSeconds) * time.Second
			if l/time.Second != time.Duration(*c.LifetimeSeconds) {
				l = -1 // overflowed: out of range, not wrapped into it
			}
			if err := d.SetLifetime(l); err != nil {
				return apierr.Field("lifetime_seconds", err)
			}
		}
		var err error
		switch {
		case c.Algorithm != nil:
			if _, err = d.SetAlgorithm(*c.Algorithm, c.Mode, h.policy(), now); err != nil {
				return apierr.Field("algorithm", err)
			}
		case c.Reset:
			_, err = d.Rotate(c.Mode, h.policy(), now)
		}
		return err
	})
	if err != nil {
		return SettingsView{}, apierr.FromStore(err)
	}
	v := view(ks)
	if keyChange {
		data := map[string]any{"mode": c.Mode, "algorithm": v.Algorithm, "signing_kid": v.Signing.KID}
		if v.Next != nil && v.Next.Mode != "" {
			data["next_kid"], data["next_algorithm"], data["signs_from"] = v.Next.KID, v.Next.Alg, v.Next.SignsFrom
		}
		events.Emit(h.events, events.Event{
			Type: events.SigningKeyRotated, Time: h.now().UTC(), Actor: events.ActorFrom(ctx),
			Subject: events.Subject{Kind: events.SubjectKeyring, ID: v.Signing.KID}, Data: data,
		})
	}
	return v, nil
}
