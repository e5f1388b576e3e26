package streak

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestOncePerStreak(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	var s Streak
	boom := errors.New("boom")
	for _, err := range []error{nil, boom, boom, boom, nil, nil, boom, nil} {
		s.Record(err, logger, "flushing things")
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message)
	}
	want := []string{
		"warn flushing things failed; trying again (not logged again until it works)",
		"info flushing things works again",
		"warn flushing things failed; trying again (not logged again until it works)",
		"info flushing things works again",
	}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged %q, want %q", got, want)
		}
	}
	if n := logs.All()[1].ContextMap()["failures"]; n != uint64(3) {
		t.Errorf("the end of the first streak says %v failures, want 3", n)
	}
	if s.Failures() != 4 {
		t.Errorf("Failures = %d, want 4", s.Failures())
	}
	var none *Streak
	none.Record(boom, logger, "x")
	if none.Failures() != 0 {
		t.Error("a nil Streak counted")
	}
}

// TestRepeat: the task runs at once, again on a wake (the interval is
// long), each outcome recorded, and Repeat returns when ctx ends.
func TestRepeat(t *testing.T) {
	var s Streak
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{})
	runs := make(chan int)
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Repeat(ctx, wake, func() (time.Duration, *zap.Logger) { return time.Hour, nil }, "task", func(ctx context.Context) error {
			n++
			runs <- n
			if n == 2 {
				<-ctx.Done() // a run the shutdown cuts short
			}
			return errors.New("down")
		})
	}()
	if got := <-runs; got != 1 {
		t.Fatalf("first run %d", got)
	}
	wake <- struct{}{} // received only once the first run was recorded and Repeat waits
	if got := <-runs; got != 2 {
		t.Fatalf("second run %d", got)
	}
	cancel()
	<-done
	if s.Failures() != 1 {
		t.Errorf("Failures = %d: the first run is recorded, the one cut short by ctx is not", s.Failures())
	}
}
