// Package policy is the administrator's token policy: the longest
// lifetime of personal access tokens and of legacy tokens, whether a
// personal access token must expire, and the dormancy rule (a token
// unused for a while is warned, then switched off). Policy answers what
// a lifetime may be (package pat asks it on every create and change);
// Scanner applies the dormancy rule on every node; Expiring lists the
// tokens that expire or go dormant soon.
package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
)

// Policy is the token policy. The zero value is no policy: any lifetime
// (up to the services' own bounds), no expiry required, no dormancy.
type Policy struct {
	// PATMaxLifetime bounds the lifetime of a personal access token
	// (expires_in at creation and in a change); a token created without
	// expires_in gets it (0: no bound).
	PATMaxLifetime time.Duration
	// LegacyMaxLifetime bounds the lifetime of a legacy token (in a
	// change of expires_in; /rest/token issues tokens of at most this
	// lifetime, see the gateway's legacy_token_ttl) (0: no bound).
	LegacyMaxLifetime time.Duration
	// RequireExpiry refuses a personal access token created without
	// expires_in (when PATMaxLifetime is 0; with a maximum such a token
	// gets the maximum and RequireExpiry refuses nothing more).
	RequireExpiry bool
	// DormantAfter switches off a token unused for this long (0: never).
	DormantAfter time.Duration
	// DormancyWarning is how long before it is switched off a dormant
	// token is warned, at least (0 with DormantAfter: DefaultWarning,
	// capped to half of DormantAfter).
	DormancyWarning time.Duration
	// UseDelay is how late a use may reach the store (the gateway passes
	// twice its last_access_flush: other nodes write their uses in
	// batches): a switch-off waits this long past the token's DormantAt,
	// so that a use just before it, made on another node, is seen.
	UseDelay time.Duration
}

// Longest bounds a maximum lifetime: 100 years, the token services' own
// bound (pat.MaxLifetime, legacy.DefaultLifetime). A maximum above it
// would give tokens created without expires_in a lifetime no request may
// ask for.
const Longest = 100 * 365 * 24 * time.Hour

// DefaultWarning is the dormancy warning when none is set.
const DefaultWarning = 7 * 24 * time.Hour

// Validate refuses a policy that makes no sense.
func (p Policy) Validate() error {
	switch {
	case p.PATMaxLifetime < 0 || p.LegacyMaxLifetime < 0 || p.DormantAfter < 0 || p.DormancyWarning < 0:
		return errors.New("durations must not be negative")
	case p.PATMaxLifetime > 0 && p.PATMaxLifetime < time.Second, p.LegacyMaxLifetime > 0 && p.LegacyMaxLifetime < time.Second:
		return errors.New("a maximum lifetime must be at least 1s")
	case p.PATMaxLifetime > Longest || p.LegacyMaxLifetime > Longest:
		return errors.New("a maximum lifetime must be at most 100 years (876000h)")
	case p.DormancyWarning > 0 && p.DormantAfter == 0:
		return errors.New("dormancy_warning needs dormant_after")
	case p.DormantAfter > 0 && p.DormantAfter < time.Second:
		return errors.New("dormant_after must be at least 1s")
	case p.DormantAfter > 0 && p.DormancyWarning >= p.DormantAfter:
		return errors.New("dormancy_warning must be shorter than dormant_after")
	}
	return nil
}

// Warning is the dormancy warning in effect (0 when dormancy is off).
func (p Policy) Warning() time.Duration {
	switch {
	case p.DormantAfter <= 0:
		return 0
	case p.DormancyWarning > 0:
		return p.DormancyWarning
	}
	return min(DefaultWarning, p.DormantAfter/2)
}

// MaxLifetime is the longest lifetime of a token of kind (0: no bound).
func (p Policy) MaxLifetime(kind string) time.Duration {
	switch kind {
	case store.KindPAT:
		return p.PATMaxLifetime
	case store.KindLegacy:
		return p.LegacyMaxLifetime
	}
	return 0
}

