package policy

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// What comes first for a listed token.
const (
	FirstExpiry   = "expiry"
	FirstDormancy = "dormancy"
)

// Row is a token in the listing of tokens that expire or go dormant soon.
type Row struct {
	Owner string `json:"owner"`
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
	// ExpiresAt is null for a token that never expires.
	ExpiresAt *time.Time `json:"expires_at"`
	// DormantAt is when the dormancy rule switches the token off if it is
	// not used until then; null when dormancy is off.
	DormantAt *time.Time `json:"dormant_at"`
	// First is "expiry" or "dormancy", whichever of the two comes first
	// ("" when neither is within the period: a token listed only for
	// BeyondMaxLifetime).
	First string `json:"first"`
	// At is the date of First (null when First is "").
	At *time.Time `json:"at"`
	// DormancyWarned says the token's dormancy warning was sent.
	DormancyWarned bool `json:"dormancy_warned"`
	// LastUsedAt is the last use, this node's unwritten uses included
	// (null: never used).
	LastUsedAt *time.Time `json:"last_used_at"`
	// BeyondMaxLifetime: the token lives longer than the policy lets a
	// token of its kind be made now (made before the policy): it never
	// expires or expires after now plus the maximum. Such tokens keep
	// their expiry and are always listed.
	BeyondMaxLifetime bool `json:"beyond_max_lifetime"`
}

// Expiring lists the switched-on, unexpired tokens that expire or that
// the dormancy rule switches off within within of now, and those beyond
// the maximum lifetime, sorted by the nearest date (those without one
// last). A user deleted while it reads is skipped. pending (may be nil) supplies this node's unwritten last uses.
func Expiring(ctx context.Context, s Store, pending Pending, p Policy, within time.Duration, now time.Time) ([]Row, error) {
	users, err := s.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	until := now.Add(within)
	rows := []Row{}
	for _, u := range users {
		ts, err := s.ListTokens(ctx, u.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // deleted meanwhile: their tokens went with them
		case err != nil:
			return nil, err
		}
		var uses map[string]store.LastUse
		if pending != nil {
			uses = pending.Pending(u.Name)
		}
		for _, t := range ts {
			if !t.Enabled || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
				continue
			}
			if use, ok := uses[t.ID]; ok && use.At.After(t.LastUsedAt) {
				t.LastUsedAt = use.At
			}
			if r, ok := rowOf(p, t, now, until); ok {
				rows = append(rows, r)
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		switch {
		case a.At == nil && b.At == nil:
			return 0
		case a.At == nil:
			return 1
		case b.At == nil:
			return -1
		}
		return a.At.Compare(*b.At)
	})
	return rows, nil
}

// rowOf is t's row, if t is listed.
func rowOf(p Policy, t store.Token, now, until time.Time) (Row, bool) {
	r := Row{Owner: t.Owner, ID: t.ID, Kind: t.Kind, Label: t.Label, BeyondMaxLifetime: p.BeyondMax(t, now)}
	if !t.ExpiresAt.IsZero() {
		at := t.ExpiresAt
		r.ExpiresAt = &at
		if !at.After(until) {
			r.First, r.At = FirstExpiry, &at
		}
	}
	if !t.LastUsedAt.IsZero() {
		at := t.LastUsedAt
		r.LastUsedAt = &at
	}
	if p.DormantAfter > 0 {
		last := LastActive(t, time.Time{})
		at := p.DormantAt(t, last, now)
		r.DormantAt = &at
		r.DormancyWarned = Warned(t, last)
		if !at.After(until) && (r.At == nil || at.Before(*r.At)) {
			r.First, r.At = FirstDormancy, &at
		}
	}
	return r, r.At != nil || r.BeyondMaxLifetime
}
