package redisstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/redisstore/clusternodes"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

func TestCRC16MatchesTheCluster(t *testing.T) {
	for _, tag := range []string{"0", "1", "u:alice", "123456789"} {
		if got, want := clusternodes.TagSlot(tag), sharded.KeySlot(t, "{"+tag+"}"); got != want {
			t.Errorf("slot of tag %q: %d, the cluster says %d", tag, got, want)
		}
	}
	if got := clusternodes.CRC16("123456789"); got != 0x31C3 { // the XMODEM check value
		t.Errorf("CRC16(123456789) = %#x, want 0x31c3", got)
	}
	for i := range 3 {
		first, last := i*clusternodes.SlotCount/3, (i+1)*clusternodes.SlotCount/3-1
		tag := tagIn([][2]int{{first, last}})
		if slot := sharded.KeySlot(t, "{"+tag+"}"); slot < first || slot > last {
			t.Errorf("tagIn(%d-%d) = %q, in slot %d", first, last, tag, slot)
		}
	}
}

// On a cluster without replicas the default waits for none, and
// CheckPersistence (at start-up) says so in one Warn line; on one with a
// replica per primary, for one.
func TestClusterDurabilityDefault(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	none := open(t, sharded, Options{Logger: zap.New(core)})
	none.CheckPersistence(t.Context())
	if warned := logs.FilterMessageSnippet("has a primary without replicas").All(); len(warned) != 1 || warned[0].Level != zapcore.WarnLevel {
		t.Errorf("want one Warn line about the missing replicas, got %v", logs.All())
	}
	if n, err := none.DurableReplicas(t.Context()); err != nil || n != 0 {
		t.Errorf("a cluster without replicas: waits for %d replicas (%v), want 0", n, err)
	}
	must(t, none.CreateUser(t.Context(), newUser("alice")))

	c := redistest.StartShardedClusterWithReplicas(t)
	s := open(t, c, Options{})
	if n, err := s.DurableReplicas(t.Context()); err != nil || n != DefaultClusterReplicas {
		t.Errorf("a cluster with a replica per primary: waits for %d replicas (%v), want %d", n, err, DefaultClusterReplicas)
	}
	explicit := open(t, c, Options{Durability: &Durability{}})
	if n, err := explicit.DurableReplicas(t.Context()); err != nil || n != 0 {
		t.Errorf("replicas 0 given: waits for %d (%v)", n, err)
	}
}

