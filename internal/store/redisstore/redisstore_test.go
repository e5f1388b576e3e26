package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/storetest"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// shared and sharedCluster are the servers of the tests that do not stop
// theirs; each store on them gets a prefix of its own, so it starts empty.
// sharedCluster is a one-node cluster, which tests that talk to its node
// directly use; sharded is a cluster of three primaries, which the
// conformance suite and the resharding test use.
var (
	shared, sharedCluster *redistest.Server
	sharded               *redistest.ShardedCluster
)

// sharedSentinel is the Sentinel deployment of the tests that neither
// fail it over nor pause a node.
var sharedSentinel *redistest.Sentinel

func TestMain(m *testing.M) {
	os.Exit(runWithServers(m))
}

func runWithServers(m *testing.M) int {
	var stopSingle, stopCluster func()
	var err error
	if shared, stopSingle, err = redistest.StartMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopSingle()
	if sharedCluster, stopCluster, err = redistest.StartClusterMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopCluster()
	var stopSentinel func()
	if sharedSentinel, stopSentinel, err = redistest.StartSentinelMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopSentinel()
	var stopSharded func()
	if sharded, stopSharded, err = redistest.StartShardedClusterMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopSharded()
	return m.Run()
}

// onEach runs test against the single server and against the cluster.
func onEach(t *testing.T, test func(t *testing.T, srv *redistest.Server)) {
	for name, srv := range map[string]*redistest.Server{"Single": shared, "Cluster": sharedCluster} {
		t.Run(name, func(t *testing.T) { test(t, srv) })
	}
}

var prefixes atomic.Uint64

// server is a redistest.Server or ShardedCluster.
type server interface{ URL() string }

// open returns a fresh, empty store on srv, closed when t ends.
func open(t *testing.T, srv server, opts Options) *Store {
	t.Helper()
	return openURL(t, srv.URL(), opts)
}

// openURL is open with a URL of one's own.
func openURL(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("test%d", prefixes.Add(1))
	}
	s, err := Open(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTimed is open for the conformance suite: the store reads clock, and
// advancing clock moves Redis's time for the store's keys with it (see
// advanceTTLs).
func openTimed(t *testing.T, srv server, opts Options, clock *storetest.Clock) *Store {
	t.Helper()
	opts.Now = clock.Now
	s := open(t, srv, opts)
	clock.OnAdvance(func(d time.Duration) { advanceTTLs(t, s, d) })
	return s
}

// advanceTTLs makes Redis's clock for the store's keys d later: every key
// of the store that expires has d less to live, and a key whose time is
// up is deleted, as Redis would have done d later. A failure window is
// the counter's own time to live, kept by the server, so this is how the
// suite moves it without sleeping.
func advanceTTLs(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	ctx := t.Context()
	shift := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, s.keys.prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			ttl, err := c.PTTL(ctx, key).Result()
			switch {
			case err != nil:
				return err
			case ttl <= 0: // no expiry (-1), or gone (-2)
			case ttl <= d:
				err = c.Del(ctx, key).Err()
			default:
				err = c.PExpire(ctx, key, ttl-d).Err()
			}
			if err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, shift)
	case *redis.Client:
		err = shift(ctx, c)
	default:
		t.Fatalf("advanceTTLs: client %T", s.client)
	}
	if err != nil {
		t.Fatalf("advancing Redis's clock by %v: %v", d, err)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return openTimed(t, shared, Options{}, clock)
	})
}

// TestConformanceClusterPath runs the suite with the code paths used on a
// Redis Cluster (no script touches undeclared keys), on a single server.
func TestConformanceClusterPath(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return openTimed(t, shared, Options{Cluster: true}, clock)
	})
}

// TestConformanceCluster runs the suite with a cluster client against a
// cluster of three primaries, which enforces the cluster's rules on slots
// (no command or transaction across slots) and spreads a store's keys
// over three nodes, so that every operation must reach the right one and
// events published on one node reach subscribers connected to another.
// (The one-node cluster that this ran on before enforced the first only;
// it still serves the tests that talk to a node directly.)
func TestConformanceCluster(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		s := openTimed(t, sharded, Options{}, clock)
		if !s.cluster {
			t.Fatal("a redis-cluster:// store is not in cluster mode")
		}
		return s
	})
}

// TestConformanceSentinel runs the suite on a Sentinel-managed primary
// with a replica, through the Sentinel URL, every write waiting for the
// replica (the default).
func TestConformanceSentinel(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		opts := Options{Now: clock.Now, Prefix: fmt.Sprintf("test%d", prefixes.Add(1))}
		s := openURL(t, sharedSentinel.URL(), opts)
		if s.durability.Replicas != DefaultSentinelReplicas {
			t.Fatalf("a Sentinel store waits for %d replicas, want %d", s.durability.Replicas, DefaultSentinelReplicas)
		}
		clock.OnAdvance(func(d time.Duration) { advanceTTLs(t, s, d) })
		return s
	})
}

func TestOpenRejectsBadOptions(t *testing.T) {
	if _, err := Open(shared.URL(), Options{Prefix: "a{b"}); err == nil {
		t.Error("Open accepted a prefix with '{'")
	}
	if _, err := Open("memcached://h", Options{}); err == nil {
		t.Error("Open accepted a memcached URL")
	}
}

func TestEventsReachOtherNodes(t *testing.T) { onEach(t, testEventsReachOtherNodes) }

func testEventsReachOtherNodes(t *testing.T, srv *redistest.Server) {
	a := open(t, srv, Options{})
	b := open(t, srv, Options{Prefix: a.keys.prefix})
	ctx := t.Context()
	onA, onB := subscribe(t, a), subscribe(t, b)

	must(t, a.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, a.CreateToken(ctx, tok, 0))
	onB.waitFor(t, store.Event{Kind: store.EventToken, Hash: tok.Hash})

	_, err := b.UpdateUser(ctx, "alice", func(u *store.User) error { u.Disabled = true; return nil })
	must(t, err)
	onA.waitFor(t, store.Event{Kind: store.EventUser, Owner: "alice"})

	// Each node got each event once: its own synchronously, the other's
	// through Redis; a node ignores the echo of its own.
	time.Sleep(100 * time.Millisecond)
	for name, r := range map[string]*recorder{"A": onA, "B": onB} {
		if got := r.all(); len(got) != 2 {
			t.Errorf("node %s got %+v, want one token and one user event", name, got)
		}
	}
}

