// Package breaker is a circuit breaker for a backend that can become
// unreachable (the store): once the backend is known to be down, callers
// are refused at once, with a hint of when to come back, instead of each
// waiting out a timeout; a background probe closes it again.
//
// It knows nothing of what it guards. The caller tells it the outcome of
// each call (Success, or Failure for a failure that means "unreachable";
// answers such as "not found" are successes), asks Allow before a call,
// and runs Run with a cheap probe (a PING). It opens after Failures
// consecutive failures or one failed probe, and only a successful probe
// closes it: while it is open nothing reaches the backend but the probe.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultFailures      = 3
	DefaultProbeInterval = time.Second
)

// ErrOpen is matched (errors.Is) by the error of a call refused because
// the breaker is open.
var ErrOpen = errors.New("the backend is known to be unreachable")

// OpenError is what Allow returns while the breaker is open.
type OpenError struct {
	// RetryAfter is when the client may try again (Options.RetryAfter).
	RetryAfter time.Duration
	// Cause is the failure that opened the breaker.
	Cause error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("%v (since: %v)", ErrOpen, e.Cause)
}

// Is makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Clock is the time the breaker lives by; tests inject one they can move.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Breaker. The zero value is valid.
type Options struct {
	// Failures is how many consecutive failures open the breaker.
	// Default 3.
	Failures int
	// ProbeInterval is the pause between two probes, and the longest a
	// probe may take before it counts as failed. Default 1s.
	ProbeInterval time.Duration
	// RetryAfter is the hint given with a refusal. Default: ProbeInterval
	// rounded up to whole seconds, at least 1s.
	RetryAfter time.Duration
	// Logger gets one line when the breaker opens and one when it closes
	// (nil: none).
	Logger *zap.Logger
	// Name is what the log lines call the backend. Default "backend".
	Name string
	// Clock is the clock (nil: the system's).
	Clock Clock
}

// withDefaults fills unset fields.
func (o Options) withDefaults() Options {
	if o.Failures <= 0 {
		o.Failures = DefaultFailures
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter(o.ProbeInterval)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Name == "" {
		o.Name = "backend"
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// DefaultRetryAfter is the hint for a probe interval: the interval rounded
// up to whole seconds (Retry-After has no fractions), at least 1s.
func DefaultRetryAfter(probeInterval time.Duration) time.Duration {
	return max(time.Second, (probeInterval+time.Second-1)/time.Second*time.Second)
}

// Breaker is safe for concurrent use. Allow and Success cost an atomic
// load each while the breaker is closed and healthy.
type Breaker struct {
	open     atomic.Bool
	failures atomic.Int64
	opens    atomic.Uint64

	mu       sync.Mutex
	opts     Options
	refusal  *OpenError // the error Allow returns while open
	openedAt time.Time
}

// New returns a closed breaker.
func New(o Options) *Breaker {
	return &Breaker{opts: o.withDefaults()}
}

// Configure replaces the options (a config reload); the state is kept.
func (b *Breaker) Configure(o Options) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts = o.withDefaults()
	if b.refusal != nil {
		b.refusal = &OpenError{RetryAfter: b.opts.RetryAfter, Cause: b.refusal.Cause}
	}
}

// options returns the current options.
func (b *Breaker) options() Options {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opts
}

// RetryAfter returns the hint given with refusals.
func (b *Breaker) RetryAfter() time.Duration { return b.options().RetryAfter }

// Open reports whether the breaker is open.
func (b *Breaker) Open() bool { return b.open.Load() }

// Opens returns how many times the breaker opened.
func (b *Breaker) Opens() uint64 { return b.opens.Load() }

// Allow returns nil when a call may go ahead, or an *OpenError.
func (b *Breaker) Allow() error {
	if !b.open.Load() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refusal == nil { // closed meanwhile
		return nil
	}
	return b.refusal
}

// Success notes a call that reached the backend: the count of consecutive
// failures starts again. (It does not close an open breaker: only a probe
// does, so that one lucky call in flight when the backend froze does not
// send everyone back to wait.)
func (b *Breaker) Success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
}

// Failure notes a call that failed because the backend could not be
// reached; the Failures-th in a row opens the breaker.
func (b *Breaker) Failure(cause error) {
	n := b.failures.Add(1)
	if n >= int64(b.options().Failures) {
		b.trip(cause, fmt.Sprintf("%d consecutive failures", n))
	}
}

// Probed notes the result of a probe: a failure opens the breaker, a
// success closes it.
func (b *Breaker) Probed(err error) {
	if err != nil {
		b.trip(err, "a failed probe")
		return
	}
	b.failures.Store(0)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refusal == nil {
		return
	}
	openFor := b.opts.Clock.Now().Sub(b.openedAt)
	b.refusal = nil
	b.open.Store(false)
	b.opts.Logger.Info(b.opts.Name+" circuit breaker closed: a probe succeeded, calls go through again",
		zap.Duration("open_for", openFor))
}

// trip opens the breaker, logging once.
func (b *Breaker) trip(cause error, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refusal != nil {
		return
	}
	b.refusal = &OpenError{RetryAfter: b.opts.RetryAfter, Cause: cause}
	b.openedAt = b.opts.Clock.Now()
	b.open.Store(true)
	b.opens.Add(1)
	b.opts.Logger.Error(b.opts.Name+" circuit breaker opened: answering at once that it is unavailable until a probe succeeds",
		zap.String("after", why), zap.Duration("probe_interval", b.opts.ProbeInterval),
		zap.Duration("retry_after", b.opts.RetryAfter), zap.Error(cause))
}

// errProbeTimeout is the failure of a probe that did not answer within the
// probe interval.
var errProbeTimeout = errors.New("no answer to the probe within the probe interval")

// Run probes every ProbeInterval until ctx ends, passing each result to
// Probed. A probe gets a context that ends after ProbeInterval; one that
// has not returned by then (a client that ignores its context) counts as
// failed, and the next probe waits until it has returned, so that probes
// never pile up on a frozen backend.
func (b *Breaker) Run(ctx context.Context, probe func(context.Context) error) {
	for {
		o := b.options()
		select {
		case <-ctx.Done():
			return
		case <-o.Clock.After(o.ProbeInterval):
		}
		pctx, cancel := context.WithTimeout(ctx, o.ProbeInterval)
		done := make(chan error, 1)
		go func() { done <- probe(pctx) }()
		select {
		case err := <-done:
			cancel()
			if ctx.Err() == nil {
				b.Probed(err)
			}
			continue
		case <-o.Clock.After(o.ProbeInterval):
			b.Probed(errProbeTimeout)
		case <-ctx.Done():
		}
		cancel()
		select { // the stuck probe must end before the next one starts
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}
