package events

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/streak"
)

// ScanStore is what the expiry scan reads and where it claims warnings.
type ScanStore interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	ListTokens(ctx context.Context, owner string) ([]store.Token, error)
	// CountFailure is the store's atomic counter with a window: the scan
	// uses it as a set-if-absent record shared by every node (the first
	// caller gets 1).
	CountFailure(ctx context.Context, key string, window time.Duration) (int64, error)
}

// Expiry scan defaults.
const (
	DefaultScanInterval = time.Hour
	// ExpiredLookback is how long after its expiry a token's "expired"
	// event may still be sent, so that a gateway started after a token
	// expired tells about it, but one started on an old store does not
	// send an event for every token that expired years ago.
	ExpiredLookback = 7 * 24 * time.Hour
)

// DefaultWarnings are the expiry warnings when none are configured.
var DefaultWarnings = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}

// ExpiryScanner finds the tokens (personal and legacy, switched on) that
// are about to expire or have expired, and emits TokenExpiring and
// TokenExpired for them, each once for all the nodes sharing the store.
//
// Every node scans; before it emits, a node claims the event in the store
// with an atomic counter (store.FailureCounters.CountFailure, keyed by
// the token's hash, the warning and the expiry): only the node that
// counts 1 emits. The claim lasts until the token's expiry plus
// ExpiredLookback, so a warning is sent once per token, warning and
// expiry (a token whose expiry changes gets its warnings again). A token
// gets only the nearest warning it is within: a token made to live 3 days
// with warnings 30d 7d 1d gets the 7d warning, then the 1d one. The
// claim is made before the send: a node that stops between the two loses
// that event (at most once per claim; delivery itself is retried).
type ExpiryScanner struct {
	store   ScanStore
	emitter Emitter
	now     func() time.Time

	mu       sync.Mutex
	warnings []time.Duration // longest first
	interval time.Duration
	logger   *zap.Logger
	wake     chan struct{}
	// failures follows Run's failed scans.
	failures streak.Streak
}

// NewExpiryScanner returns a scanner with the default warnings; now nil
// means time.Now (tests move time by passing their own).
func NewExpiryScanner(s ScanStore, e Emitter, now func() time.Time) *ExpiryScanner {
	if now == nil {
		now = time.Now
	}
	sc := &ExpiryScanner{store: s, emitter: e, now: now, logger: zap.NewNop(), wake: make(chan struct{}, 1)}
	sc.Configure(nil, 0, nil)
	return sc
}

// Configure sets the warnings (nil: DefaultWarnings; an empty, non-nil
// slice: no warnings, expired events only), the interval between scans
// (0: DefaultScanInterval) and the logger. A running scanner uses them
// from its next scan.
func (sc *ExpiryScanner) Configure(warnings []time.Duration, interval time.Duration, logger *zap.Logger) {
	if warnings == nil {
		warnings = DefaultWarnings
	}
	w := slices.Clone(warnings)
	slices.Sort(w)
	slices.Reverse(w)
	w = slices.Compact(w)
	if interval <= 0 {
		interval = DefaultScanInterval
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	sc.mu.Lock()
	changed := sc.interval != interval
	sc.warnings, sc.interval, sc.logger = w, interval, logger
	sc.mu.Unlock()
	if changed {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// Scan looks at every token once and returns how many events it emitted.
// It goes on past a user whose tokens cannot be read and returns the first
// error.
func (sc *ExpiryScanner) Scan(ctx context.Context) (int, error) {
	if !delivering(sc.emitter) {
		return 0, nil // claimed but never sent would be lost: scan only while events go out
	}
	sc.mu.Lock()
	warnings := sc.warnings
	sc.mu.Unlock()
	users, err := sc.store.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	now := sc.now()
	sent := 0
	var first error
	for _, u := range users {
		ts, err := sc.store.ListTokens(ctx, u.Name)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		for _, t := range ts {
			ok, err := sc.check(ctx, t, warnings, now)
			if err != nil && first == nil {
				first = err
			}
			if ok {
				sent++
			}
		}
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
	}
	return sent, first
}

// check emits the event t is due for now, if this node claims it.
func (sc *ExpiryScanner) check(ctx context.Context, t store.Token, warnings []time.Duration, now time.Time) (bool, error) {
	if t.ExpiresAt.IsZero() || !t.Enabled {
		return false, nil
	}
	left := t.ExpiresAt.Sub(now)
	typ, warning := TokenExpired, time.Duration(0)
	switch {
	case left <= 0:
		if -left > ExpiredLookback {
			return false, nil
		}
	default:
		typ = TokenExpiring
		for _, w := range warnings { // longest first: keep the nearest
			if left <= w {
				warning = w
			}
		}
		if warning == 0 {
			return false, nil
		}
	}
	key := fmt.Sprintf("events/expiry/%s/%d/%d", t.Hash, int64(warning/time.Second), t.ExpiresAt.Unix())
	n, err := sc.store.CountFailure(ctx, key, max(left, 0)+ExpiredLookback+time.Hour)
	if err != nil || n != 1 {
		return false, err
	}
	ev := ForToken(ctx, typ, t, now)
	ev.Actor = "system"
	ev.Data = map[string]any{"expires_at": t.ExpiresAt.UTC()}
	if warning > 0 {
		ev.Data["warning_seconds"] = int64(warning / time.Second)
	}
	Emit(sc.emitter, ev)
	return true, nil
}

// Run scans at once and then every interval until ctx is done. A failed
// scan is counted (Failures) and logged (Warn) once per streak of
// failures, and the end of the streak once (Info); the next interval
// tries again.
func (sc *ExpiryScanner) Run(ctx context.Context) {
	sc.failures.Repeat(ctx, sc.wake, sc.settings, "expiry scan", func(ctx context.Context) error {
		_, err := sc.Scan(ctx)
		return err
	})
}

// settings is the interval and logger the next scan uses.
func (sc *ExpiryScanner) settings() (time.Duration, *zap.Logger) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.interval, sc.logger
}

// Failures is how many scans by Run failed.
func (sc *ExpiryScanner) Failures() uint64 { return sc.failures.Failures() }
