package policy

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/streak"
)

// Store is what the dormancy scan and the listing read and write.
type Store interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	ListTokens(ctx context.Context, owner string) ([]store.Token, error)
	UpdateToken(ctx context.Context, owner, id string, fn func(*store.Token) error) (store.Token, error)
}

// Pending is this node's last uses not yet written (lastuse.Recorder's
// Pending): owner's tokens by id.
type Pending interface {
	Pending(owner string) map[string]store.LastUse
}

// DefaultScanInterval is how often each node applies the dormancy rule
// when no interval is set.
const DefaultScanInterval = time.Hour

// Scanner applies the dormancy rule: a token (personal or legacy, switched
// on, not expired) unused for DormantAfter is warned (token.dormant_soon
// and an audit line), and switched off (an UpdateToken with Enabled
// false, which every node's cache drops at once; token.dormant and an
// audit line) once it is past DormantAfter and the warning was given at
// least the warning period before. A token used, switched on again or
// rotated after its warning starts again: the warning no longer counts.
//
// Every node scans. The warning's time is kept in the token
// (DormancyWarnedAt), written with UpdateToken whose fn decides on the
// token as it is in the store at that moment: when two nodes scan at once
// only the one whose write made the change emits, so a warning is sent
// once, without the webhook being configured (the audit line) and however
// many nodes run.
//
// Last uses reach the store in batches (last_access_flush): a use that a
// node has not written yet is seen by that node only (Pending), so a
// switch-off waits Policy.UseDelay past DormantAt: by then a use made
// before DormantAt on any node has been written. With Redis,
// the fn sees the token's last use (read in the same transaction, whose
// WATCH covers the owner's last uses: a use written between that read and
// the write runs fn again on it).
type Scanner struct {
	store   Store
	pending Pending
	emitter events.Emitter
	now     func() time.Time

	mu       sync.Mutex
	policy   Policy
	interval time.Duration
	logger   *zap.Logger
	audit    *audit.Log
	wake     chan struct{}
	// failures follows Run's failed scans.
	failures streak.Streak
}

// NewScanner returns a scanner with no policy (it does nothing until
// Configure gives it DormantAfter). pending and e may be nil; now nil
// means time.Now (tests move time by passing their own).
func NewScanner(s Store, pending Pending, e events.Emitter, now func() time.Time) *Scanner {
	if now == nil {
		now = time.Now
	}
	sc := &Scanner{store: s, pending: pending, emitter: e, now: now, logger: zap.NewNop(), wake: make(chan struct{}, 1)}
	sc.Configure(Policy{}, 0, nil, nil)
	return sc
}

