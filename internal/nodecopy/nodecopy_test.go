package nodecopy_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokengate/tokengate/internal/nodecopy"
)

// call is one load under way, held until the test answers it.
type call struct {
	ctx   context.Context
	key   string
	reply chan result
}

type result struct {
	v   int
	err error
}

// source stands in for the store: every load announces itself on calls
// and returns what the test answers.
type source struct{ calls chan call }

func newSource() *source { return &source{calls: make(chan call)} }

func (s *source) load(ctx context.Context) (int, error) { return s.loadKey(ctx, "") }

func (s *source) loadKey(ctx context.Context, key string) (int, error) {
	c := call{ctx: ctx, key: key, reply: make(chan result)}
	s.calls <- c
	r := <-c.reply
	return r.v, r.err
}

// next returns the load that has begun (after synctest.Wait).
func (s *source) next(t *testing.T) call {
	t.Helper()
	synctest.Wait()
	select {
	case c := <-s.calls:
		return c
	default:
		t.Fatal("no load began")
		return call{}
	}
}

// serve answers the one load that get has begun with v, and checks that
// get returns v.
func (s *source) serve(t *testing.T, get answered, v int) {
	t.Helper()
	s.next(t).reply <- result{v: v}
	want(t, get.await(t), v)
}

// held checks that get returns v without a load.
func (s *source) held(t *testing.T, get answered, v int) {
	t.Helper()
	want(t, get.await(t), v)
	s.none(t)
}

// none fails if a load has begun.
func (s *source) none(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case c := <-s.calls:
		t.Fatalf("a load of %q began", c.key)
	default:
	}
}

// answered is a Get under way.
type answered chan result

// start runs get on a goroutine of the bubble.
func start(get func() (int, error)) answered {
	ch := make(answered, 1)
	go func() {
		v, err := get()
		ch <- result{v, err}
	}()
	return ch
}

// await returns the answer of a Get that must have finished.
func (a answered) await(t *testing.T) result {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-a:
		return r
	default:
		t.Fatal("the Get is still waiting")
		return result{}
	}
}

// waiting fails if the Get has finished.
func (a answered) waiting(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-a:
		t.Fatalf("the Get returned %+v; want it waiting", r)
	default:
	}
}

func getCopy(ctx context.Context, c *nodecopy.Copy[int]) answered {
	return start(func() (int, error) { return c.Get(ctx) })
}

func get(c *nodecopy.Copy[int]) answered { return getCopy(context.Background(), c) }

// withCopy runs body in a bubble, with a Copy of a source.
func withCopy(t *testing.T, o nodecopy.Options[int], body func(t *testing.T, s *source, c *nodecopy.Copy[int])) {
	synctest.Test(t, func(t *testing.T) {
		s := newSource()
		body(t, s, nodecopy.New(s.load, o))
	})
}

func want(t *testing.T, r result, v int) {
	t.Helper()
	if r.err != nil || r.v != v {
		t.Fatalf("got %d, %v; want %d", r.v, r.err, v)
	}
}

func TestCopyLoadsOnceAndKeeps(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		s.held(t, get(c), 1)
	})
}

func TestCopyInvalidateReloads(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		c.Invalidate()
		s.serve(t, get(c), 2)
		s.held(t, get(c), 2)
	})
}

func TestCopyDoesNotKeepErrors(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		boom := errors.New("store down")
		a := get(c)
		s.next(t).reply <- result{err: boom}
		if r := a.await(t); !errors.Is(r.err, boom) {
			t.Fatalf("got %+v; want the load's error", r)
		}
		s.serve(t, get(c), 1)
	})
}

// Callers of one generation share one load.
func TestCopySharesALoad(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		gets := make([]answered, 5)
		for i := range gets {
			gets[i] = get(c)
		}
		l := s.next(t)
		s.none(t)
		l.reply <- result{v: 1}
		for _, g := range gets {
			want(t, g.await(t), 1)
		}
	})
}

// A load begun before an invalidation answers its own callers but is not
// kept, and a Get after the invalidation does not share it.
func TestCopyInvalidateDuringLoad(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		before := get(c)
		old := s.next(t)
		c.Invalidate()
		after := get(c)
		fresh := s.next(t) // a load of its own
		fresh.reply <- result{v: 2}
		want(t, after.await(t), 2) // without waiting for the old load
		before.waiting(t)
		old.reply <- result{v: 1}
		want(t, before.await(t), 1)
		s.held(t, get(c), 2)

		// The old load finishing last must not install either.
		c.Invalidate()
		first := get(c)
		old = s.next(t)
		c.Invalidate()
		old.reply <- result{v: 3}
		want(t, first.await(t), 3)
		s.serve(t, get(c), 4)
	})
}