// Lifetime is the lifetime a new token of kind gets when its creator asks
// for asked (nil: none asked): asked itself, the kind's maximum when none
// was asked and a maximum is set, or nil (never expires). It refuses a
// lifetime above the maximum (LifetimeError) and, with RequireExpiry, a
// personal access token without one (ErrExpiryRequired).
func (p Policy) Lifetime(kind string, asked *time.Duration) (*time.Duration, error) {
	limit := p.MaxLifetime(kind)
	switch {
	case asked == nil && limit > 0:
		return &limit, nil
	case asked == nil && p.RequireExpiry && kind == store.KindPAT:
		return nil, ErrExpiryRequired
	case asked != nil && limit > 0 && *asked > limit:
		return nil, &LifetimeError{Kind: kind, Max: limit}
	}
	return asked, nil
}

// CheckChange refuses a new lifetime of a token of kind above the kind's
// maximum (LifetimeError).
func (p Policy) CheckChange(kind string, d time.Duration) error {
	if limit := p.MaxLifetime(kind); limit > 0 && d > limit {
		return &LifetimeError{Kind: kind, Max: limit}
	}
	return nil
}

// BeyondMax says whether t, at now, would live longer than a token of its
// kind may be made to live now: it never expires, or expires after now
// plus the maximum. Tokens made before the policy (or before a lower
// maximum) keep their expiry; the listing flags them with this.
func (p Policy) BeyondMax(t store.Token, now time.Time) bool {
	limit := p.MaxLifetime(t.Kind)
	return limit > 0 && (t.ExpiresAt.IsZero() || t.ExpiresAt.After(now.Add(limit)))
}

// ParsePeriod reads a period as the admin API and CLI take one: whole
// days ("30d"), a Go duration ("72h", "90m") or whole seconds ("3600"),
// positive and at most Longest. Its error quotes the value as
// apierr.Quote does (never a secret pasted there; callers name the field).
func ParsePeriod(s string) (time.Duration, error) {
	bad := fmt.Errorf("%s is not a duration such as 30d, 72h or 3600 (seconds), up to 100 years", apierr.Quote(s))
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > int64(Longest/(24*time.Hour)) {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > int64(Longest/time.Second) {
			return 0, bad
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, bad
	}
	if d <= 0 || d > Longest {
		return 0, bad
	}
	return d, nil
}

// ErrExpiryRequired refuses a personal access token without an expiry.
var ErrExpiryRequired = errors.New("expires_in is required by the token policy")

// LifetimeError refuses a lifetime above the policy's maximum. Its text
// names the field and the maximum in seconds and in words.
type LifetimeError struct {
	Kind string
	Max  time.Duration
}

func (e *LifetimeError) Error() string {
	return fmt.Sprintf("expires_in must be at most %d seconds (%s) by the token policy", int64(e.Max/time.Second), Words(e.Max))
}

// Words says a duration as a person would: "90 days", "1 day", "36
// hours", "90 minutes", "45 seconds" (the largest unit that divides it).
func Words(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d/time.Second), "second")
}

// LastActive is when t was last active: the latest of its creation, its
// last use (pending, a use this node has not written yet; zero: none) and
// its last switch-on or rotation (ActiveAt).
func LastActive(t store.Token, pending time.Time) time.Time {
	last := t.CreatedAt
	for _, at := range []time.Time{t.LastUsedAt, pending, t.ActiveAt} {
		if at.After(last) {
			last = at
		}
	}
	return last
}

// Warned says whether t's dormancy warning counts: it was given after the
// token's last activity.
func Warned(t store.Token, lastActive time.Time) bool {
	return !t.DormancyWarnedAt.IsZero() && t.DormancyWarnedAt.After(lastActive)
}

// DormantAt is when t, unused from now on, is switched off by the
// dormancy rule (the zero time when dormancy is off or t is switched
// off): lastActive plus DormantAfter, but never sooner than the warning
// period after its warning (one not given yet is given at the next scan,
// taken as now).
func (p Policy) DormantAt(t store.Token, lastActive, now time.Time) time.Time {
	if p.DormantAfter <= 0 || !t.Enabled {
		return time.Time{}
	}
	at := lastActive.Add(p.DormantAfter)
	warnedAt := t.DormancyWarnedAt
	if !Warned(t, lastActive) {
		warnedAt = later(now, at.Add(-p.Warning()))
	}
	if earliest := warnedAt.Add(p.Warning()); earliest.After(at) {
		at = earliest
	}
	return at
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