// Configure sets the policy, the interval between scans (0:
// DefaultScanInterval), the logger and the audit log (nil: none). A
// running scanner uses them from its next scan; a changed interval or
// policy starts a scan at once.
func (sc *Scanner) Configure(p Policy, interval time.Duration, logger *zap.Logger, log *audit.Log) {
	if interval <= 0 {
		interval = DefaultScanInterval
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	sc.mu.Lock()
	changed := sc.interval != interval || sc.policy != p
	sc.policy, sc.interval, sc.logger, sc.audit = p, interval, logger, log
	sc.mu.Unlock()
	if changed {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// Result counts what one scan did.
type Result struct {
	Warned, SwitchedOff int
}

// Scan looks at every token once. It skips a user deleted meanwhile, and
// goes on past a user whose tokens cannot be read, or a token that cannot be written, and returns the
// first error.
func (sc *Scanner) Scan(ctx context.Context) (Result, error) {
	sc.mu.Lock()
	p, logger, log := sc.policy, sc.logger, sc.audit
	sc.mu.Unlock()
	var res Result
	if p.DormantAfter <= 0 {
		return res, nil
	}
	users, err := sc.store.ListUsers(ctx)
	if err != nil {
		return res, err
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, u := range users {
		ts, err := sc.store.ListTokens(ctx, u.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // deleted meanwhile: their tokens went with them
		case err != nil:
			keep(err)
			continue
		}
		pending := sc.pendingOf(u.Name) // once per owner: the scan of many tokens stays linear
		for _, t := range ts {
			keep(sc.check(ctx, p, t, pending[t.ID].At, &res, logger, log))
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, first
}

// errNothing aborts an UpdateToken that has nothing to write.
var errNothing = errors.New("nothing to change")

// step is what the rule asks of a token now.
type step int

const (
	none step = iota
	warn
	switchOff
)

// due says what the rule asks of t at now (pending: this node's unwritten
// last use, zero if none).
func due(p Policy, t store.Token, pending, now time.Time) step {
	if !t.Enabled || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
		return none // refused anyway; token.expired tells
	}
	last := LastActive(t, pending)
	if !Warned(t, last) {
		if !now.Before(last.Add(p.DormantAfter - p.Warning())) {
			return warn
		}
		return none
	}
	if !now.Before(p.DormantAt(t, last, now).Add(p.UseDelay)) {
		return switchOff
	}
	return none
}

// check applies the rule to t (as listed, pending: this node's unwritten
// last use of it): when it looks due, the step is decided again inside
// UpdateToken on the token as stored (and this node's unwritten uses as
// they are then), and the event and audit line go out only when this
// node's write made the change.
func (sc *Scanner) check(ctx context.Context, p Policy, t store.Token, pending time.Time, res *Result, logger *zap.Logger, log *audit.Log) error {
	now := sc.now().UTC()
	if due(p, t, pending, now) == none {
		return nil
	}
	var done step
	var last time.Time
	updated, err := sc.store.UpdateToken(ctx, t.Owner, t.ID, func(cur *store.Token) error {
		done = none // fn may run again: only its last run counts
		pending := sc.pendingOf(cur.Owner)[cur.ID].At
		last = LastActive(*cur, pending)
		switch due(p, *cur, pending, now) {
		case warn:
			cur.DormancyWarnedAt = now
			done = warn
		case switchOff:
			cur.Enabled = false
			done = switchOff
		default:
			return errNothing
		}
		return nil
	})
	switch {
	case errors.Is(err, errNothing), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	ev := events.ForToken(ctx, events.TokenDormantSoon, updated, now)
	ev.Actor = "system"
	ev.Data = map[string]any{"last_active_at": last}
	response := "token " + updated.ID + " unused since " + last.Format(time.RFC3339)
	if done == warn {
		at := p.DormantAt(updated, last, now)
		ev.Data["dormant_at"] = at
		ev.Data["warning_seconds"] = int64(p.Warning() / time.Second)
		response += "; it will be switched off at " + at.Format(time.RFC3339) + " unless used"
		res.Warned++
	} else {
		ev.Type = events.TokenDormant
		response += "; switched off for disuse"
		res.SwitchedOff++
	}
	events.Emit(sc.emitter, ev)
	log.Write(audit.Record{
		Name: updated.Owner, Level: audit.LevelInfo, Response: response, Event: ev.Type, HashedToken: ev.HashedToken,
	})
	logger.Info("token dormancy", zap.String("event", ev.Type), zap.String("owner", updated.Owner),
		zap.String("token_id", updated.ID), zap.Time("last_active_at", last))
	return nil
}

// pendingOf is this node's unwritten last uses of owner's tokens, by id
// (nil: none; a missing id reads as the zero use).
func (sc *Scanner) pendingOf(owner string) map[string]store.LastUse {
	if sc.pending == nil {
		return nil
	}
	return sc.pending.Pending(owner)
}

// Run scans at once and then every interval until ctx is done. A failed
// scan is counted (Failures) and logged (Warn) once per streak of
// failures, and the end of the streak once (Info); the next interval
// tries again.
func (sc *Scanner) Run(ctx context.Context) {
	sc.failures.Repeat(ctx, sc.wake, sc.settings, "dormancy scan", func(ctx context.Context) error {
		_, err := sc.Scan(ctx)
		return err
	})
}

// settings is the interval and logger the next scan uses.
func (sc *Scanner) settings() (time.Duration, *zap.Logger) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.interval, sc.logger
}

// Failures is how many scans by Run failed.
func (sc *Scanner) Failures() uint64 { return sc.failures.Failures() }
