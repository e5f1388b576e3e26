package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

// Until a backend is attached every call answers ErrUnavailable; a
// subscription made before is set up on attach and gets the events.
func TestDeferredUnavailableThenAttached(t *testing.T) {
	ctx := context.Background()
	d := store.NewDeferred()
	events := make(chan store.Event, 8)
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.Subscribe(sub, func(e store.Event) { events <- e }); err != nil {
		t.Fatal(err)
	}
	d.Unreachable() // the first opening failed: answer at once
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetUser before attach: %v, want ErrUnavailable", err)
	}
	if err := d.CreateUser(ctx, store.User{Name: "alice"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateUser before attach: %v, want ErrUnavailable", err)
	}
	if _, err := d.GetSession(ctx, store.TokenHash{1}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetSession before attach: %v, want ErrUnavailable", err)
	}
	if d.Backend() != nil {
		t.Fatal("a backend before attach")
	}
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(bolt); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Attach(bolt); err == nil {
		t.Error("a second Attach succeeded")
	}
	if err := d.CreateUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	sess := store.Session{ID: store.TokenHash{1}, User: "alice", ExpiresAt: time.Now().Add(time.Hour)}
	if err := d.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := d.TouchSession(ctx, sess.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := d.GetSession(ctx, sess.ID); err != nil || got.User != "alice" {
		t.Fatalf("GetSession after attach: %+v, %v", got, err)
	}
	if err := d.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := d.DeleteUserSessions(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("DeleteUserSessions after attach: %d, %v", n, err)
	}
	if _, err := d.UpdateUser(ctx, "alice", func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Kind != store.EventUser || e.Owner != "alice" {
			t.Errorf("event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the early subscription got no event")
	}
}

// failingStore refuses subscriptions, as an unreachable Redis does.
type failingStore struct{ store.Store }

func (failingStore) Subscribe(context.Context, func(store.Event)) error {
	return errors.New("connection refused")
}

func TestDeferredAttachFailureKeepsUnavailable(t *testing.T) {
	d := store.NewDeferred()
	if err := d.Subscribe(context.Background(), func(store.Event) {}); err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(failingStore{}); err == nil {
		t.Fatal("Attach succeeded although the subscription failed")
	}
	d.Unreachable()
	if _, err := d.ListUsers(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ListUsers after a failed attach: %v", err)
	}
}

// While the first opening is under way (Caddy may serve before the app
// that opens the store has started), a call waits for it instead of
// answering 503.
func TestDeferredCallWaitsForTheFirstOpening(t *testing.T) {
	d := store.NewDeferred()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	done := make(chan error, 1)
	go func() { done <- d.CreateUser(context.Background(), store.User{Name: "alice"}) }()
	if err := d.Attach(bolt); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a call made during the first opening: %v, want it to wait and succeed", err)
	}
	// A caller that gives up stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.NewDeferred().GetUser(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a cancelled call before any opening: %v, want ErrUnavailable", err)
	}
}

// Every Store method of a Deferred with no backend answers ErrUnavailable
// (except Subscribe, which waits for the backend, and Close), whichever
// role it comes from: a method forwarded by hand cannot be forgotten.
func TestDeferredEveryMethodUnavailable(t *testing.T) {
	none := store.NewDeferred()
	none.Unreachable() // answer at once rather than wait for an opening
	d := reflect.ValueOf(none)
	methods := reflect.TypeFor[store.Store]()
	for i := range methods.NumMethod() {
		m := methods.Method(i)
		if m.Name == "Subscribe" || m.Name == "Close" {
			continue
		}
		fn := d.MethodByName(m.Name)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(fn.Type().In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		out := fn.Call(args)
		err, _ := out[len(out)-1].Interface().(error)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s before attach: %v, want ErrUnavailable", m.Name, err)
		}
	}
}
