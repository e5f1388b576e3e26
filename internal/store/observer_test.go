package store_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// calls records what an Observer is told.
type calls struct {
	mu  sync.Mutex
	got []string // op/outcome
}

func (c *calls) StoreCall(op string, took time.Duration, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, op+"/"+outcome)
}

func (c *calls) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

// Every method of the store tells the Observer its own name; before
// attach, each is a refusal.
func TestObserverNamesEveryMethod(t *testing.T) {
	none := store.NewDeferred()
	none.Unreachable()
	obs := &calls{}
	none.SetObserver(obs)
	d := reflect.ValueOf(none)
	methods := reflect.TypeFor[store.Store]()
	for i := range methods.NumMethod() {
		m := methods.Method(i)
		if m.Name == "Subscribe" || m.Name == "Close" || m.Name == "Ping" {
			continue
		}
		fn := d.MethodByName(m.Name)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(fn.Type().In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		fn.Call(args)
		if got := obs.take(); len(got) != 1 || got[0] != m.Name+"/refused" {
			t.Errorf("%s told the observer %v", m.Name, got)
		}
	}
}

// A call that got an answer (even "not found") has no outcome; one that
// did not reach the store is "unreachable".
func TestObserverOutcomes(t *testing.T) {
	ctx := context.Background()
	d, f := attachFlaky(t)
	obs := &calls{}
	d.SetObserver(obs)
	f.fail(store.ErrNotFound)
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	f.fail(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	if _, err := d.GetUser(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatal(err)
	}
	if got := obs.take(); !reflect.DeepEqual(got, []string{"GetUser/", "GetUser/unreachable"}) {
		t.Fatalf("observer told %v", got)
	}
	d.SetObserver(nil)
	if _, err := d.GetUser(ctx, "alice"); err == nil {
		t.Fatal("want an error")
	}
	if got := obs.take(); len(got) != 0 {
		t.Fatalf("a removed observer was told %v", got)
	}
}
