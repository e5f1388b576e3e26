package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/stripetest"
)

const window = 15 * time.Minute

var errWrong = errors.New("wrong secret")

// env is a Limiter on a fresh store whose sleeps are recorded instead of
// slept.
type env struct {
	l  *Limiter
	st *boltstore.Store

	mu    sync.Mutex
	slept []time.Duration
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{l: New(st, Limits{Window: window}), st: st}
	e.l.sleep = func(_ context.Context, d time.Duration) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.slept = append(e.slept, d)
	}
	return e
}

// guess runs one Guard whose check answers ok, and reports whether check
// ran.
func (e *env) guess(account, address Key, ok bool) (ran bool, err error) {
	err = e.l.Guard(context.Background(), account, address, func() (bool, error) {
		ran = true
		return ok, nil
	}, errWrong)
	return ran, err
}

// fail makes n wrong guesses, which must all be checked and refused.
func (e *env) fail(t *testing.T, n int, account, address Key) {
	t.Helper()
	for range n {
		if ran, err := e.guess(account, address, false); !ran || !errors.Is(err, errWrong) {
			t.Fatalf("wrong guess: checked %v, err %v", ran, err)
		}
	}
}

func (e *env) count(t *testing.T, name string) int64 {
	t.Helper()
	n, err := e.st.FailureCount(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) assertCounts(t *testing.T, want map[string]int64) {
	t.Helper()
	for name, w := range want {
		if n := e.count(t, name); n != w {
			t.Errorf("%s counts %d, want %d", name, n, w)
		}
	}
}

func wantRateLimited(t *testing.T, err error) {
	t.Helper()
	var rl *apierr.RateLimited
	if !errors.As(err, &rl) || rl.RetryAfter != window {
		t.Fatalf("err = %v, want *apierr.RateLimited with RetryAfter %v", err, window)
	}
	if p := apierr.For(err); p.Status != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", p.Status)
	}
}

var (
	alice = Key{Name: "acct:alice", Limit: 3}
	addr  = Key{Name: "addr:192.0.2.1", Limit: 100}
)

// A key at its limit is refused before the secret is checked, and the
// refused guess counts nothing.
func TestGuardRefusesAtTheLimit(t *testing.T) {
	cases := []struct {
		name     string
		failures int
		limited  bool
	}{
		{"no failures", 0, false},
		{"under the limit", 2, false},
		{"at the limit", 3, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.fail(t, c.failures, alice, addr)
			ran, err := e.guess(alice, addr, true)
			if !c.limited {
				if err != nil || !ran {
					t.Fatalf("checked %v, err %v", ran, err)
				}
				return
			}
			wantRateLimited(t, err)
			if ran {
				t.Error("the secret was checked on a locked account")
			}
			e.assertCounts(t, map[string]int64{alice.Name: 3, addr.Name: 3})
		})
	}
}

// A locked account does not count against the address of whoever tries
// it (a user whose account an attacker locked), nor a locked address
// against the accounts tried from it.
func TestRefusalCountsNothing(t *testing.T) {
	e := newEnv(t)
	attacker := Key{Name: "addr:203.0.113.66", Limit: 5}
	e.fail(t, 3, alice, attacker)
	for range 3 {
		_, err := e.guess(alice, addr, true)
		wantRateLimited(t, err)
	}
	e.fail(t, 2, Key{Name: "acct:bob", Limit: 10}, attacker)
	_, err := e.guess(Key{Name: "acct:carol", Limit: 10}, attacker, false)
	wantRateLimited(t, err)
	e.assertCounts(t, map[string]int64{alice.Name: 3, addr.Name: 0, attacker.Name: 5, "acct:carol": 0})
}

func TestFailureCountsBothKeys(t *testing.T) {
	e := newEnv(t)
	e.fail(t, 2, alice, addr)
	e.fail(t, 1, Key{}, addr)
	e.assertCounts(t, map[string]int64{alice.Name: 2, addr.Name: 3})
}

// A success clears the account's counter and leaves the address's as the
// failures made it: successes do not fill an address's allowance.
func TestSuccessClearsTheAccountOnly(t *testing.T) {
	e := newEnv(t)
	other := Key{Name: "acct:bob", Limit: 10}
	e.fail(t, 2, alice, addr)
	e.fail(t, 1, other, addr)
	for range 5 {
		if ran, err := e.guess(alice, addr, true); !ran || err != nil {
			t.Fatalf("good guess: checked %v, err %v", ran, err)
		}
	}
	e.assertCounts(t, map[string]int64{alice.Name: 0, other.Name: 1, addr.Name: 3})
}

