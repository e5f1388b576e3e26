// Package pat manages personal access tokens: creation (the secret is
// returned once and stored only as its SHA-256), listing, renaming,
// switching on and off, setting the expiry, per-token IP allow-lists and
// revocation. Lifetimes follow the token policy (package policy).
package pat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/label"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// MaxLifetime bounds expires_in: 100 years, the legacy default lifetime.
const MaxLifetime = policy.Longest

// Service manages personal access tokens.
type Service struct {
	store store.Tokens
	uses  *lastuse.Recorder
	now   func() time.Time
	// limit is the most tokens a user may have (<= 0: no limit).
	limit int
	// events gets token.created and token.revoked (nil: none).
	events events.Emitter
	// policy bounds lifetimes (the zero Policy: no bound).
	policy policy.Policy
}

// SetPolicy makes the service apply the token policy p to every create
// and change of an expiry. Called while wiring, before the service is
// used.
func (s *Service) SetPolicy(p policy.Policy) { s.policy = p }

// Policy returns the token policy the service applies.
func (s *Service) Policy() policy.Policy { return s.policy }

// SetEvents makes the service emit lifecycle events to e (nil: none).
// Called while wiring, before the service is used.
func (s *Service) SetEvents(e events.Emitter) { s.events = e }

// NewService returns a Service. uses may be nil; now nil means time.Now.
func NewService(s store.Tokens, uses *lastuse.Recorder, limit int, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: s, uses: uses, now: now, limit: limit}
}

// View is a token as its owner sees it: never the secret or its hash.
type View struct {
	ID string `json:"id"`
	// Kind is "pat" or "legacy" (from /rest/token).
	Kind       string     `json:"kind"`
	Label      string     `json:"label"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Enabled    bool       `json:"enabled"`
	AllowedIPs []string   `json:"allowed_ips"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastUsedIP *string    `json:"last_used_ip"`
	// LastUsedHost is the site (Host) of the last use; null when never used.
	LastUsedHost *string `json:"last_used_host"`
	// RecentAddresses are the distinct client addresses the token was
	// used from most recently (at most five), newest first, each with the
	// time and site of its newest use; empty when never used.
	RecentAddresses []store.AddressUse `json:"recent_addresses"`
	// ReplacedValidUntil is when the last secret a rotation replaced
	// stops working; null when none still works.
	ReplacedValidUntil *time.Time `json:"replaced_valid_until"`
}

// ViewOf returns the owner's view of t now.
func ViewOf(t store.Token) View { return viewAt(t, time.Now()) }