func TestClientKeyringDenialEventsReachOtherNodes(t *testing.T) {
	onEach(t, testClientKeyringDenialEventsReachOtherNodes)
}

func testClientKeyringDenialEventsReachOtherNodes(t *testing.T, srv *redistest.Server) {
	a := open(t, srv, Options{})
	b := open(t, srv, Options{Prefix: a.keys.prefix})
	ctx := t.Context()
	onA, onB := subscribe(t, a), subscribe(t, b)

	// Each write's event reaches A's subscriber before the write returns
	// and B's through Redis, with its ID and Until.
	check := func(what string, want store.Event) {
		t.Helper()
		if got := onA.all(); !slices.Contains(got, want) {
			t.Fatalf("after %s A got %+v, want %+v", what, got, want)
		}
		onB.waitFor(t, want)
		onA.reset()
		onB.reset()
	}
	must(t, a.CreateClient(ctx, newClient("app one")))
	check("CreateClient", store.Event{Kind: store.EventClient, ID: "app one"})
	_, err := a.UpdateClient(ctx, "app one", func(c *store.Client) error { c.Enabled = false; return nil })
	must(t, err)
	check("UpdateClient", store.Event{Kind: store.EventClient, ID: "app one"})
	_, err = a.DeleteClient(ctx, "app one")
	must(t, err)
	check("DeleteClient", store.Event{Kind: store.EventClient, ID: "app one"})
	_, err = a.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return []byte("ring"), nil })
	must(t, err)
	check("UpdateKeyring", store.Event{Kind: store.EventDocument, ID: store.DocKeyring})

	until := time.Now().UTC().Truncate(time.Microsecond).Add(time.Hour)
	must(t, a.Deny(ctx, store.Denial{JTI: "jti 1", Until: until}))
	check("Deny", store.Event{Kind: store.EventDenied, ID: "jti 1", Until: until})
	// Denying again until earlier keeps the later end, and says so.
	must(t, a.Deny(ctx, store.Denial{JTI: "jti 1", Until: until.Add(-time.Minute)}))
	check("Deny until earlier", store.Event{Kind: store.EventDenied, ID: "jti 1", Until: until})
	later := until.Add(time.Minute)
	must(t, b.Deny(ctx, store.Denial{JTI: "jti 1", Until: later}))
	if got, err := a.ListDenied(ctx); err != nil || len(got) != 1 || got[0] != (store.Denial{JTI: "jti 1", Until: later}) {
		t.Fatalf("ListDenied = %+v, %v; want jti 1 until %v", got, err, later)
	}
}

func TestDenialsEndAndArePruned(t *testing.T) { onEach(t, testDenialsEndAndArePruned) }

func testDenialsEndAndArePruned(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	raw := rawClient(t, srv)
	ctx := t.Context()
	now := time.Now()
	// Ended long ago, so pruned by the next Deny; ended just now, so not
	// listed but kept for a while (see pruneGrace); in force.
	must(t, raw.ZAdd(ctx, s.keys.denied(), redis.Z{Member: "old", Score: float64(now.Add(-time.Hour).UnixMicro())}).Err())
	must(t, s.Deny(ctx, store.Denial{JTI: "ended", Until: now.Add(-time.Second)}))
	// Nanoseconds are rounded up: the denial lasts at least as asked.
	until := now.Add(time.Hour).Truncate(time.Microsecond).Add(time.Nanosecond)
	must(t, s.Deny(ctx, store.Denial{JTI: "live", Until: until}))

	got, err := s.ListDenied(ctx)
	must(t, err)
	want := store.Denial{JTI: "live", Until: until.Truncate(time.Microsecond).Add(time.Microsecond).UTC()}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("ListDenied = %+v, want %+v", got, want)
	}
	members, err := raw.ZRange(ctx, s.keys.denied(), 0, -1).Result()
	must(t, err)
	if !slices.Equal(members, []string{"ended", "live"}) {
		t.Errorf("deny-list holds %v, want the old denial pruned", members)
	}
	// The key lives as long as its last denial (and the grace), no longer.
	ttl, err := raw.PTTL(ctx, s.keys.denied()).Result()
	must(t, err)
	if ttl < time.Hour || ttl > time.Hour+pruneGrace+time.Minute {
		t.Errorf("deny-list TTL = %v, want about an hour and the grace", ttl)
	}
}

func TestUpdateKeyringConflict(t *testing.T) { onEach(t, testUpdateKeyringConflict) }

