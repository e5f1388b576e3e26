package redisstore

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// Log lines of the subscription's outages.
const (
	subscriptionLost     = "store subscription lost"
	subscriptionRestored = "store subscription restored"
)

// A subscription whose connection stays open but delivers nothing (a
// proxy that stops forwarding: what a frozen server or a proxy eating
// messages looks like to the client) is found by the store's own pings
// within a few ping intervals: it is logged once, made again on a new
// connection, the subscribers get EventReset (so a revoke made meanwhile
// through another node is enforced), and the restore is logged once with
// how long it was out. The Store's own pings never reach subscribers.
func TestSilentSubscriptionIsRestored(t *testing.T) {
	const every = 200 * time.Millisecond
	// A bound on waiting: the ping that goes unanswered, SilentIntervals
	// more, one receive timeout, the pause before resubscribing, and
	// slack for a loaded machine. Far below any cache_ttl.
	bound := (SilentIntervals+3)*every + 3*time.Second

	proxy := startFreezer(t, shared.Addr())
	core, logs := observer.New(zapcore.DebugLevel)
	a := openURL(t, "redis://"+proxy.addr(), Options{PingInterval: every, Logger: zap.New(core)})
	b := open(t, shared, Options{Prefix: a.keys.prefix})
	onA := subscribe(t, a)
	ctx := t.Context()

	// Pings flow, and none is delivered as an event.
	poll(t, "a ping acknowledged", func() bool { return a.pingAcked.Load() != 0 })
	time.Sleep(3 * every)
	if got := onA.all(); len(got) != 0 {
		t.Fatalf("A's subscriber got %+v from pings alone, want nothing", got)
	}
	if n := logs.FilterMessageSnippet("store subscription").Len(); n != 0 {
		t.Fatalf("%d subscription log lines before any outage: %v", n, logs.All())
	}

	must(t, b.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, b.CreateToken(ctx, tok, 0))
	onA.waitFor(t, store.Event{Kind: store.EventToken, Hash: tok.Hash})
	onA.reset()

	if n := proxy.freezeSubscribers(); n != 1 {
		t.Fatalf("froze %d subscriber connections, want 1", n)
	}
	frozenAt := time.Now()
	// The revoke through B is published but never reaches A.
	_, err := b.DeleteToken(ctx, "alice", tok.ID)
	must(t, err)
	waitWithin(t, bound, "EventReset on A after the freeze", func() bool {
		for _, e := range onA.all() {
			if e.Kind == store.EventReset {
				return true
			}
		}
		return false
	})
	t.Logf("reset delivered %v after the freeze (ping interval %v)", time.Since(frozenAt).Round(time.Millisecond), every)
	if got := onA.all(); len(got) != 1 {
		t.Errorf("A got %+v, want only the reset (the token event was lost)", got)
	}

	// The new subscription carries events again.
	tok2 := newToken("alice")
	must(t, b.CreateToken(ctx, tok2, 0))
	onA.waitFor(t, store.Event{Kind: store.EventToken, Hash: tok2.Hash})

	// Several more intervals: still one line each.
	time.Sleep(5 * every)
	lost := logs.FilterMessageSnippet(subscriptionLost).All()
	restored := logs.FilterMessageSnippet(subscriptionRestored).All()
	if len(lost) != 1 || len(restored) != 1 {
		t.Fatalf("%d lost and %d restored lines, want 1 each: %v", len(lost), len(restored), logs.All())
	}
	if lost[0].Level != zapcore.ErrorLevel || !strings.Contains(lost[0].ContextMap()["error"].(string), "not even this node's own ping") {
		t.Errorf("lost line: %s %v, want Error with the cause", lost[0].Level, lost[0].ContextMap())
	}
	out, ok := restored[0].ContextMap()["out_for"].(time.Duration)
	if !ok || out <= 0 || out > time.Since(frozenAt) {
		t.Errorf("restored line's out_for = %v (%T), want the outage's length", restored[0].ContextMap()["out_for"], restored[0].ContextMap()["out_for"])
	}
	if !strings.Contains(restored[0].Message, "caches emptied") {
		t.Errorf("restored line %q does not say the caches were emptied", restored[0].Message)
	}
}

