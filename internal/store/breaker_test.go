package store_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// flakyStore is a real store whose GetUser fails with err when set, and
// which counts the calls that reach it.
type flakyStore struct {
	store.Store
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func (f *flakyStore) GetUser(ctx context.Context, name string) (store.User, error) {
	f.calls.Add(1)
	if p := f.err.Load(); p != nil {
		return store.User{}, *p
	}
	return f.Store.GetUser(ctx, name)
}

func (f *flakyStore) fail(err error) { f.err.Store(&err) }

func attachFlaky(t *testing.T) (*store.Deferred, *flakyStore) {
	t.Helper()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyStore{Store: bolt}
	d := store.NewDeferred()
	if err := d.Attach(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, f
}

// Failures that mean "unreachable" open the breaker after three in a row;
// the store's answers and a caller that gave up do not count; once open,
// calls fail at once without reaching the backend, with the retry hint.
func TestDeferredBreakerCountsUnreachableFailures(t *testing.T) {
	ctx := context.Background()
	d, f := attachFlaky(t)
	d.Breaker().Configure(breaker.Options{Name: "store", Failures: 3, RetryAfter: 4 * time.Second})

	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, answer := range []error{store.ErrNotFound, store.ErrLabelTaken, errors.New("decode: bad record"), context.Canceled} {
		for range 5 {
			f.fail(answer)
			if _, err := d.GetUser(ctx, "alice"); errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%v came back as unavailable: %v", answer, err)
			}
		}
	}
	if d.Breaker().Open() {
		t.Fatal("answers of the store opened the breaker")
	}
	f.fail(refused)
	for i := range 2 {
		_, err := d.GetUser(ctx, "alice")
		var ue *store.UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, syscall.ECONNREFUSED) || ue.RetryAfter != 4*time.Second {
			t.Fatalf("failure %d: %v, want an UnavailableError with the cause and the hint", i, err)
		}
	}
	f.fail(store.ErrNotFound) // an answer between: the count starts again
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	f.fail(context.DeadlineExceeded)
	for range 3 {
		_, _ = d.GetUser(ctx, "alice")
	}
	if !d.Breaker().Open() {
		t.Fatal("three timeouts in a row did not open the breaker")
	}
	before := f.calls.Load()
	_, err := d.GetUser(ctx, "alice")
	var ue *store.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, store.ErrUnavailable) || ue.RetryAfter != 4*time.Second {
		t.Fatalf("with the breaker open: %v", err)
	}
	if f.calls.Load() != before {
		t.Error("a call reached the backend while the breaker was open")
	}
	// Ping goes through (it is how the breaker learns the store is back).
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping with the breaker open: %v", err)
	}
	d.Breaker().Probed(nil)
	f.fail(store.ErrNotFound)
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a good probe: %v", err)
	}
}

// nilStore panics on every call: the breaker must answer first.
type nilStore struct{ store.Store }

func (nilStore) Subscribe(context.Context, func(store.Event)) error { return nil }
func (nilStore) Close() error                                       { return nil }

// With the breaker open every Store method but Ping (and Subscribe and
// Close) fails at once, whichever role it comes from: none is forwarded
// past the breaker by mistake.
func TestDeferredEveryMethodFailsFastWhenOpen(t *testing.T) {
	d := store.NewDeferred()
	if err := d.Attach(nilStore{}); err != nil {
		t.Fatal(err)
	}
	d.Breaker().Probed(errors.New("no answer"))
	v := reflect.ValueOf(d)
	methods := reflect.TypeFor[store.Store]()
	for i := range methods.NumMethod() {
		m := methods.Method(i)
		switch m.Name {
		case "Subscribe", "Close", "Ping":
			continue
		}
		fn := v.MethodByName(m.Name)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(fn.Type().In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		out := fn.Call(args)
		err, _ := out[len(out)-1].Interface().(error)
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the breaker open: %v, want ErrUnavailable and breaker.ErrOpen", m.Name, err)
		}
	}
}

// A real Redis frozen with SIGSTOP: the probe opens the breaker, calls
// then fail at once (not after a read timeout), and once Redis goes on a
// probe closes the breaker and calls work again.
func TestDeferredBreakerOnFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	rs, err := redisstore.Open(srv.URL(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := store.NewDeferred()
	if err := d.Attach(rs); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Breaker().Configure(breaker.Options{Name: "store", ProbeInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	probing := make(chan struct{})
	go func() { d.Probe(ctx); close(probing) }()
	defer func() { cancel(); <-probing }()

	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser on a live Redis: %v", err)
	}
	srv.Pause(t)
	defer srv.Resume(t) // harmless if resumed already
	waitBreaker(t, d, true)
	start := time.Now()
	_, err = d.GetUser(ctx, "alice")
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("a call with the breaker open waited %v", waited)
	}
	var ue *store.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, breaker.ErrOpen) || ue.RetryAfter != time.Second {
		t.Fatalf("GetUser on a frozen Redis: %v, want the breaker's refusal with Retry-After 1s", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := d.Ping(pctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping of a frozen Redis: %v, want ErrUnavailable", err)
	}
	pcancel()
	srv.Resume(t)
	waitBreaker(t, d, false)
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser after Redis went on: %v", err)
	}
}

// waitBreaker waits (a bound on waiting) until the breaker is open or
// closed.
func waitBreaker(t *testing.T, d *store.Deferred, open bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for d.Breaker().Open() != open {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker is not open=%v after 15s", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