func testUpdateKeyringConflict(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	raw := rawClient(t, srv)
	ctx := t.Context()
	on := subscribe(t, s)
	runs := 0
	// Another writer gets in before every attempt's write.
	_, err := s.UpdateDocument(ctx, store.DocKeyring, func(cur []byte) ([]byte, error) {
		runs++
		must(t, raw.Set(ctx, s.keys.document(store.DocKeyring), fmt.Sprint("theirs ", runs), 0).Err())
		return []byte("mine"), nil
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateKeyring losing every race: %v, want ErrConflict", err)
	}
	if runs != maxTxAttempts {
		t.Errorf("fn ran %d times, want %d", runs, maxTxAttempts)
	}
	if got, err := s.GetDocument(ctx, store.DocKeyring); err != nil || string(got) != fmt.Sprint("theirs ", runs) {
		t.Errorf("GetKeyring = %q, %v; want the other writer's", got, err)
	}
	if got := on.all(); len(got) != 0 {
		t.Errorf("a failed UpdateKeyring announced %+v", got)
	}
	// Without contention, the next one gets the current document.
	got, err := s.UpdateDocument(ctx, store.DocKeyring, func(cur []byte) ([]byte, error) { return append(cur, '!'), nil })
	must(t, err)
	if want := fmt.Sprint("theirs ", runs, "!"); string(got) != want {
		t.Errorf("UpdateKeyring = %q, want %q", got, want)
	}
}

func TestUpdateClientRefusesNewID(t *testing.T) {
	s := open(t, shared, Options{})
	ctx := t.Context()
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))
	on := subscribe(t, s)
	_, err := s.UpdateClient(ctx, "app", func(c *store.Client) error { c.ID = "other"; c.Name = "x"; return nil })
	if err == nil {
		t.Fatal("UpdateClient accepted a new ID")
	}
	got, err := s.GetClient(ctx, "app")
	must(t, err)
	if got.Name != c.Name {
		t.Errorf("the refused update was written: %+v", got)
	}
	if _, err := s.GetClient(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient(other) = %v, want ErrNotFound", err)
	}
	if evs := on.all(); len(evs) != 0 {
		t.Errorf("a refused UpdateClient announced %+v", evs)
	}
}

func TestLastUseHost(t *testing.T) {
	s := open(t, shared, Options{})
	raw := rawClient(t, shared)
	ctx := t.Context()
	must(t, s.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, s.CreateToken(ctx, tok, 0))
	at := time.Now().UTC()
	must(t, s.RecordLastUse(ctx, []store.LastUse{
		{Owner: "alice", TokenID: tok.ID, At: at, IP: "192.0.2.1", Host: "new.example"},
		{Owner: "alice", TokenID: tok.ID, At: at.Add(-time.Second), IP: "192.0.2.2", Host: "old.example"},
	}))
	g, err := s.LookupToken(ctx, tok.Hash)
	must(t, err)
	if !g.Token.LastUsedAt.Equal(at) || g.Token.LastUsedIP != "192.0.2.1" || g.Token.LastUsedHost != "new.example" {
		t.Errorf("last use = %v %q %q, want the newest use", g.Token.LastUsedAt, g.Token.LastUsedIP, g.Token.LastUsedHost)
	}
	// The host is not kept in the token record, and UpdateToken keeps it.
	rec, err := raw.HGet(ctx, s.keys.tokens("alice"), tok.ID).Result()
	must(t, err)
	if strings.Contains(rec, "new.example") {
		t.Errorf("token record holds the last use: %s", rec)
	}
	up, err := s.UpdateToken(ctx, "alice", tok.ID, func(t *store.Token) error { t.Label = "x"; return nil })
	must(t, err)
	if got, _ := s.GetToken(ctx, "alice", tok.ID); got.LastUsedHost != "new.example" || up.LastUsedHost != "new.example" {
		t.Errorf("after UpdateToken the host is %q (returned %q)", got.LastUsedHost, up.LastUsedHost)
	}
	// A value stored before hosts were recorded reads with no host.
	for v, want := range map[string][3]string{
		stamp(at) + " 192.0.2.1":           {"192.0.2.1", ""},
		stamp(at) + "  h.example":          {"", "h.example"},
		stamp(at) + " ::1 host with space": {"::1", "host with space"},
	} {
		gotAt, ip, host, err := parseLastUse(v)
		if err != nil || !gotAt.Equal(at) || ip != want[0] || host != want[1] {
			t.Errorf("parseLastUse(%q) = %v %q %q %v", v, gotAt, ip, host, err)
		}
	}
}

func TestServerDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	// Without retries a call to the stopped server fails at once.
	url := srv.URL() + "?max_retries=-1"
	a := openURL(t, url, Options{})
	b := openURL(t, url, Options{Prefix: a.keys.prefix})
	onB := subscribe(t, b)
	ctx := t.Context()
	must(t, a.CreateUser(ctx, newUser("alice")))

	srv.Stop()
	_, err := a.GetUser(ctx, "alice")
	assertOutage(t, "GetUser", err)
	_, err = a.LookupToken(ctx, store.TokenHash{})
	assertOutage(t, "LookupToken", err)
	assertOutage(t, "CreateUser", a.CreateUser(ctx, newUser("bob")))
	_, err = a.CountFailure(ctx, "k", time.Minute)
	assertOutage(t, "CountFailure", err)

	srv.Restart(t) // empty again
	poll(t, "the store to answer again", func() bool {
		_, err := a.GetUser(ctx, "alice")
		return errors.Is(err, store.ErrNotFound)
	})
	must(t, a.CreateUser(ctx, newUser("alice")))
	onB.waitFor(t, store.Event{Kind: store.EventReset})
	if got := onB.all(); slices.ContainsFunc(got, func(e store.Event) bool { return e.Kind != store.EventReset }) {
		t.Errorf("B got %+v, want only resets", got)
	}

	// B's restored subscription carries A's events again.
	tok := newToken("alice")
	must(t, a.CreateToken(ctx, tok, 0))
	onB.waitFor(t, store.Event{Kind: store.EventToken, Hash: tok.Hash})
}

// assertOutage checks that a call to a stopped server failed with an error
// that no caller could take for an answer.
func assertOutage(t *testing.T, call string, err error) {
	t.Helper()
	for _, sentinel := range []error{nil, store.ErrNotFound, store.ErrUserExists, store.ErrLabelTaken, store.ErrTokenLimit} {
		if errors.Is(err, sentinel) {
			t.Fatalf("%s with the server down: error %v, want a store failure", call, err)
		}
	}
}

// TestResetAfterKilledSubscription breaks only the subscription's
// connection: the server stays up and go-redis must not hide the gap.
func TestResetAfterKilledSubscription(t *testing.T) { onEach(t, testResetAfterKilledSubscription) }