// When Redis is frozen for everyone (SIGSTOP), no ping is acknowledged:
// the quiet subscription is not blamed, and once Redis goes on it still
// delivers (nothing could have been published meanwhile).
func TestFrozenServerIsNotASilentSubscription(t *testing.T) {
	const every = 100 * time.Millisecond
	srv := redistest.Start(t)
	core, logs := observer.New(zapcore.InfoLevel)
	a := open(t, srv, Options{PingInterval: every, Logger: zap.New(core)})
	b := open(t, srv, Options{Prefix: a.keys.prefix})
	onA := subscribe(t, a)
	poll(t, "a ping acknowledged", func() bool { return a.pingAcked.Load() != 0 })
	srv.Pause(t)
	time.Sleep(10 * every)
	srv.Resume(t)
	ctx := t.Context()
	must(t, b.CreateUser(ctx, newUser("alice")))
	_, err := b.UpdateUser(ctx, "alice", func(*store.User) error { return nil })
	must(t, err)
	onA.waitFor(t, store.Event{Kind: store.EventUser, Owner: "alice"})
	if n := logs.FilterMessageSnippet("store subscription").Len(); n != 0 {
		t.Errorf("%d subscription log lines for a server frozen for everyone: %v", n, logs.All())
	}
}

// The Store's own pings (and other stores') decode as no event.
func TestPingIsNoEvent(t *testing.T) {
	if _, _, ok := decodeEvent("abcdef " + pingTag); ok {
		t.Fatal("a ping decodes as an event")
	}
}

// waitWithin polls cond until it holds, failing t after bound.
func waitWithin(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freezer is a TCP proxy to Redis that can stop forwarding, in both
// directions and without closing anything, on the subscriber connections
// (those that sent SUBSCRIBE) open at the time: pub/sub is silently down
// for them, while the data connections and any new connection work.
type freezer struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	conns []*proxied
}

// proxied is one client connection through the freezer.
type proxied struct {
	subscriber bool
	frozen     bool
}

// startFreezer listens on a loopback port and forwards to target until t
// ends.
func startFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, target: target}
	f.cond = sync.NewCond(&f.mu)
	t.Cleanup(func() {
		_ = l.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.frozen = false
		}
		f.mu.Unlock()
		f.cond.Broadcast()
	})
	go f.serve()
	return f
}

func (f *freezer) addr() string { return f.l.Addr().String() }

// freezeSubscribers freezes the subscriber connections open now and
// returns how many.
func (f *freezer) freezeSubscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.conns {
		if c.subscriber && !c.frozen {
			c.frozen = true
			n++
		}
	}
	return n
}

func (f *freezer) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		go f.pipe(c)
	}
}

func (f *freezer) pipe(client net.Conn) {
	server, err := net.Dial("tcp", f.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p := &proxied{}
	f.mu.Lock()
	f.conns = append(f.conns, p)
	f.mu.Unlock()
	go f.copy(server, client, p, true)
	f.copy(client, server, p, false)
}

// copy forwards from src to dst, waiting while p is frozen; fromClient
// marks p as a subscriber when it sees SUBSCRIBE.
func (f *freezer) copy(dst, src net.Conn, p *proxied, fromClient bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			if fromClient && bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
				p.subscriber = true
			}
			for p.frozen {
				f.cond.Wait()
			}
			f.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// CheckPersistence warns once about a Redis that keeps nothing on disk
// (redistest's default: --save "" --appendonly no), on a single server
// and on each primary of a cluster, and says nothing with AOF on.
func TestCheckPersistence(t *testing.T) {
	for name, srv := range map[string]*redistest.Server{
		"Single": shared, "Cluster": sharedCluster, "AOF": redistest.StartArgs(t, "--appendonly", "yes"),
	} {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			s := openURL(t, srv.URL(), Options{Logger: zap.New(core)})
			s.CheckPersistence(t.Context())
			warned := logs.FilterMessageSnippet("Redis keeps nothing on disk").All()
			if name == "AOF" {
				if logs.Len() != 0 {
					t.Errorf("log lines for a Redis with AOF: %v", logs.All())
				}
				return
			}
			if len(warned) != 1 || warned[0].Level != zapcore.WarnLevel || logs.Len() != 1 {
				t.Fatalf("want one Warn line, got %v", logs.All())
			}
			_, port, _ := strings.Cut(srv.Addr(), ":") // a one-node cluster announces no host
			if got := warned[0].ContextMap()["primaries"]; !strings.Contains(fmt.Sprint(got), ":"+port) {
				t.Errorf("primaries %v do not name %s", got, srv.Addr())
			}
		})
	}
}