// One caller giving up neither cancels the shared load nor fails the
// callers that wait for it, and it stops waiting at once.
func TestCopyCallerCancels(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		ctx, cancel := context.WithCancel(context.Background())
		first := getCopy(ctx, c) // begins the load
		l := s.next(t)
		other := get(c)
		s.none(t)
		cancel()
		if r := first.await(t); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("the cancelled caller got %+v; want context.Canceled", r)
		}
		other.waiting(t)
		if err := l.ctx.Err(); err != nil {
			t.Fatalf("the shared load's context ended with its first caller's: %v", err)
		}
		l.reply <- result{v: 1}
		want(t, other.await(t), 1)
		s.held(t, get(c), 1)
	})
}

// A shared load is bounded by LoadTimeout, and its failure is not kept.
func TestCopyLoadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := nodecopy.New(func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}, nodecopy.Options[int]{})
		t0 := time.Now()
		_, err := c.Get(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get = %v; want the load's deadline", err)
		}
		if d := time.Since(t0); d != nodecopy.LoadTimeout {
			t.Fatalf("the load ended after %v; want %v", d, nodecopy.LoadTimeout)
		}
	})
}

// A panicking load fails its callers; the process goes on.
func TestCopyLoadPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSource()
		c := nodecopy.New(func(ctx context.Context) (int, error) {
			v, err := s.load(ctx)
			if v < 0 {
				panic("bug")
			}
			return v, err
		}, nodecopy.Options[int]{})
		a, b := get(c), get(c)
		s.next(t).reply <- result{v: -1}
		for _, g := range []answered{a, b} {
			if r := g.await(t); r.err == nil || !strings.Contains(r.err.Error(), "panic: bug") {
				t.Fatalf("got %+v; want the panic as an error", r)
			}
		}
		s.serve(t, get(c), 1)
	})
}

func TestCopyExpires(t *testing.T) {
	o := nodecopy.Options[int]{
		Expires: func(v int, at time.Time) time.Time {
			if v == 0 {
				return time.Time{} // kept until invalidated
			}
			return at.Add(time.Duration(v) * time.Minute)
		},
	}
	withCopy(t, o, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		time.Sleep(time.Minute - time.Nanosecond)
		s.held(t, get(c), 1)
		time.Sleep(time.Nanosecond)
		s.serve(t, get(c), 0)
		time.Sleep(24 * time.Hour)
		s.held(t, get(c), 0)
	})
}

// An expired value whose reload fails is still served, then kept for
// RetryExpired without asking the store; an invalidated one never is.
func TestCopyExpiredServedWhenReloadFails(t *testing.T) {
	o := nodecopy.Options[int]{Expires: func(v int, at time.Time) time.Time { return at.Add(time.Minute) }}
	withCopy(t, o, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		time.Sleep(time.Minute)
		g := get(c)
		s.next(t).reply <- result{err: errors.New("store down")}
		want(t, g.await(t), 1)
		time.Sleep(nodecopy.RetryExpired - time.Nanosecond)
		s.held(t, get(c), 1)
		time.Sleep(time.Nanosecond)
		s.serve(t, get(c), 2)
		s.held(t, get(c), 2)

		c.Invalidate()
		g = get(c)
		s.next(t).reply <- result{err: errors.New("store down")}
		if got := g.await(t); got.err == nil {
			t.Fatalf("get after an invalidation and a failed load = %+v, want the store's error", got)
		}
	})
}

func refresh(c *nodecopy.Copy[int], floor time.Duration) answered {
	return start(func() (int, error) { return c.Refresh(context.Background(), floor) })
}

// Refresh reads again once the copy is floor old, not before.
func TestCopyRefresh(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, refresh(c, time.Second), 1) // nothing held: loads
		time.Sleep(time.Second - time.Nanosecond)
		s.held(t, refresh(c, time.Second), 1)
		time.Sleep(time.Nanosecond)
		s.serve(t, refresh(c, time.Second), 2)
		s.held(t, get(c), 2)
	})
}

// Refresh within the floor still reads a copy that has expired.
func TestCopyRefreshHonoursExpiry(t *testing.T) {
	o := nodecopy.Options[int]{Expires: func(v int, at time.Time) time.Time { return at.Add(time.Millisecond) }}
	withCopy(t, o, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		time.Sleep(time.Millisecond)
		s.serve(t, refresh(c, time.Second), 2)
	})
}

func getMap(m *nodecopy.Map[int], key string) answered {
	return start(func() (int, error) { return m.Get(context.Background(), key) })
}

