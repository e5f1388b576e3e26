package redisstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/pubsubproxy"
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

	proxy := pubsubproxy.Start(t, shared.Addr())
	core, logs := observer.New(zapcore.DebugLevel)
	a := openURL(t, "redis://"+proxy.Addr(), Options{PingInterval: every, Logger: zap.New(core)})
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

	if n := proxy.FreezeSubscribers(); n != 1 {
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

// CheckPersistence warns once about a Redis that keeps nothing on disk
// (redistest's default: --save "" --appendonly no), on a single server
// and on each primary of a cluster, and says nothing with AOF on.
func TestCheckPersistence(t *testing.T) {
	for name, srv := range map[string]*redistest.Server{
		"Single": shared, "Cluster": sharedCluster, "AOF": redistest.StartArgs(t, "--appendonly", "yes"),
	} {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			s := openURL(t, srv.URL(), Options{Logger: zap.New(core)})
			s.CheckPersistence(t.Context())
			warned := logs.FilterMessageSnippet("Redis keeps nothing on disk").All()
			if name == "AOF" {
				if logs.Len() != 0 {
					t.Errorf("log lines for a Redis with AOF: %v", logs.All())
				}
				return
			}
			lines := logs.Len()
			if name == "Cluster" {
				// and that it has no replicas (see
				// TestClusterDurabilityDefault)
				lines -= logs.FilterMessageSnippet("has a primary without replicas").Len()
			}
			if len(warned) != 1 || warned[0].Level != zapcore.WarnLevel || lines != 1 {
				t.Fatalf("want one Warn line, got %v", logs.All())
			}
			_, port, _ := strings.Cut(srv.Addr(), ":") // a one-node cluster announces no host
			if got := warned[0].ContextMap()["primaries"]; !strings.Contains(fmt.Sprint(got), ":"+port) {
				t.Errorf("primaries %v do not name %s", got, srv.Addr())
			}
		})
	}
}