// viewAt returns the owner's view of t at now.
func viewAt(t store.Token, now time.Time) View {
	v := View{
		ID: t.ID, Kind: t.Kind, Label: t.Label, Scopes: orEmpty(t.Scopes), CreatedAt: t.CreatedAt,
		Enabled: t.Enabled, AllowedIPs: orEmpty(t.AllowedIPs), RecentAddresses: t.RecentAddresses,
	}
	if v.RecentAddresses == nil {
		v.RecentAddresses = []store.AddressUse{}
	}
	if !t.ExpiresAt.IsZero() {
		v.ExpiresAt = &t.ExpiresAt
	}
	v.ReplacedValidUntil = store.LastUntil(t.Previous, now)
	if !t.LastUsedAt.IsZero() {
		v.LastUsedAt = &t.LastUsedAt
		if t.LastUsedIP != "" {
			v.LastUsedIP = &t.LastUsedIP
		}
		if t.LastUsedHost != "" {
			v.LastUsedHost = &t.LastUsedHost
		}
	}
	return v
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CreateRequest is the body of POST /api-user/tokens.
type CreateRequest struct {
	Label      string   `json:"label"`
	Scopes     []string `json:"scopes"`
	ExpiresIn  *int64   `json:"expires_in"`
	AllowedIPs []string `json:"allowed_ips"`
}

// Created is the answer to a create: the only time the secret is shown.
type Created struct {
	Token string `json:"token"`
	View
}

// Create issues a new token for owner.
func (s *Service) Create(ctx context.Context, owner string, req CreateRequest) (Created, error) {
	display, key, err := label.Normalize(req.Label)
	if err != nil {
		return Created{}, apierr.Field("label", err)
	}
	scopes, err := scope.Normalize(req.Scopes)
	if err != nil {
		return Created{}, apierr.Field("scopes", err)
	}
	ips, err := iplist.Parse(req.AllowedIPs)
	if err != nil {
		return Created{}, apierr.Field("allowed_ips", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	expires, err := s.createExpiry(now, req.ExpiresIn)
	if err != nil {
		return Created{}, err
	}
	secret, err := token.NewPAT()
	if err != nil {
		return Created{}, err
	}
	id, err := token.NewID()
	if err != nil {
		return Created{}, err
	}
	t := store.Token{
		ID: id, Owner: owner, Kind: store.KindPAT, Hash: token.Hash(secret),
		Label: display, LabelKey: key, Scopes: scopes, AllowedIPs: ips.Strings(),
		Enabled: true, CreatedAt: now, ExpiresAt: expires,
	}
	if err := s.store.CreateToken(ctx, t, s.limit); err != nil {
		return Created{}, labelErr(err)
	}
	events.Emit(s.events, events.ForToken(ctx, events.TokenCreated, t, now))
	return Created{Token: secret, View: ViewOf(t)}, nil
}

// expiry is when a token given expires_in seconds at now expires (the
// zero time when in is nil: never). The same rule for create and change.
func expiry(now time.Time, in *int64) (time.Time, error) {
	if in == nil {
		return time.Time{}, nil
	}
	if *in <= 0 || *in > int64(MaxLifetime/time.Second) {
		return time.Time{}, apierr.Field("expires_in", fmt.Errorf("must be between 1 and %d seconds", int64(MaxLifetime/time.Second)))
	}
	return now.Add(time.Duration(*in) * time.Second), nil
}

// createExpiry is when a PAT created at now with expires_in in expires
// under the policy: a lifetime above the maximum or, with require_expiry,
// none at all is refused (400 naming expires_in); none with a maximum set
// gets the maximum.
func (s *Service) createExpiry(now time.Time, in *int64) (time.Time, error) {
	if _, err := expiry(now, in); err != nil {
		return time.Time{}, err
	}
	var asked *time.Duration
	if in != nil {
		d := time.Duration(*in) * time.Second
		asked = &d
	}
	d, err := s.policy.Lifetime(store.KindPAT, asked)
	if err != nil {
		return time.Time{}, apierr.Field("expires_in", err)
	}
	if d == nil {
		return time.Time{}, nil
	}
	return now.Add(*d), nil
}

// List returns owner's tokens with uses this node has not written yet.
func (s *Service) List(ctx context.Context, owner string) ([]View, error) {
	ts, err := s.store.ListTokens(ctx, owner)
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	s.uses.Apply(owner, ts)
	out := make([]View, 0, len(ts))
	for _, t := range ts {
		out = append(out, ViewOf(t))
	}
	return out, nil
}

// UpdateRequest is the body of PATCH /api-user/tokens/{id}; absent fields
// are left alone.
type UpdateRequest struct {
	Label      *string   `json:"label"`
	Enabled    *bool     `json:"enabled"`
	AllowedIPs *[]string `json:"allowed_ips"`
	// ExpiresIn sets a new expiry, in seconds from now (seed 002: "set
	// expiry"), validated like expires_in at creation. A token that has
	// expired cannot be extended (409).
	ExpiresIn *int64 `json:"expires_in"`
}

// Update renames a token, switches it on or off, sets its allow-list or
// its expiry. The store announces the change, so every node drops its
// cached copy and the new expiry holds at the edge at once.
func (s *Service) Update(ctx context.Context, owner, id string, req UpdateRequest) (View, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	expires, err := expiry(now, req.ExpiresIn)
	if err != nil {
		return View{}, err
	}
	var display, key string
	if req.Label != nil {
		var err error
		if display, key, err = label.Normalize(*req.Label); err != nil {
			return View{}, apierr.Field("label", err)
		}
	}
	var ips iplist.List
	if req.AllowedIPs != nil {
		var err error
		if ips, err = iplist.Parse(*req.AllowedIPs); err != nil {
			return View{}, apierr.Field("allowed_ips", err)
		}
	}
	t, err := s.store.UpdateToken(ctx, owner, id, func(t *store.Token) error {
		if req.Label != nil {
			t.Label, t.LabelKey = display, key
		}
		if req.Enabled != nil {
			if *req.Enabled && !t.Enabled {
				t.ActiveAt = now // the dormancy rule counts from here
			}
			t.Enabled = *req.Enabled
		}
		if req.AllowedIPs != nil {
			t.AllowedIPs = ips.Strings()
		}
		if req.ExpiresIn != nil {
			// An expired token stays expired: extending it would bring
			// back a secret its owner may have stopped guarding.
			if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
				return apierr.Conflict("expires_in", errors.New("the token has expired and cannot be extended; create a new one"))
			}
			if err := s.policy.CheckChange(t.Kind, expires.Sub(now)); err != nil {
				return apierr.Field("expires_in", err)
			}
			t.ExpiresAt = expires
		}
		return nil
	})
	if err != nil {
		return View{}, labelErr(err)
	}
	return ViewOf(t), nil
}

// Delete revokes a token.
func (s *Service) Delete(ctx context.Context, owner, id string) error {
	t, err := s.store.DeleteToken(ctx, owner, id)
	if err != nil {
		return apierr.FromStore(err)
	}
	events.Emit(s.events, events.ForToken(ctx, events.TokenRevoked, t, s.now().UTC()))
	return nil
}

func labelErr(err error) error {
	if errors.Is(err, store.ErrLabelTaken) {
		return apierr.Conflict("label", errors.New("another token of yours has this label"))
	}
	return apierr.FromStore(err)
}