// On a cluster with replicas every write waits for a replica on every
// primary: met while they run (also after the barrier's slot moved to
// another primary), not met (a NotDurableError, the write applied) while
// one replica is frozen, whichever shard the write touched.
func TestClusterDurability(t *testing.T) {
	c := redistest.StartShardedClusterWithReplicas(t)
	s := open(t, c, Options{Durability: &Durability{Replicas: 1, Timeout: 300 * time.Millisecond}})
	ctx := t.Context()
	var toks []store.Token
	for i := range 6 { // users in several shards
		name := fmt.Sprintf("user%d", i)
		must(t, s.CreateUser(ctx, newUser(name)))
		tok := newToken(name)
		must(t, s.CreateToken(ctx, tok, 0))
		toks = append(toks, tok)
	}

	// The barrier's slot of primary 0 moves to primary 1: the next write
	// finds it redirected, reloads the slot map and waits on primary 0
	// in another of its slots.
	nodes := c.Nodes()
	tag, ok := s.tagFor(nodes[0].Addr())
	if !ok {
		t.Fatalf("no barrier tag for %s", nodes[0].Addr())
	}
	c.MoveSlots(t, nodes[1], c.KeySlot(t, s.keys.barrierKey(tag)))
	must(t, s.CreateUser(ctx, newUser("after-move")))
	if moved, _ := s.tagFor(nodes[0].Addr()); moved == tag {
		t.Errorf("the barrier tag of %s is still %q after its slot moved", nodes[0].Addr(), tag)
	}

	// A frozen replica: a write to any shard is not durable.
	frozen := c.Replicas()[2]
	frozen.Pause(t)
	_, err := s.DeleteToken(ctx, toks[0].Owner, toks[0].ID)
	var nd *store.NotDurableError
	if !errors.As(err, &nd) || !errors.Is(err, store.ErrUnavailable) || nd.Wanted != 1 {
		t.Fatalf("DeleteToken with a replica frozen: %v, want a NotDurableError", err)
	}
	if !strings.Contains(err.Error(), "applied on the primary but not durable") {
		t.Errorf("error %q does not say that the write is on the primary", err)
	}
	if _, err := s.LookupToken(ctx, toks[0].Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupToken after the undurable revoke: %v, want ErrNotFound", err)
	}
	frozen.Resume(t)
	if _, err := s.DeleteToken(ctx, toks[0].Owner, toks[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteToken again: %v, want ErrNotFound", err)
	}
	_, err = s.DeleteToken(ctx, toks[1].Owner, toks[1].ID)
	must(t, err)
}

// A primary killed (kill -9) and failed over by the cluster: every write
// that returned (durable) is on the promoted replica, the Store notices
// the new primary (it replays its journal and resets its subscribers),
// and writes work again once the killed node is back as a replica.
func TestClusterFailoverKeepsDurableWritesAndResets(t *testing.T) {
	c := redistest.StartShardedClusterWithReplicas(t)
	s := open(t, c, Options{})
	s.SetPingInterval(100 * time.Millisecond)
	ctx := t.Context()
	if n, err := s.DurableReplicas(ctx); err != nil || n != 1 {
		t.Fatalf("waits for %d replicas (%v), want 1", n, err)
	}
	rec := subscribe(t, s)
	var toks []store.Token
	for i := range 9 {
		name := fmt.Sprintf("user%d", i)
		must(t, s.CreateUser(ctx, newUser(name)))
		tok := newToken(name)
		must(t, s.CreateToken(ctx, tok, 0))
		toks = append(toks, tok)
	}
	revoked := toks[0]
	_, err := s.DeleteToken(ctx, revoked.Owner, revoked.ID)
	must(t, err)

	c.KillPrimary(t, 0)
	promoted := c.Nodes()[0].Addr()
	poll(t, "the Store noticing the new primary", func() bool { return s.PrimaryChanges() > 0 })
	rec.waitFor(t, store.Event{Kind: store.EventReset})
	if got := s.Primary(); got != promoted {
		t.Errorf("Primary = %q, want the promoted %q", got, promoted)
	}
	// The revocation was written again on the new primary (which has no
	// replica to acknowledge it yet: that does not make it fail).
	if r := s.LastReplay(); r.Replayed < 1 || r.Failed != 0 {
		t.Errorf("replay on the new primary: %+v, want the revocation replayed", r)
	}
	for _, tok := range toks[1:] {
		var err error
		for range 100 { // go-redis learns the new slot map within a bound
			if _, err = s.LookupToken(ctx, tok.Hash); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("token of %s after the failover: %v", tok.Owner, err)
		}
	}
	if _, err := s.LookupToken(ctx, revoked.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token after the failover: %v, want ErrNotFound", err)
	}

	// The promoted primary has no replica until the killed node is back:
	// writes are applied but not durable meanwhile.
	tok := newToken("user1")
	err = s.CreateToken(ctx, tok, 0)
	var nd *store.NotDurableError
	if !errors.As(err, &nd) {
		t.Errorf("a write while a primary has no replica: %v, want a NotDurableError", err)
	}
	c.RestartReplica(t, 0)
	_, err = s.DeleteToken(ctx, "user1", tok.ID)
	must(t, err)
}

func TestParseClusterNodes(t *testing.T) {
	out := `a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b1]
b1 127.0.0.1:7001@17001,host.example master - 0 0 2 connected 5461-10922 16383
r1 127.0.0.1:7003@17003 slave a1 0 0 1 connected
r2 127.0.0.1:7004@17004 slave,fail b1 0 0 2 disconnected
r3 127.0.0.1:7005@17005 slave b1 0 0 2 connected
c1 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
`
	m, err := parseClusterNodes(out, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][][2]int{"127.0.0.1:7000": {{0, 5460}}, "127.0.0.1:7001": {{5461, 10922}, {16383, 16383}},
		"host.example:7001": {{5461, 10922}, {16383, 16383}}}
	if fmt.Sprint(m.ranges) != fmt.Sprint(want) || m.least != 1 {
		t.Errorf("parsed %v, least %d; want %v, least 1", m.ranges, m.least, want)
	}
	m, err = parseClusterNodes(out+"d1 127.0.0.1:7006@17006 master - 0 0 4 connected 10923-16382\n", "")
	if err != nil || m.least != 0 {
		t.Errorf("a primary without replica: least %d (%v), want 0", m.least, err)
	}
	m, err = parseClusterNodes("a1 :7000@17000 myself,master - 0 0 1 connected 0-16383\n", "127.0.0.1:7000")
	if err != nil || len(m.ranges["127.0.0.1:7000"]) != 1 {
		t.Errorf("a cluster of one: %v (%v), want 127.0.0.1:7000 serving every slot", m.ranges, err)
	}
	if _, err := parseClusterNodes("a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected\n", ""); err == nil {
		t.Error("a map without slots accepted")
	}
}
