package redisstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
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
var shared, sharedCluster *redistest.Server

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
	return m.Run()
}

// onEach runs test against the single server and against the cluster.
func onEach(t *testing.T, test func(t *testing.T, srv *redistest.Server)) {
	for name, srv := range map[string]*redistest.Server{"Single": shared, "Cluster": sharedCluster} {
		t.Run(name, func(t *testing.T) { test(t, srv) })
	}
}

var prefixes atomic.Uint64

// open returns a fresh, empty store on srv, closed when t ends.
func open(t *testing.T, srv *redistest.Server, opts Options) *Store {
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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, shared, Options{}) })
}

// TestConformanceClusterPath runs the suite with the code paths used on a
// Redis Cluster (no script touches undeclared keys), on a single server.
func TestConformanceClusterPath(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, shared, Options{Cluster: true}) })
}

// TestConformanceCluster runs the suite with a cluster client against a
// one-node cluster, which enforces the cluster's rules on slots.
func TestConformanceCluster(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, sharedCluster, Options{})
		if !s.cluster {
			t.Fatal("a redis-cluster:// store is not in cluster mode")
		}
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
	unindexed, kept := newToken("alice"), newToken("alice")
	must(t, s.CreateToken(ctx, unindexed, 0))
	must(t, s.CreateToken(ctx, kept, 0))
	var dangling store.TokenHash
	rand.Read(dangling[:])

	// What crashes between two steps leave behind, made by hand.
	must(t, raw.Del(ctx, s.keys.index(unindexed.Hash)).Err())
	must(t, raw.Set(ctx, s.keys.index(dangling), ref("alice", "gone"), 0).Err())
	must(t, raw.Set(ctx, s.keys.index(store.TokenHash{1}), ref("alice", kept.ID), 0).Err()) // wrong hash
	must(t, raw.SRem(ctx, s.keys.users(), "alice").Err())
	must(t, raw.SAdd(ctx, s.keys.users(), "ghost").Err())
	const problems = 5

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
	for _, h := range []store.TokenHash{unindexed.Hash, kept.Hash} {
		if _, err := s.LookupToken(ctx, h); err != nil {
			t.Errorf("LookupToken after repair: %v", err)
		}
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
	} {
		node, got, ok := decodeEvent(s.encodeEvent(ev))
		if !ok || node != "n1" || got != ev {
			t.Errorf("round trip of %+v = %q %+v %v", ev, node, got, ok)
		}
	}
	for _, msg := range []string{"", "n1", "n1 x:y", "n1 t:zz", "n1 t:00"} {
		if _, _, ok := decodeEvent(msg); ok {
			t.Errorf("decodeEvent(%q) accepted a malformed message", msg)
		}
	}
}

func TestKeysShareSlotPerUser(t *testing.T) {
	k := keys{prefix: "tg"}
	for _, name := range []string{"alice", "we}ird", "{x}"} {
		slot := hashTag(k.user(name))
		if hashTag(k.tokens(name)) != slot || hashTag(k.used(name)) != slot {
			t.Errorf("keys of %q do not share a hash tag", name)
		}
		if got, ok := k.nameOf(k.user(name)); !ok || got != name {
			t.Errorf("nameOf(user(%q)) = %q, %v", name, got, ok)
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

func (r *recorder) all() []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) waitFor(t *testing.T, want store.Event) {
	t.Helper()
	poll(t, fmt.Sprintf("event %+v", want), func() bool { return slices.Contains(r.all(), want) })
}