func testResetAfterKilledSubscription(t *testing.T, srv *redistest.Server) {
	a := open(t, srv, Options{})
	b := open(t, srv, Options{Prefix: a.keys.prefix})
	onB := subscribe(t, b)
	ctx := t.Context()
	must(t, rawClient(t, srv).ClientKillByFilter(ctx, "TYPE", "pubsub").Err())
	onB.waitFor(t, store.Event{Kind: store.EventReset})

	must(t, a.CreateUser(ctx, newUser("alice")))
	_, err := a.UpdateUser(ctx, "alice", func(*store.User) error { return nil })
	must(t, err)
	onB.waitFor(t, store.Event{Kind: store.EventUser, Owner: "alice"})
}

func TestSubscribeFailsWhileServerDown(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{})
	srv.Stop()
	r := &recorder{}
	if err := s.Subscribe(t.Context(), r.add); err == nil {
		t.Fatal("Subscribe succeeded with the server down")
	}
}

func TestCheckRepairs(t *testing.T) { onEach(t, testCheckRepairs) }

func testCheckRepairs(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	raw := rawClient(t, srv)
	ctx := t.Context()
	must(t, s.CreateUser(ctx, newUser("alice")))
	must(t, s.CreateUser(ctx, newUser("bob")))
	unindexed, kept := newToken("alice"), newToken("alice")
	must(t, s.CreateToken(ctx, unindexed, 0))
	must(t, s.CreateToken(ctx, kept, 0))
	var dangling store.TokenHash
	rand.Read(dangling[:])

	// What crashes between two steps leave behind, made by hand. A record
	// without its index or list entry is a create that failed or a delete
	// that was cut short: either way repair finishes the delete, so that a
	// revoked token or a deleted user never comes back.
	must(t, raw.Del(ctx, s.keys.index(unindexed.Hash)).Err())
	must(t, raw.Set(ctx, s.keys.index(dangling), ref("alice", "gone"), 0).Err())
	must(t, raw.Set(ctx, s.keys.index(store.TokenHash{1}), ref("alice", kept.ID), 0).Err()) // wrong hash
	must(t, raw.SRem(ctx, s.keys.users(), "bob").Err())
	must(t, raw.SAdd(ctx, s.keys.users(), "ghost").Err())
	must(t, s.CreateClient(ctx, newClient("app")))
	must(t, s.CreateClient(ctx, newClient("gone-app")))
	must(t, raw.SRem(ctx, s.keys.clients(), "gone-app").Err())
	must(t, raw.SAdd(ctx, s.keys.clients(), "ghost-app").Err())
	const problems = 7

	rep, err := s.Check(ctx, false)
	must(t, err)
	if len(rep.Problems) != problems || rep.Repaired != 0 {
		t.Fatalf("Check(false) = %+v, want %d problems, none repaired", rep, problems)
	}
	if n, _ := raw.Exists(ctx, s.keys.index(dangling)).Result(); n != 1 {
		t.Fatal("Check without repair changed the store")
	}

	rep, err = s.Check(ctx, true)
	must(t, err)
	if len(rep.Problems) != problems || rep.Repaired != problems {
		t.Fatalf("Check(true) = %+v, want %d problems, all repaired", rep, problems)
	}
	rep, err = s.Check(ctx, false)
	must(t, err)
	if len(rep.Problems) != 0 {
		t.Fatalf("Check after repair = %+v, want no problems", rep)
	}
	if _, err := s.LookupToken(ctx, kept.Hash); err != nil {
		t.Errorf("LookupToken of the intact token after repair: %v", err)
	}
	if _, err := s.GetToken(ctx, "alice", unindexed.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the token without index survived the repair: %v", err)
	}
	for _, h := range []store.TokenHash{dangling, {1}} {
		if n, _ := raw.Exists(ctx, s.keys.index(h)).Result(); n != 0 {
			t.Errorf("dangling index %s survived the repair", h)
		}
	}
	users, err := s.ListUsers(ctx)
	must(t, err)
	if len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("ListUsers after repair = %+v, want alice only", users)
	}
	if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the user missing from the set survived the repair: %v", err)
	}
	clients, err := s.ListClients(ctx)
	must(t, err)
	if len(clients) != 1 || clients[0].ID != "app" {
		t.Errorf("ListClients after repair = %+v, want app only", clients)
	}
}

func TestDanglingIndexDoesNotGrant(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(fmt.Sprintf("cluster=%v", cluster), func(t *testing.T) {
			s := open(t, shared, Options{Cluster: cluster})
			raw := rawClient(t, shared)
			ctx := t.Context()
			must(t, s.CreateUser(ctx, newUser("alice")))
			tok := newToken("alice")
			must(t, s.CreateToken(ctx, tok, 0))
			other := newToken("alice")
			// An index for other's hash that leads to tok (whose hash differs),
			// and one that leads to a token that does not exist.
			must(t, raw.Set(ctx, s.keys.index(other.Hash), ref("alice", tok.ID), 0).Err())
			var h store.TokenHash
			rand.Read(h[:])
			must(t, raw.Set(ctx, s.keys.index(h), ref("alice", "gone"), 0).Err())
			for _, h := range []store.TokenHash{other.Hash, h} {
				if _, err := s.LookupToken(ctx, h); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("LookupToken through a dangling index: %v, want ErrNotFound", err)
				}
			}
			// Creating the token the dangling index is for replaces it.
			must(t, s.CreateToken(ctx, other, 0))
			g, err := s.LookupToken(ctx, other.Hash)
			must(t, err)
			if g.Token.ID != other.ID {
				t.Errorf("LookupToken = %s, want %s", g.Token.ID, other.ID)
			}
		})
	}
}

func TestCreateTokenWithTakenHashStoresNothing(t *testing.T) {
	s := open(t, shared, Options{})
	ctx := t.Context()
	must(t, s.CreateUser(ctx, newUser("alice")))
	first := newToken("alice")
	must(t, s.CreateToken(ctx, first, 0))
	dup := newToken("alice")
	dup.Hash = first.Hash
	err := s.CreateToken(ctx, dup, 0)
	if err == nil {
		t.Fatal("CreateToken accepted a hash that another token has")
	}
	assertOutage(t, "CreateToken with a taken hash", err) // a failure, not a sentinel
	if _, err := s.GetToken(ctx, "alice", dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused token's record is stored (GetToken: %v)", err)
	}
	g, err := s.LookupToken(ctx, first.Hash)
	must(t, err)
	if g.Token.ID != first.ID {
		t.Errorf("LookupToken = %s, want %s", g.Token.ID, first.ID)
	}
}

