package bruteforce

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

const window = 15 * time.Minute

// newLimiter returns a Limiter on a fresh store whose sleeps are recorded
// instead of slept.
func newLimiter(t *testing.T) (*Limiter, *boltstore.Store, *[]time.Duration) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := New(st, window)
	slept := new([]time.Duration)
	l.sleep = func(_ context.Context, d time.Duration) { *slept = append(*slept, d) }
	return l, st, slept
}

func fail(t *testing.T, l *Limiter, n int, keys ...Key) {
	t.Helper()
	for range n {
		if err := l.Fail(context.Background(), keys...); err != nil {
			t.Fatalf("Fail: %v", err)
		}
	}
}

func count(t *testing.T, st *boltstore.Store, name string) int64 {
	t.Helper()
	n, err := st.FailureCount(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name     string
		failures int
		limit    int64
		limited  bool
	}{
		{"no failures", 0, 3, false},
		{"under the limit", 2, 3, false},
		{"at the limit", 3, 3, true},
		{"over the limit", 5, 3, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, _, _ := newLimiter(t)
			k := Key{Name: "acct:alice", Limit: c.limit}
			fail(t, l, c.failures, k)
			_, err := l.Check(context.Background(), Key{Name: "addr:192.0.2.1", Limit: 100}, k)
			if !c.limited {
				if err != nil {
					t.Errorf("Check: %v", err)
				}
				return
			}
			var rl *apierr.RateLimited
			if !errors.As(err, &rl) || rl.RetryAfter != window {
				t.Fatalf("Check = %v, want *apierr.RateLimited with RetryAfter %v", err, window)
			}
			if p := apierr.For(err); p.Status != http.StatusTooManyRequests {
				t.Errorf("status %d, want 429", p.Status)
			}
		})
	}
}

func TestFailCountsEveryKey(t *testing.T) {
	l, st, _ := newLimiter(t)
	keys := []Key{{Name: "acct:alice", Limit: 10}, {Name: "addr:192.0.2.1", Limit: 50}}
	fail(t, l, 2, keys...)
	fail(t, l, 1, keys[1])
	for _, c := range []struct {
		name string
		want int64
	}{{"acct:alice", 2}, {"addr:192.0.2.1", 3}} {
		t.Run(c.name, func(t *testing.T) {
			if n := count(t, st, c.name); n != c.want {
				t.Errorf("count %d, want %d", n, c.want)
			}
		})
	}
}

func TestClearResets(t *testing.T) {
	l, st, _ := newLimiter(t)
	k := Key{Name: "client:tgc_1", Limit: 2}
	other := Key{Name: "addr:192.0.2.1", Limit: 2}
	fail(t, l, 2, k, other)
	if err := l.Clear(context.Background(), k.Name); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, k.Name); n != 0 {
		t.Errorf("count after Clear %d", n)
	}
	if _, err := l.Check(context.Background(), k); err != nil {
		t.Errorf("Check after Clear: %v", err)
	}
	if n := count(t, st, other.Name); n != 2 {
		t.Errorf("Clear touched another key: %d", n)
	}
}

func TestEmptyNamesSkipped(t *testing.T) {
	l, st, _ := newLimiter(t)
	empty := Key{Name: "", Limit: 0} // a limit of 0 would refuse at once
	t.Run("Check", func(t *testing.T) {
		if _, err := l.Check(context.Background(), empty); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
	t.Run("Fail", func(t *testing.T) {
		fail(t, l, 3, empty)
		if n := count(t, st, ""); n != 0 {
			t.Errorf("the empty name was counted: %d", n)
		}
	})
	t.Run("Clear", func(t *testing.T) {
		if err := l.Clear(context.Background(), ""); err != nil {
			t.Errorf("Clear: %v", err)
		}
	})
}

func TestSlowDownGrowsAndIsCapped(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name string
		// run makes the failures; the most counted key decides the wait.
		run  func(t *testing.T, l *Limiter)
		want []time.Duration
	}{
		{"one key", func(t *testing.T, l *Limiter) { fail(t, l, 14, Key{Name: "acct:a", Limit: 100}) },
			[]time.Duration{ms(250), ms(500), ms(750), ms(1000), ms(1250), ms(1500), ms(1750), ms(2000), ms(2000), ms(2000), ms(2000)}},
		{"the most counted key", func(t *testing.T, l *Limiter) {
			fail(t, l, 5, Key{Name: "addr:192.0.2.1", Limit: 100})
			fail(t, l, 1, Key{Name: "acct:a", Limit: 100}, Key{Name: "addr:192.0.2.1", Limit: 100})
		}, []time.Duration{ms(250), ms(500), ms(750)}},
		{"few failures", func(t *testing.T, l *Limiter) { fail(t, l, 3, Key{Name: "acct:a", Limit: 100}) }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, _, slept := newLimiter(t)
			c.run(t, l)
			if !slices.Equal(*slept, c.want) {
				t.Errorf("slept %v, want %v", *slept, c.want)
			}
		})
	}
}
