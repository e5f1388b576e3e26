package keyring

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
)

// KeyView describes a key without its private material.
type KeyView struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UsableAt  time.Time `json:"usable_at"`
	RetireAt  time.Time `json:"retire_at,omitzero"`
}

// SettingsView is what the admin sees (seed 003): the algorithm, the
// lifetime, the validation key and the keys' states.
type SettingsView struct {
	Algorithm       string `json:"algorithm"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	// ValidationKey is what a verifier needs: the active key as a JWK for
	// RS256/ES256/EdDSA, or the HS256 shared secret (base64url) — shown to
	// the administrator only, never published.
	ValidationKey map[string]any `json:"validation_key"`
	Keys          []KeyView      `json:"keys"`
	Pending       *Pending       `json:"pending,omitempty"`
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
	v := SettingsView{Algorithm: d.Alg, LifetimeSeconds: d.LifetimeSeconds, Pending: d.Pending}
	for _, k := range d.Keys {
		v.Keys = append(v.Keys, KeyView{k.KID, k.Alg, k.State, k.CreatedAt, k.UsableAt, k.RetireAt})
	}
	s := ks.Signer()
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
	// Reset replaces the signing key with the next one.
	Reset bool `json:"reset"`
	// Mode is "grace" (default: the old key verifies until its tokens
	// expire) or "immediate" (its tokens stop working at once).
	Mode    string `json:"mode"`
	Confirm bool   `json:"confirm"`
}

var errConfirm = errors.New("a key change must be confirmed: set \"confirm\": true (tokens signed with the old key stop working at once in immediate mode)")

// Apply carries out a change and returns the new settings.
func (h *Holder) Apply(ctx context.Context, c Change) (SettingsView, error) {
	keyChange := c.Algorithm != nil || c.Reset
	switch {
	case keyChange && !c.Confirm:
		return SettingsView{}, apierr.Field("confirm", errConfirm)
	case c.Mode == "":
		c.Mode = ModeGrace
	case c.Mode != ModeGrace && c.Mode != ModeImmediate:
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
	return view(ks), nil
}