// An error from check (the store or the identity backend is down) is
// returned as it is and counts nothing.
func TestCheckErrorCountsNothing(t *testing.T) {
	e := newEnv(t)
	e.fail(t, 1, alice, addr)
	down := fmt.Errorf("%w: backend down", apierr.ErrUnavailable)
	err := e.l.Guard(context.Background(), alice, addr, func() (bool, error) { return false, down }, errWrong)
	if err != down {
		t.Fatalf("err = %v, want the check's error", err)
	}
	e.assertCounts(t, map[string]int64{alice.Name: 1, addr.Name: 1})
}

func TestEmptyNamesSkipped(t *testing.T) {
	e := newEnv(t)
	empty := Key{Name: "", Limit: 0} // a limit of 0 would refuse at once
	e.fail(t, 3, empty, empty)
	if ran, err := e.guess(empty, empty, true); !ran || err != nil {
		t.Fatalf("checked %v, err %v", ran, err)
	}
	e.assertCounts(t, map[string]int64{"": 0})
}

func TestSlowDownGrowsAndIsCapped(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	big := func(name string) Key { return Key{Name: name, Limit: 100} }
	cases := []struct {
		name string
		// run makes the failures; the most counted key decides the wait.
		run  func(t *testing.T, e *env)
		want []time.Duration
	}{
		{"one key", func(t *testing.T, e *env) { e.fail(t, 14, big("acct:a"), Key{}) },
			[]time.Duration{ms(250), ms(500), ms(750), ms(1000), ms(1250), ms(1500), ms(1750), ms(2000), ms(2000), ms(2000), ms(2000)}},
		{"the most counted key", func(t *testing.T, e *env) {
			e.fail(t, 5, Key{}, big("addr:192.0.2.1"))
			e.fail(t, 1, big("acct:a"), big("addr:192.0.2.1"))
		}, []time.Duration{ms(250), ms(500), ms(750)}},
		{"few failures", func(t *testing.T, e *env) { e.fail(t, 3, big("acct:a"), Key{}) }, nil},
		{"successes do not slow down", func(t *testing.T, e *env) {
			for range 6 {
				if _, err := e.guess(big("acct:a"), big("addr:192.0.2.1"), true); err != nil {
					t.Fatal(err)
				}
			}
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.run(t, e)
			if !slices.Equal(e.slept, c.want) {
				t.Errorf("slept %v, want %v", e.slept, c.want)
			}
		})
	}
}

