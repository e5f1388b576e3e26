package breaker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock moves only when the test says so; After channels fire when
// the clock passes their time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	added   chan struct{} // signalled when After is called
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), added: make(chan struct{}, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	c.added <- struct{}{}
	return ch
}

// Advance moves the clock and fires the timers it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// waitAfter waits until Run has asked for a timer.
func (c *fakeClock) waitAfter(t *testing.T) {
	t.Helper()
	select {
	case <-c.added:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not wait on the clock")
	}
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func TestOpensAfterConsecutiveFailures(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	clock := newFakeClock()
	b := New(Options{Failures: 3, ProbeInterval: 1500 * time.Millisecond, Logger: zap.New(core), Name: "store", Clock: clock})
	b.Failure(errDown)
	b.Failure(errDown)
	b.Success() // the count starts again
	b.Failure(errDown)
	b.Failure(errDown)
	if err := b.Allow(); err != nil || b.Open() {
		t.Fatalf("open after 2 consecutive failures: %v", err)
	}
	b.Failure(errDown)
	err := b.Allow()
	var open *OpenError
	if !errors.As(err, &open) || !errors.Is(err, ErrOpen) || !b.Open() {
		t.Fatalf("Allow after 3 consecutive failures: %v", err)
	}
	if open.RetryAfter != 2*time.Second || !errors.Is(open.Cause, errDown) {
		t.Errorf("refusal %+v: want RetryAfter 2s (1.5s rounded up) and the cause", open)
	}
	b.Failure(errDown) // more failures log nothing more
	if n := logs.FilterMessageSnippet("circuit breaker opened").Len(); n != 1 {
		t.Errorf("%d lines say opened, want 1", n)
	}
	line := logs.FilterMessageSnippet("circuit breaker opened").All()[0]
	if line.ContextMap()["error"] != errDown.Error() || line.Level != zapcore.ErrorLevel {
		t.Errorf("the open line %v lacks the cause", line.ContextMap())
	}

	clock.Advance(42 * time.Second)
	b.Success() // a call that was in flight: not enough to close
	if !b.Open() {
		t.Fatal("a call's success closed the breaker; only a probe does")
	}
	b.Probed(nil)
	if err := b.Allow(); err != nil || b.Open() {
		t.Fatalf("Allow after a good probe: %v", err)
	}
	closed := logs.FilterMessageSnippet("circuit breaker closed").All()
	if len(closed) != 1 || closed[0].ContextMap()["open_for"] != 42*time.Second {
		t.Errorf("close lines %v, want one with open_for 42s", closed)
	}
	b.Probed(nil) // closing a closed breaker logs nothing
	if n := logs.FilterMessageSnippet("circuit breaker closed").Len(); n != 1 {
		t.Errorf("%d lines say closed, want 1", n)
	}
	// The count starts from zero after closing.
	b.Failure(errDown)
	b.Failure(errDown)
	if b.Open() {
		t.Error("open after 2 failures following a close")
	}
}

func TestFailedProbeOpensAtOnce(t *testing.T) {
	b := New(Options{})
	b.Probed(errDown)
	var open *OpenError
	if err := b.Allow(); !errors.As(err, &open) || open.RetryAfter != time.Second {
		t.Fatalf("Allow after a failed probe: %v (want RetryAfter 1s by default)", err)
	}
}

func TestDefaultRetryAfter(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		100 * time.Millisecond:  time.Second,
		time.Second:             time.Second,
		1001 * time.Millisecond: 2 * time.Second,
		5 * time.Second:         5 * time.Second,
	} {
		if got := DefaultRetryAfter(in); got != want {
			t.Errorf("DefaultRetryAfter(%v) = %v, want %v", in, got, want)
		}
	}
	b := New(Options{ProbeInterval: time.Second, RetryAfter: 7 * time.Second})
	if b.RetryAfter() != 7*time.Second {
		t.Errorf("RetryAfter %v, want the configured 7s", b.RetryAfter())
	}
	b.Probed(errDown)
	b.Configure(Options{RetryAfter: 3 * time.Second})
	var open *OpenError
	if err := b.Allow(); !errors.As(err, &open) || open.RetryAfter != 3*time.Second {
		t.Errorf("after Configure, an open breaker refuses with %v, want RetryAfter 3s", err)
	}
}

// Run probes every interval: a failed probe opens, a good one closes; a
// probe that hangs counts as failed after the interval, and the next
// probe waits until it has returned.
func TestRunProbes(t *testing.T) {
	clock := newFakeClock()
	b := New(Options{ProbeInterval: time.Second, Clock: clock})
	results := make(chan error)
	calls := make(chan context.Context)
	probe := func(ctx context.Context) error {
		calls <- ctx
		return <-results
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { b.Run(ctx, probe); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	step := func() { // let one interval pass and take the probe's call
		t.Helper()
		clock.waitAfter(t)
		clock.Advance(time.Second)
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("no probe after the interval")
		}
	}
	waitFor := func(open bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for b.Open() != open {
			if time.Now().After(deadline) {
				t.Fatalf("breaker open=%v, want %v", b.Open(), open)
			}
			time.Sleep(time.Millisecond)
		}
	}

	step()
	clock.waitAfter(t) // the probe's own deadline timer
	results <- nil
	waitFor(false)

	step()
	clock.waitAfter(t)
	results <- errDown
	waitFor(true)

	step()
	clock.waitAfter(t)
	results <- nil
	waitFor(false)

	// A probe that hangs past the interval: failed, and no second probe
	// runs until it returns.
	step()
	clock.waitAfter(t)
	clock.Advance(time.Second)
	waitFor(true)
	select {
	case <-calls:
		t.Fatal("a second probe started while the first hangs")
	case <-time.After(50 * time.Millisecond):
	}
	results <- errDown // the hung probe returns at last
	step()
	clock.waitAfter(t)
	results <- nil
	waitFor(false)
}

// Opens counts openings, not the failures or refusals while open.
func TestOpensCountsOpenings(t *testing.T) {
	b := New(Options{Failures: 2})
	down := errors.New("down")
	b.Failure(down)
	if b.Opens() != 0 {
		t.Fatalf("opens after one failure = %d", b.Opens())
	}
	b.Failure(down)
	b.Failure(down)
	b.Probed(down)
	if b.Opens() != 1 || !b.Open() {
		t.Fatalf("opens = %d, open %v; want 1, true", b.Opens(), b.Open())
	}
	b.Probed(nil)
	b.Probed(down)
	if b.Opens() != 2 {
		t.Fatalf("opens after closing and opening again = %d, want 2", b.Opens())
	}
}
