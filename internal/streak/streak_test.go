package streak

import (
	"errors"
	"testing"

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
	if s.Failures() != 4 || s.Failing() {
		t.Errorf("Failures = %d, Failing = %v; want 4, false", s.Failures(), s.Failing())
	}
	var none *Streak
	none.Record(boom, logger, "x")
	if none.Failures() != 0 || none.Failing() {
		t.Error("a nil Streak counted")
	}
}