// Guesses at made-up names that shared the victim's lock stripe, stuck in
// their check (a slow identity backend) or in their slow-down, must not
// delay the victim: the victim's Guard completes while they are still
// stuck. The bound is generous: it only catches waiting on the attackers.
func TestGuessesAtOtherAccountsDoNotDelayTheVictim(t *testing.T) {
	for _, stuckIn := range []string{"check", "slow-down"} {
		t.Run(stuckIn, func(t *testing.T) {
			e := newEnv(t)
			release, first := make(chan struct{}), make(chan struct{})
			var once sync.Once
			stuck := func() { once.Do(func() { close(first) }); <-release }
			e.l.slowAfter = 0
			if stuckIn == "slow-down" {
				e.l.sleep = func(context.Context, time.Duration) { stuck() }
			}
			attackers := stripetest.Colliding("acct:", "alice", "mallory", 4)
			var done sync.WaitGroup
			for _, name := range attackers {
				done.Add(1)
				go func() {
					defer done.Done()
					_ = e.l.Guard(context.Background(), Key{Name: "acct:" + name, Limit: 10}, Key{Name: "addr:203.0.113.66", Limit: 100},
						func() (bool, error) {
							if stuckIn == "check" {
								stuck()
							}
							return false, nil
						}, errWrong)
				}()
			}
			<-first // an attacker is stuck now
			victim := make(chan error, 1)
			go func() {
				_, err := e.guess(Key{Name: "acct:alice", Limit: 10}, addr, true)
				victim <- err
			}()
			select {
			case err := <-victim:
				if err != nil {
					t.Errorf("victim: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("the victim's guess waited on guesses at %v", attackers)
			}
			close(release)
			done.Wait()
		})
	}
}

// Concurrent guesses from one address, at one account or at as many
// accounts as guesses, never check more secrets than the limits allow:
// a guess needs one of the slots its keys still have before its check.
func TestConcurrentGuessesRespectTheLimits(t *testing.T) {
	const guesses, limit = 40, 5
	cases := []struct {
		name    string
		account func(i int) Key
		address Key
	}{
		{"many accounts, one address", func(i int) Key { return Key{Name: fmt.Sprintf("acct:user%d", i), Limit: 100} },
			Key{Name: "addr:203.0.113.66", Limit: limit}},
		{"one account", func(int) Key { return Key{Name: "acct:alice", Limit: limit} }, Key{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			// Checks are held until every guess has either reached its
			// check or been refused, so that no failure is counted before
			// all of them have tried (a generous bound keeps a design that
			// serialises guesses from hanging the test).
			var checked, refused atomic.Int64
			release := make(chan struct{})
			var once sync.Once
			open := func() {
				if checked.Load()+refused.Load() == guesses {
					once.Do(func() { close(release) })
				}
			}
			var wg sync.WaitGroup
			for i := range guesses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := e.l.Guard(context.Background(), c.account(i), c.address, func() (bool, error) {
						checked.Add(1)
						open()
						select {
						case <-release:
						case <-time.After(5 * time.Second):
						}
						return false, nil
					}, errWrong)
					var rl *apierr.RateLimited
					switch {
					case errors.As(err, &rl):
						refused.Add(1)
						open()
					case !errors.Is(err, errWrong):
						t.Errorf("guess %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if n := checked.Load(); n > limit {
				t.Fatalf("%d secrets were checked, limit %d", n, limit)
			}
			if n := checked.Load(); n != limit {
				t.Errorf("%d secrets were checked, want the limit %d", n, limit)
			}
		})
	}
}

// A client that hangs up while its secret is checked still has its
// attempt settled: a success clears the account (the address keeps its
// failures), an error counts nothing.
func TestAttemptSettledAfterTheClientHangsUp(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
		err  error
		want map[string]int64
	}{
		{"success", true, nil, map[string]int64{alice.Name: 0, addr.Name: 1}},
		{"error", false, apierr.ErrUnavailable, map[string]int64{alice.Name: 1, addr.Name: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.fail(t, 1, alice, addr)
			ctx, cancel := context.WithCancel(context.Background())
			err := e.l.Guard(ctx, alice, addr, func() (bool, error) { cancel(); return c.ok, c.err }, errWrong)
			if err != c.err {
				t.Errorf("err = %v, want %v", err, c.err)
			}
			e.assertCounts(t, c.want)
		})
	}
}

// A client's own concurrent requests, more at once than the limits, all
// succeed: a guess that finds no free slot waits for one, and a success
// gives its slot back without counting anything. (A design that counted
// every guess before checking it refused them with 429.)
func TestConcurrentSuccessesBeyondTheLimitsAllPass(t *testing.T) {
	e := newEnv(t)
	account := Key{Name: "client:tgc_busy", Limit: 3}
	address := Key{Name: "addr:198.51.100.7", Limit: 5}
	var checking, most atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.l.Guard(context.Background(), account, address, func() (bool, error) {
				n := checking.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(time.Millisecond)
				checking.Add(-1)
				return true, nil
			}, errWrong)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if m := most.Load(); m > account.Limit {
		t.Errorf("%d checks ran at once, the account allows %d", m, account.Limit)
	}
	e.assertCounts(t, map[string]int64{account.Name: 0, address.Name: 0})
}

// An IPv6 client is counted per /64: guesses spread over the addresses of
// one prefix share one counter; another prefix has its own.
func TestAddressCountsIPv6PerPrefix(t *testing.T) {
	l := New(nil, Limits{PerAddress: 5})
	a := l.Address("2001:db8:1:2::1")
	b := l.Address("2001:db8:1:2:ffff::9")
	c := l.Address("2001:db8:1:3::1")
	if a.Name != b.Name || a.Name == c.Name {
		t.Errorf("keys %q %q %q: want the first two equal (one /64), the third apart", a.Name, b.Name, c.Name)
	}
	if v4 := l.Address("192.0.2.7"); v4.Name != "addr:192.0.2.7" {
		t.Errorf("IPv4 key %q", v4.Name)
	}
	if m := l.Address("::ffff:192.0.2.7"); m.Name != "addr:192.0.2.7" {
		t.Errorf("IPv4-mapped key %q", m.Name)
	}
	if (l.Address("") != Key{}) {
		t.Error("an unknown address has a counter")
	}
}
