package pat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// DefaultOverlap is how long the secret a rotation replaces keeps working
// when the caller does not say: long enough to roll the new secret out to
// the clients that use it, short enough that a leaked secret dies soon.
// GitLab and Cloudflare end the old secret at once (an overlap of 0,
// which a caller can ask for); Stripe's "roll key" offers up to 7 days.
const DefaultOverlap = time.Hour

// MaxOverlap bounds the overlap a caller may ask for.
const MaxOverlap = 7 * 24 * time.Hour

// ParseOverlap reads an overlap as a Go duration ("1h", "30m", "0") or a
// whole number of seconds ("3600"); "" means DefaultOverlap. It must be
// between 0 and MaxOverlap.
func ParseOverlap(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultOverlap, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseInt(s, 10, 64)
		if nerr != nil || n < 0 || n > int64(MaxOverlap/time.Second) { // n < 0: n seconds could wrap into range
			return 0, apierr.Field("overlap", fmt.Errorf("must be a duration such as 1h, 30m or 0 (at most %s)", MaxOverlap))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > MaxOverlap {
		return 0, apierr.Field("overlap", fmt.Errorf("must be between 0 and %s", MaxOverlap))
	}
	return d, nil
}

// RotateRequest is the body of POST {prefix}/{id}/rotate and
// {prefix}/self/rotate (all optional).
type RotateRequest struct {
	// Overlap is how long the secret being replaced keeps working: a Go
	// duration ("1h", "0"); absent: DefaultOverlap.
	Overlap string `json:"overlap"`
}

// Rotated is the answer to a rotation: the only time the new secret is
// shown. Its replaced_valid_until says until when the secret it replaced
// works (null: it stopped at once).
type Rotated struct {
	Token string `json:"token"`
	View
}

// Rotate gives owner's token id a new secret of its kind (a PAT or a
// legacy token) with the same id, label, scopes, allowed IPs, on/off
// state and expiry (the same expires_at: a rotation never lengthens a
// token's life; under a token policy whose maximum lifetime the token
// outlives, the new secret expires at the maximum from now), and keeps the secret it had working for overlap (0: it
// fails at once; never past the token's own expiry). Secrets replaced by
// earlier rotations keep their own ends: rotating again during an
// overlap never cuts the newest secret short. An expired token cannot be
// rotated (409).
func (s *Service) Rotate(ctx context.Context, owner, id string, overlap time.Duration) (Rotated, error) {
	cur, err := s.store.GetToken(ctx, owner, id)
	if err != nil {
		return Rotated{}, apierr.FromStore(err)
	}
	return s.rotate(ctx, cur, overlap)
}

// rotate is Rotate of the token cur as just read.
func (s *Service) rotate(ctx context.Context, cur store.Token, overlap time.Duration) (Rotated, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	if !cur.ExpiresAt.IsZero() && !now.Before(cur.ExpiresAt) {
		return Rotated{}, apierr.Conflict("id", errors.New("the token has expired and cannot be rotated; create a new one"))
	}
	secret, err := newSecret(cur.Kind)
	if err != nil {
		return Rotated{}, err
	}
	// The new secret is made under the token policy: a token that would
	// outlive the maximum of its kind (made before the policy, or before
	// a lower maximum) expires at the maximum from now.
	expires, expiresBy := cur.ExpiresAt, time.Time{}
	if s.policy.BeyondMax(cur, now) {
		expiresBy = now.Add(s.policy.MaxLifetime(cur.Kind))
		expires = expiresBy
	}
	until := now.Add(overlap)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	t, err := s.store.RotateToken(ctx, cur.Owner, cur.ID, token.Hash(secret), now, until, expiresBy)
	if err != nil {
		return Rotated{}, apierr.FromStore(err)
	}
	e := events.ForToken(ctx, events.TokenRotated, t, now)
	e.Data = map[string]any{"previous_hashed_token": cur.Hash.String(), "overlap_seconds": int64(until.Sub(now) / time.Second)}
	events.Emit(s.events, e)
	return Rotated{Token: secret, View: viewAt(t, now)}, nil
}

// Self returns the view of the token a request presented (by its hash):
// GET {prefix}/self. A secret that a rotation replaced is refused (403):
// its holder must move to the new one, not learn about the token.
func (s *Service) Self(ctx context.Context, p Presented) (View, error) {
	t, err := s.current(ctx, p)
	if err != nil {
		return View{}, err
	}
	s.uses.Apply(p.Owner, []store.Token{t})
	return ViewOf(t), nil
}

// RotateSelf rotates the token a request presented; like Self, a secret
// that a rotation replaced may not rotate (whoever holds an old secret
// would otherwise get the newest).
func (s *Service) RotateSelf(ctx context.Context, p Presented, overlap time.Duration) (Rotated, error) {
	cur, err := s.current(ctx, p)
	if err != nil {
		return Rotated{}, err
	}
	return s.rotate(ctx, cur, overlap)
}

// current reads the presented token and checks that the secret presented
// is its current one.
func (s *Service) current(ctx context.Context, p Presented) (store.Token, error) {
	t, err := s.store.GetToken(ctx, p.Owner, p.ID)
	if err != nil {
		return store.Token{}, apierr.FromStore(err)
	}
	if t.Hash != p.Hash {
		return store.Token{}, fmt.Errorf("%w: this secret has been replaced by a rotation; use the new one", apierr.ErrForbidden)
	}
	return t, nil
}

// Presented is the stored token a request presented, as the edge check
// accepted it.
type Presented struct {
	Owner, ID string
	// Kind is the token's kind as the edge found it (store.KindPAT or
	// store.KindLegacy).
	Kind string
	// Hash is the SHA-256 of the secret presented.
	Hash store.TokenHash
}

// newSecret makes a secret of a token kind.
func newSecret(kind string) (string, error) {
	switch kind {
	case store.KindPAT:
		return token.NewPAT()
	case store.KindLegacy:
		return token.NewLegacy()
	}
	return "", fmt.Errorf("pat: cannot make a secret for a token of kind %q", kind)
}