func TestMap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSource()
		m := nodecopy.NewMap(s.loadKey, func(v int) bool { return v != 0 })
		a, b, a2 := getMap(m, "a"), getMap(m, "b"), getMap(m, "a")
		synctest.Wait()
		loads := map[string]call{}
		for range 2 {
			l := s.next(t)
			loads[l.key] = l
		}
		s.none(t) // one load per key
		loads["a"].reply <- result{v: 1}
		loads["b"].reply <- result{v: 2}
		want(t, a.await(t), 1)
		want(t, a2.await(t), 1)
		want(t, b.await(t), 2)
		s.held(t, getMap(m, "a"), 1)

		m.Invalidate("a")
		s.serve(t, getMap(m, "a"), 3)
		s.held(t, getMap(m, "b"), 2) // b kept

		m.Clear()
		s.serve(t, getMap(m, "b"), 4)

		// A value not kept is read on every use.
		for range 2 {
			s.serve(t, getMap(m, "z"), 0)
		}
	})
}

func TestMapInvalidateDuringLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSource()
		m := nodecopy.NewMap(s.loadKey, nil)
		before := getMap(m, "a")
		old := s.next(t)
		m.Invalidate("a")
		s.serve(t, getMap(m, "a"), 2)
		old.reply <- result{v: 1}
		want(t, before.await(t), 1)
		s.held(t, getMap(m, "a"), 2)

		before = getMap(m, "b")
		old = s.next(t)
		m.Clear()
		s.serve(t, getMap(m, "b"), 2)
		old.reply <- result{v: 1}
		want(t, before.await(t), 1)
		s.held(t, getMap(m, "b"), 2)
	})
}

func TestMapCallerCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSource()
		m := nodecopy.NewMap(s.loadKey, nil)
		ctx, cancel := context.WithCancel(context.Background())
		first := start(func() (int, error) { return m.Get(ctx, "a") })
		l := s.next(t)
		other := getMap(m, "a")
		cancel()
		if r := first.await(t); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("the cancelled caller got %+v", r)
		}
		if l.ctx.Err() != nil {
			t.Fatal("the shared load's context ended with its first caller's")
		}
		l.reply <- result{v: 1}
		want(t, other.await(t), 1)
	})
}

// versions stands in for a store document that a writer keeps changing,
// announcing each change after it is written.
type versions struct {
	written   atomic.Int64 // the document's version
	announced atomic.Int64 // the latest version whose Invalidate returned
}

// read returns the version, yielding after the read so that changes and
// invalidations land between a load's read and its install.
func (v *versions) read() int64 {
	n := v.written.Load()
	runtime.Gosched()
	return n
}

// hammer runs readers against a writer that changes the document and
// invalidates, and checks (with real goroutines, under -race) that a Get
// begun after an invalidation never returns what that change replaced.
func hammer(t *testing.T, v *versions, get func() (int64, error), invalidate func()) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for range 2000 {
			n := v.written.Add(1)
			invalidate()
			v.announced.Store(n)
		}
		close(stop)
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := v.announced.Load()
				got, err := get()
				if err != nil {
					t.Error(err)
					return
				}
				if got < floor {
					t.Errorf("Get after the invalidation of version %d returned version %d", floor, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCopyConcurrentGetInvalidate(t *testing.T) {
	v := &versions{}
	c := nodecopy.New(func(context.Context) (int64, error) { return v.read(), nil }, nodecopy.Options[int64]{})
	hammer(t, v, func() (int64, error) { return c.Get(context.Background()) }, c.Invalidate)
}

func TestMapConcurrentGetInvalidate(t *testing.T) {
	v := &versions{}
	m := nodecopy.NewMap(func(context.Context, string) (int64, error) { return v.read(), nil }, nil)
	keys := []string{"a", "b"}
	var i atomic.Int64
	hammer(t, v, func() (int64, error) {
		return m.Get(context.Background(), keys[i.Add(1)%2])
	}, func() {
		if i.Load()%3 == 0 {
			m.Clear()
			return
		}
		m.Invalidate("a")
		m.Invalidate("b")
	})
}

// A refresh whose read fails keeps the held copy: the store's blip costs
// the refreshing caller its answer, not every other caller (a made-up key
// id per floor used to empty the copy before reading).
func TestCopyFailedRefreshKeepsTheCopy(t *testing.T) {
	withCopy(t, nodecopy.Options[int]{}, func(t *testing.T, s *source, c *nodecopy.Copy[int]) {
		s.serve(t, get(c), 1)
		time.Sleep(time.Second)
		r := refresh(c, time.Second)
		s.next(t).reply <- result{err: errors.New("store down")}
		if got := r.await(t); got.err == nil {
			t.Fatalf("refresh = %+v, want the store's error", got)
		}
		s.held(t, get(c), 1)
	})
}
