package policy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

// flakyStore fails ListUsers while down and counts the scans.
type flakyStore struct {
	policy.Store
	down  atomic.Bool
	scans atomic.Int64
}

func (f *flakyStore) ListUsers(ctx context.Context) ([]store.User, error) {
	f.scans.Add(1)
	if f.down.Load() {
		return nil, errors.New("store unreachable")
	}
	return f.Store.ListUsers(ctx)
}

// TestRunLogsOncePerStreak: failed scans are logged once per streak, and
// the end of the streak once.
func TestRunLogsOncePerStreak(t *testing.T) {
	a, _ := twonodes.Open(t, "bolt")
	f := &flakyStore{Store: a}
	f.down.Store(true)
	core, logs := observer.New(zap.InfoLevel)
	sc := policy.NewScanner(f, nil, nil, nil)
	sc.Configure(policy.Policy{DormantAfter: time.Hour}, 5*time.Millisecond, zap.New(core), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitScans := func(n int64) {
		t.Helper()
		want := f.scans.Load() + n
		for deadline := time.Now().Add(30 * time.Second); f.scans.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the scanner did not scan %d more times", n)
			}
		}
	}
	waitScans(5)
	if n := logs.FilterMessageSnippet("dormancy scan failed").Len(); n != 1 {
		t.Fatalf("%d failure lines over a streak of failed scans, want 1", n)
	}
	f.down.Store(false)
	waitScans(5)
	if n := logs.FilterMessageSnippet("works again").Len(); n != 1 {
		t.Fatalf("%d recovery lines, want 1", n)
	}
	f.down.Store(true)
	waitScans(3)
	if n := logs.FilterMessageSnippet("dormancy scan failed").Len(); n != 2 {
		t.Fatalf("%d failure lines after a second streak, want 2", n)
	}
	if n := sc.Failures(); n < 8 {
		t.Errorf("Failures = %d after two streaks of at least 5 and 3 failed scans", n)
	}
}