func TestOpsAndLookupRoundTrips(t *testing.T) { onEach(t, testOpsAndLookupRoundTrips) }

func testOpsAndLookupRoundTrips(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	// One command on a single server; on a cluster a GET, then MULTI, two
	// HGETs, a GET and EXEC.
	wantLookup := uint64(1)
	if s.cluster {
		wantLookup = 6
	}
	ctx := t.Context()
	before := s.Ops()
	must(t, s.CreateUser(ctx, newUser("alice")))
	if s.Ops() <= before {
		t.Fatalf("Ops did not grow: %d -> %d", before, s.Ops())
	}
	tok := newToken("alice")
	must(t, s.CreateToken(ctx, tok, 0))
	var missing store.TokenHash
	rand.Read(missing[:])
	// The first run of a script may need a second command to load it.
	_, _ = s.LookupToken(ctx, tok.Hash)
	must(t, s.RecordLastUse(ctx, []store.LastUse{{Owner: "alice", TokenID: tok.ID, At: time.Now()}}))

	for name, h := range map[string]store.TokenHash{"hit": tok.Hash, "miss": missing} {
		before := s.Ops()
		_, err := s.LookupToken(ctx, h)
		if name == "miss" && !errors.Is(err, store.ErrNotFound) || name == "hit" && err != nil {
			t.Fatalf("LookupToken (%s): %v", name, err)
		}
		want := wantLookup
		if name == "miss" {
			want = 1 // no index: nothing more to read
		}
		if d := s.Ops() - before; d != want {
			t.Errorf("LookupToken (%s) sent %d commands, want %d", name, d, want)
		}
	}

	// The breaker's probe is not the store's work for requests.
	before, trips := s.Ops(), s.RoundTrips()
	must(t, s.Ping(ctx))
	if s.Ops() != before || s.RoundTrips() != trips {
		t.Errorf("Ping counted: ops %d -> %d, round trips %d -> %d", before, s.Ops(), trips, s.RoundTrips())
	}

	before = s.Ops()
	uses := make([]store.LastUse, 5)
	for i := range uses {
		uses[i] = store.LastUse{Owner: "alice", TokenID: tok.ID, At: time.Now().Add(time.Duration(i) * time.Second)}
	}
	must(t, s.RecordLastUse(ctx, uses))
	if d := s.Ops() - before; d != uint64(len(uses)) {
		t.Errorf("RecordLastUse of %d sent %d commands, want one script call each", len(uses), d)
	}
}

func TestEventEncoding(t *testing.T) {
	s := &Store{node: "n1"}
	var h store.TokenHash
	rand.Read(h[:])
	for _, ev := range []store.Event{
		{Kind: store.EventToken, Hash: h},
		{Kind: store.EventUser, Owner: "alice"},
		{Kind: store.EventUser, Owner: "name with spaces"},
		{Kind: store.EventClient, ID: "app"},
		{Kind: store.EventClient, ID: "id with spaces"},
		{Kind: store.EventDocument, ID: store.DocKeyring},
		{Kind: store.EventDenied, ID: "jti 1", Until: time.Now().UTC().Truncate(time.Microsecond)},
		{Kind: store.EventDenied, ID: "", Until: time.UnixMicro(-1).UTC()},
	} {
		node, got, ok := decodeEvent(s.encodeEvent(ev))
		if !ok || node != "n1" || got != ev {
			t.Errorf("round trip of %+v = %q %+v %v", ev, node, got, ok)
		}
	}
	for _, msg := range []string{"", "n1", "n1 x:y", "n1 t:zz", "n1 t:00", "n1 k:", "n1 d:12", "n1 d:x y", "n1 d: y"} {
		if _, _, ok := decodeEvent(msg); ok {
			t.Errorf("decodeEvent(%q) accepted a malformed message", msg)
		}
	}
}

func TestKeysShareSlotPerUser(t *testing.T) {
	k := keys{prefix: "tg"}
	for _, name := range []string{"alice", "we}ird", "{x}"} {
		slot := hashTag(k.user(name))
		if hashTag(k.tokens(name)) != slot || hashTag(k.used(name)) != slot || hashTag(k.addrs(name)) != slot {
			t.Errorf("keys of %q do not share a hash tag", name)
		}
		if got, ok := k.nameOf(k.user(name)); !ok || got != name {
			t.Errorf("nameOf(user(%q)) = %q, %v", name, got, ok)
		}
	}
	for _, id := range []string{"app", "we}ird", "x}:client", "{y}"} {
		if got, ok := k.clientOf(k.client(id)); !ok || got != id {
			t.Errorf("clientOf(client(%q)) = %q, %v", id, got, ok)
		}
		if hashTag(k.client(id)) == hashTag(k.clients()) {
			t.Errorf("client %q shares a slot with the client set", id)
		}
	}
	h := store.TokenHash{0xab}
	if got, ok := k.hashOf(k.index(h)); !ok || got != h {
		t.Errorf("hashOf(index) = %v, %v", got, ok)
	}
	if escapeGlob("a*b?[c]") != `a\*b\?\[c\]` {
		t.Errorf("escapeGlob = %q", escapeGlob("a*b?[c]"))
	}
}

