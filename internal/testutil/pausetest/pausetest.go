// Package pausetest holds a store read until a test lets it go, so that
// the test can land a change (and its invalidation) between a node's read
// of the store and the use of what it read, and then check that a caller
// who came after the change neither waits for nor gets that read.
package pausetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Bound is how long Within waits: generous, a bound on waiting, never a
// speed claim.
const Bound = 5 * time.Second

// Gate holds the first read after Arm. A store wrapper calls Hold after
// its read.
type Gate struct {
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
	once    sync.Once
}

// New returns a gate that holds nothing until Arm.
func New() *Gate { return &Gate{read: make(chan struct{}), release: make(chan struct{})} }

// Arm makes the next Hold wait.
func (g *Gate) Arm() { g.armed.Store(true) }

// Hold announces the first read after Arm and waits until Release; other
// reads go on.
func (g *Gate) Hold() {
	if g.armed.CompareAndSwap(true, false) {
		g.read <- struct{}{}
		<-g.release
	}
}

// Read waits until the armed read has happened.
func (g *Gate) Read() { <-g.read }

// Release lets the held read go on. It may be called more than once.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }

// Go runs f on a goroutine and delivers its value; an error fails t.
func Go[T any](t testing.TB, f func() (T, error)) <-chan T {
	ch := make(chan T, 1)
	go func() {
		v, err := f()
		if err != nil {
			t.Error(err)
		}
		ch <- v
	}()
	return ch
}

// Within returns what ch delivers within Bound. Otherwise it releases g
// (so that the held read does not outlive the test) and fails t with why.
func Within[T any](t testing.TB, g *Gate, ch <-chan T, why string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Bound):
		g.Release()
		t.Fatal(why)
		var zero T
		return zero
	}
}