// hashTag returns the part of key that Redis Cluster hashes.
func hashTag(key string) string {
	for i := range len(key) {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

// ---- helpers ----

// rawClient connects to srv, for commands that a crash's leftovers are
// made with. (On the one-node cluster every slot is on that node.)
func rawClient(t *testing.T, srv *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newUser(name string) store.User {
	return store.User{Name: name, TokenLogin: true, CreatedAt: time.Now().UTC()}
}

func newToken(owner string) store.Token {
	t := store.Token{Owner: owner, Kind: store.KindPAT, Enabled: true, CreatedAt: time.Now().UTC()}
	rand.Read(t.Hash[:])
	t.ID = t.Hash.String()[:12]
	return t
}

func newClient(id string) store.Client {
	at := time.Now().UTC().Truncate(time.Microsecond)
	c := store.Client{ID: id, Name: "client " + id, Enabled: true, CreatedAt: at, UpdatedAt: at}
	rand.Read(c.SecretHash[:])
	return c
}

// poll waits up to 5s for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder collects the events of one subscription.
type recorder struct {
	mu     sync.Mutex
	events []store.Event
}

func subscribe(t *testing.T, s *Store) *recorder {
	t.Helper()
	r := &recorder{}
	must(t, s.Subscribe(t.Context(), r.add))
	return r
}

func (r *recorder) add(e store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

func (r *recorder) all() []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) waitFor(t *testing.T, want store.Event) {
	t.Helper()
	poll(t, fmt.Sprintf("event %+v", want), func() bool { return slices.Contains(r.all(), want) })
}

// TestFailedUndoIsReported: when the undo of a partly failed write fails
// too (here the server is gone), the caller gets both errors and the
// command that repairs the store, instead of the undo's error being
// dropped.
func TestFailedUndoIsReported(t *testing.T) {
	srv := redistest.Start(t)
	s := openURL(t, srv.URL()+"?max_retries=-1", Options{})
	ctx := t.Context()
	write := errors.New("the write's own failure")
	if err := undone(ctx, write, func(uctx context.Context) error { return s.relinkUser(uctx, "alice", nil) }); err != write {
		t.Fatalf("an undo that worked changed the error: %v", err)
	}
	if err := undone(ctx, write, nil); err != write {
		t.Fatalf("nothing to undo changed the error: %v", err)
	}
	srv.Stop()
	err := undone(ctx, write, func(uctx context.Context) error { return s.relinkUser(uctx, "alice", nil) })
	if !errors.Is(err, write) {
		t.Fatalf("the write's error is lost: %v", err)
	}
	if err == write || !strings.Contains(err.Error(), "tokengate store check --repair") {
		t.Fatalf("the failed undo is not reported with the repair command: %v", err)
	}
}

// A session's index expires with the session and the user's hash with the
// latest one; a sign-in prunes the fields of expired sessions, so the hash
// does not grow with sessions nobody ends.
func TestSessionKeysExpireAndArePruned(t *testing.T) {
	onEach(t, func(t *testing.T, srv *redistest.Server) {
		clock := storetest.NewClock()
		s := openTimed(t, srv, Options{}, clock)
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("alice")))
		session := func(life time.Duration) store.Session {
			var id store.TokenHash
			rand.Read(id[:])
			at := clock.Now()
			sess := store.Session{ID: id, User: "alice", CSRF: "x", CreatedAt: at, SeenAt: at, ExpiresAt: at.Add(life)}
			must(t, s.CreateSession(ctx, sess))
			return sess
		}
		short, long := session(time.Minute), session(time.Hour)
		for key, max := range map[string]time.Duration{
			s.keys.sessionIndex(short.ID): time.Minute,
			s.keys.sessionIndex(long.ID):  time.Hour,
			s.keys.sessions("alice"):      time.Hour,
		} {
			ttl, err := s.client.PTTL(ctx, key).Result()
			must(t, err)
			if ttl <= max-10*time.Second || ttl > max {
				t.Errorf("%s expires in %v, want about %v", key, ttl, max)
			}
		}
		clock.Advance(2 * time.Minute)
		session(time.Hour)
		if n, err := s.client.HLen(ctx, s.keys.sessions("alice")).Result(); err != nil || n != 2 {
			t.Fatalf("the user's hash holds %d sessions (%v), want the 2 live ones", n, err)
		}
	})
}

// A write whose replica does not acknowledge it in time (the replica is
// frozen) is applied on the primary but answered with a NotDurableError,
// which is ErrUnavailable and not "unreachable"; once the replica is back
// the same write succeeds.
func TestDurabilityNotMet(t *testing.T) {
	sen := redistest.StartSentinel(t)
	s := openURL(t, sen.URL(), Options{Durability: &Durability{Replicas: 1, Timeout: 200 * time.Millisecond}})
	ctx := t.Context()
	must(t, s.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, s.CreateToken(ctx, tok, 0))

	sen.Replica().Pause(t)
	_, err := s.DeleteToken(ctx, "alice", tok.ID)
	var nd *store.NotDurableError
	if !errors.As(err, &nd) || !errors.Is(err, store.ErrUnavailable) || nd.Acked != 0 || nd.Wanted != 1 {
		t.Fatalf("DeleteToken with the replica frozen: %v, want a NotDurableError", err)
	}
	if s.Unreachable(err) {
		t.Error("a write that was not durable counts as the store being unreachable")
	}
	if !strings.Contains(err.Error(), "applied on the primary but not durable") {
		t.Errorf("error %q does not say that the write is on the primary", err)
	}
	// The primary has it: the token is revoked.
	if _, err := s.LookupToken(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupToken after the undurable revoke: %v, want ErrNotFound", err)
	}
	sen.Replica().Resume(t)
	// The client's retry: the token is gone, the user can be deleted and
	// that is durable.
	if _, err := s.DeleteToken(ctx, "alice", tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteToken again: %v, want ErrNotFound", err)
	}
	must(t, s.DeleteUser(ctx, "alice"))

	off := openURL(t, sen.URL(), Options{Prefix: s.keys.prefix, Durability: &Durability{}})
	sen.Replica().Pause(t)
	defer sen.Replica().Resume(t)
	must(t, off.CreateUser(ctx, newUser("bob"))) // replicas 0: no wait
}

// After a failover the Store talks to the new primary, finds everything
// it wrote durably there, and resets its subscribers once.
func TestFailoverKeepsDurableWritesAndResets(t *testing.T) {
	sen := redistest.StartSentinel(t)
	s := openURL(t, sen.URL(), Options{})
	ctx := t.Context()
	rec := subscribe(t, s)
	must(t, s.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, s.CreateToken(ctx, tok, 0))
	if got, want := s.Primary(), sen.Primary().Addr(); got != want {
		t.Fatalf("Primary = %q, want %q", got, want)
	}

	sen.Failover(t)
	var err error
	for range 100 { // the client learns of the new primary within a bound
		if _, err = s.LookupToken(ctx, tok.Hash); err == nil && s.Primary() == sen.Primary().Addr() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || s.Primary() != sen.Primary().Addr() {
		t.Fatalf("after the failover: lookup %v, primary %q, want %q", err, s.Primary(), sen.Primary().Addr())
	}
	var revoked error
	for range 100 { // writes on the old primary's connections may fail until they are dropped
		if _, revoked = s.DeleteToken(ctx, "alice", tok.ID); revoked == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, revoked)
	rec.waitFor(t, store.Event{Kind: store.EventReset})
	if s.PrimaryChanges() == 0 {
		t.Error("the Store did not notice the new primary")
	}
}

// The journal writes the recent revocations again on a new primary: a
// revoke (and a switch-off, a deletion, a changed password) that the new
// primary lacks, as after a failover that lost it, is applied again, and
// nothing that gives access (a create) is; then the subscribers are reset.
func TestReplayAfterNewPrimary(t *testing.T) {
	s := openURL(t, sharedSentinel.URL(), Options{})
	// behind is a client of the same keys that does not journal: it puts
	// back what the failover "lost".
	behind := openURL(t, sharedSentinel.URL(), Options{Prefix: s.keys.prefix, Durability: &Durability{}})
	ctx := t.Context()
	rec := subscribe(t, s)
	must(t, s.CreateUser(ctx, newUser("alice")))
	must(t, s.CreateUser(ctx, newUser("bob")))
	revoked, off, kept := newToken("alice"), newToken("alice"), newToken("alice")
	for _, tok := range []store.Token{revoked, off, kept} {
		must(t, s.CreateToken(ctx, tok, 0))
	}
	_, err := s.DeleteToken(ctx, "alice", revoked.ID)
	must(t, err)
	_, err = s.UpdateToken(ctx, "alice", off.ID, func(t *store.Token) error { t.Enabled = false; return nil })
	must(t, err)
	_, err = s.UpdateUser(ctx, "bob", func(u *store.User) error { u.Disabled = true; return nil })
	must(t, err)

	// The "lost" writes: the revoked token is back, the others on again.
	must(t, behind.CreateToken(ctx, revoked, 0))
	_, err = behind.UpdateToken(ctx, "alice", off.ID, func(t *store.Token) error { t.Enabled = true; return nil })
	must(t, err)
	_, err = behind.UpdateUser(ctx, "bob", func(u *store.User) error { u.Disabled = false; return nil })
	must(t, err)

	s.onNewPrimary("old:1", "new:1")
	rec.waitFor(t, store.Event{Kind: store.EventReset})
	if r := s.LastReplay(); r.Failed != 0 || r.Replayed != 3 {
		t.Fatalf("replay: %+v, want 3 writes replayed", r)
	}
	if _, err := s.LookupToken(ctx, revoked.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token after the replay: %v, want ErrNotFound", err)
	}
	if tok, err := s.GetToken(ctx, "alice", off.ID); err != nil || tok.Enabled {
		t.Errorf("the switched-off token after the replay: enabled %v, %v", tok.Enabled, err)
	}
	if u, err := s.GetUser(ctx, "bob"); err != nil || !u.Disabled {
		t.Errorf("the disabled user after the replay: disabled %v, %v", u.Disabled, err)
	}
	if _, err := s.LookupToken(ctx, kept.Hash); err != nil {
		t.Errorf("a token never revoked after the replay: %v", err)
	}
}

// A rotation that a failover lost is made again on the new primary while
// the token still has the secret it replaced: the old secret ends as it
// was told to, the new one works.
func TestReplayRotation(t *testing.T) {
	s := openURL(t, sharedSentinel.URL(), Options{})
	behind := openURL(t, sharedSentinel.URL(), Options{Prefix: s.keys.prefix, Durability: &Durability{}})
	ctx := t.Context()
	rec := subscribe(t, s)
	must(t, s.CreateUser(ctx, newUser("alice")))
	tok := newToken("alice")
	must(t, s.CreateToken(ctx, tok, 0))
	next := newToken("alice").Hash
	now := time.Now()
	_, err := s.RotateToken(ctx, "alice", tok.ID, next, now, now, time.Time{})
	must(t, err)

	// The "lost" rotation: the token is back with its first secret.
	_, err = behind.DeleteToken(ctx, "alice", tok.ID)
	must(t, err)
	must(t, behind.CreateToken(ctx, tok, 0))

	s.onNewPrimary("old:1", "new:1")
	rec.waitFor(t, store.Event{Kind: store.EventReset})
	if r := s.LastReplay(); r.Failed != 0 || r.Replayed != 1 {
		t.Fatalf("replay: %+v, want 1 write replayed", r)
	}
	if _, err := s.LookupToken(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the replaced secret after the replay: %v, want ErrNotFound", err)
	}
	if g, err := s.LookupToken(ctx, next); err != nil || g.Token.ID != tok.ID {
		t.Errorf("the new secret after the replay: %v", err)
	}
}

// TestUpdateTokenSeesLastUseWrittenMeanwhile: a last use written between
// UpdateToken's read and its write runs fn again on the newer use (the
// dormancy rule decides on LastUsedAt inside fn).
func TestUpdateTokenSeesLastUseWrittenMeanwhile(t *testing.T) {
	s := open(t, shared, Options{})
	other := open(t, shared, Options{Prefix: s.keys.prefix}) // another node
	ctx := t.Context()
	must(t, s.CreateUser(ctx, newUser("dora")))
	tok := newToken("dora")
	must(t, s.CreateToken(ctx, tok, 0))
	used := time.Now().UTC().Truncate(time.Microsecond)
	var seen []time.Time
	got, err := s.UpdateToken(ctx, "dora", tok.ID, func(tk *store.Token) error {
		seen = append(seen, tk.LastUsedAt)
		if len(seen) == 1 {
			must(t, other.RecordLastUse(ctx, []store.LastUse{{Owner: "dora", TokenID: tok.ID, At: used, IP: "192.0.2.7"}}))
		}
		tk.Enabled = !tk.LastUsedAt.IsZero() // switch off only if never used
		return nil
	})
	must(t, err)
	if len(seen) != 2 || !seen[0].IsZero() || !seen[1].Equal(used) {
		t.Fatalf("fn saw last uses %v, want the zero time then %v", seen, used)
	}
	if !got.Enabled {
		t.Errorf("UpdateToken decided on the stale last use: %+v", got)
	}
}

// TestRecentAddressesMalformed: a recent-addresses value that is not what
// the last-use script writes (an empty string, a line without a space, a
// bad stamp, a line without an address) neither makes the token
// unreadable (so it can still be listed, updated and revoked) nor stays:
// the next use's merge drops what it cannot read, and keeps the rest (of
// two lines of one address, the newer).
func TestRecentAddressesMalformed(t *testing.T) { onEach(t, testRecentAddressesMalformed) }

func testRecentAddressesMalformed(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	raw := rawClient(t, srv)
	ctx := t.Context()
	name := "malformed" + strings.ReplaceAll(t.Name(), "/", "")
	must(t, s.CreateUser(ctx, newUser(name)))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good := store.AddressUse{IP: "2001:db8::1", LastUsedAt: at, Host: "a.example"}
	for _, v := range []string{
		"",
		"garbage",
		"zzzz " + addressLine(good),
		stamp(at.Add(time.Hour)) + " ",
		stamp(at.Add(time.Hour)),
		"2026-03-01 192.0.2.9 x\n" + addressLine(good),
		"\n\n" + addressLine(good) + "\n\n9999999999999999999999999999999 192.0.2.8",
		addressLine(store.AddressUse{IP: good.IP, LastUsedAt: at.Add(-time.Hour), Host: "old"}) + "\n" + addressLine(good),
	} {
		tok := newToken(name)
		must(t, s.CreateToken(ctx, tok, 0))
		must(t, raw.HSet(ctx, s.keys.addrs(name), tok.ID, v).Err())
		want := []store.AddressUse(nil)
		if slices.Contains(strings.Split(v, "\n"), addressLine(good)) {
			want = []store.AddressUse{good}
		}
		got, err := s.GetToken(ctx, name, tok.ID)
		if err != nil || !slices.Equal(got.RecentAddresses, want) {
			t.Errorf("stored %q: GetToken = %v, %v; want %v", v, got.RecentAddresses, err, want)
		}
		if _, err := s.ListTokens(ctx, name); err != nil {
			t.Errorf("stored %q: ListTokens: %v", v, err)
		}
		use := store.AddressUse{IP: "192.0.2.1", LastUsedAt: at.Add(time.Minute), Host: "b.example"}
		must(t, s.RecordLastUse(ctx, []store.LastUse{{Owner: name, TokenID: tok.ID, At: use.LastUsedAt, IP: use.IP, Host: use.Host}}))
		stored, err := raw.HGet(ctx, s.keys.addrs(name), tok.ID).Result()
		must(t, err)
		wantStored := recentAddresses(append([]store.AddressUse{use}, want...))
		if stored != wantStored {
			t.Errorf("stored %q, after a use: %q, want %q", v, stored, wantStored)
		}
		if _, err := s.DeleteToken(ctx, name, tok.ID); err != nil {
			t.Errorf("stored %q: DeleteToken: %v", v, err)
		}
	}
}

// TestLastUseMalformed: a damaged last-use value (not a stamp, an IP and
// a host) does not make its token unreadable (so unlistable and
// unrevocable): it reads as never used, and the next use replaces it,
// however it compares with the use's stamp.
func TestLastUseMalformed(t *testing.T) { onEach(t, testLastUseMalformed) }

func testLastUseMalformed(t *testing.T, srv *redistest.Server) {
	s := open(t, srv, Options{})
	raw := rawClient(t, srv)
	ctx := t.Context()
	name := "lastuse" + strings.ReplaceAll(t.Name(), "/", "")
	must(t, s.CreateUser(ctx, newUser(name)))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"garbage", "zzzz 192.0.2.1 a.example", "2026-03-01 192.0.2.1", "9999 x"} {
		tok := newToken(name)
		must(t, s.CreateToken(ctx, tok, 0))
		must(t, raw.HSet(ctx, s.keys.used(name), tok.ID, v).Err())
		got, err := s.GetToken(ctx, name, tok.ID)
		if err != nil || !got.LastUsedAt.IsZero() {
			t.Errorf("stored %q: GetToken = %v, %v; want the token, never used", v, got.LastUsedAt, err)
		}
		if _, err := s.ListTokens(ctx, name); err != nil {
			t.Errorf("stored %q: ListTokens: %v", v, err)
		}
		must(t, s.RecordLastUse(ctx, []store.LastUse{{Owner: name, TokenID: tok.ID, At: at, IP: "192.0.2.7", Host: "b.example"}}))
		got, err = s.GetToken(ctx, name, tok.ID)
		if err != nil || !got.LastUsedAt.Equal(at) || got.LastUsedIP != "192.0.2.7" {
			t.Errorf("stored %q, after a use: %v from %q, %v; want the use", v, got.LastUsedAt, got.LastUsedIP, err)
		}
		if _, err := s.DeleteToken(ctx, name, tok.ID); err != nil {
			t.Errorf("stored %q: DeleteToken: %v", v, err)
		}
	}
}
