package invalidate_test

import (
	"context"
	"crypto/sha256"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

const (
	clientX = "tgc_000000000000000a"
	clientY = "tgc_000000000000000b"
)

// newEntries returns the cached entries, by name.
func newEntries() map[string]*decision.Decision {
	return map[string]*decision.Decision{
		"alice pat":       {Owner: "alice", User: "alice", TokenID: "t1", Kind: store.KindPAT},
		"bob pat":         {Owner: "bob", User: "bob", TokenID: "t2", Kind: store.KindPAT},
		"client x jti-1":  {Owner: accesstoken.OwnerPrefix + clientX, User: clientX, TokenID: "jti-1", Kind: accesstoken.Kind},
		"client y jti-2":  {Owner: accesstoken.OwnerPrefix + clientY, User: clientY, TokenID: "jti-2", Kind: accesstoken.Kind},
		"carol pat jti-1": {Owner: "carol", User: "carol", TokenID: "jti-1", Kind: store.KindPAT},
	}
}

var entryNames = slices.Sorted(maps.Keys(newEntries()))

func hashOf(name string) [32]byte { return sha256.Sum256([]byte(name)) }

var grant = acl.Grant{User: "bob", Action: "use", Resource: "ws:::gen-ws-token"}

// fixture is a node's caches, each holding something the store has since
// changed behind their back (nothing is subscribed), so that a target
// that is dropped shows it by reading the new state.
type fixture struct {
	t       *testing.T
	now     time.Time
	targets invalidate.Targets
	newKid  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The store ends denials by the wall clock.
	now := time.Now()
	clk := func() time.Time { return now }
	f := &fixture{t: t, now: now, targets: invalidate.Targets{
		Cache: cache.New(cache.Options{Now: clk}), Clients: oauthclient.NewTable(st),
		Denied: accesstoken.NewDenyList(st), Keys: keyring.NewHolder(st, keyring.Policy{}, "", 0, clk), ACL: acl.New(st),
	}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	c := f.targets.Cache
	for name, e := range newEntries() {
		if !c.Fill(hashOf(name), e, c.Generation()) {
			t.Fatal("Fill refused")
		}
	}

	must(st.CreateClient(ctx, store.Client{ID: clientX, Name: "x", Enabled: true, CreatedAt: now, UpdatedAt: now}))
	f.clientEnabled() // cached as enabled
	_, err = st.UpdateClient(ctx, clientX, func(c *store.Client) error { c.Enabled = false; return nil })
	must(err)

	f.denied("jti-0") // loaded, without jti-0
	must(st.Deny(ctx, store.Denial{JTI: "jti-0", Until: now.Add(time.Hour)}))

	f.kid() // creates the keyring (a holder keeps only what it read)
	f.kid() // the first key, kept
	ks, err := keyring.NewHolder(st, keyring.Policy{}, "", 0, clk).Update(ctx, func(d *keyring.Document) error {
		_, err := d.Rotate(keyring.ModeImmediate, keyring.Policy{}, now)
		return err
	})
	must(err)
	f.newKid = ks.Signer().ID

	f.allowed() // loaded, without the grant
	_, err = acl.New(st).Grant(ctx, grant)
	must(err)

	// Every target is now stale.
	if got := f.observe(); got.dropped != (dropped{}) {
		t.Fatalf("a target is not caching: %+v", got)
	}
	return f
}

func (f *fixture) clientEnabled() bool {
	f.t.Helper()
	c, err := f.targets.Clients.Get(context.Background(), clientX)
	if err != nil || c == nil {
		f.t.Fatalf("client table: %v, %v", c, err)
	}
	return c.Enabled
}

func (f *fixture) denied(jti string) bool {
	f.t.Helper()
	ok, err := f.targets.Denied.Denied(context.Background(), jti, f.now)
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

func (f *fixture) kid() string {
	f.t.Helper()
	ks, err := f.targets.Keys.Get(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return ks.Signer().ID
}

func (f *fixture) allowed() bool {
	f.t.Helper()
	ok, err := f.targets.ACL.Allowed(context.Background(), store.User{Name: "bob"}, grant.Action, grant.Resource)
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

// seen is what the targets show after an event.
type seen struct {
	cacheLeft []string
	dropped
}

// dropped says which other targets were dropped.
type dropped struct {
	clientDropped bool // the client table read the client again
	denyReloaded  bool // the deny-list read the store again
	jti1Denied    bool // jti-1 was added to the deny-list
	keysReloaded  bool // the keyring holder read the store again
	aclReloaded   bool // the ACL read the store again
}

func (f *fixture) observe() seen {
	var s seen
	for _, name := range entryNames {
		if _, ok := f.targets.Cache.Get(hashOf(name)); ok {
			s.cacheLeft = append(s.cacheLeft, name)
		}
	}
	s.clientDropped = !f.clientEnabled()
	s.denyReloaded = f.denied("jti-0")
	s.jti1Denied = f.denied("jti-1")
	s.keysReloaded = f.kid() == f.newKid
	s.aclReloaded = f.allowed()
	return s
}

// allBut lists the entries except those named.
func allBut(names ...string) []string {
	var out []string
	for _, name := range entryNames {
		if !slices.Contains(names, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestHandle(t *testing.T) {
	everything := seen{dropped: dropped{clientDropped: true, denyReloaded: true, keysReloaded: true, aclReloaded: true}}
	cases := []struct {
		name string
		ev   func(f *fixture) store.Event
		want seen
	}{
		{"token", func(*fixture) store.Event { return store.Event{Kind: store.EventToken, Hash: hashOf("alice pat")} },
			seen{cacheLeft: allBut("alice pat")}},
		{"user", func(*fixture) store.Event { return store.Event{Kind: store.EventUser, Owner: "bob"} },
			seen{cacheLeft: allBut("bob pat")}},
		{"client", func(*fixture) store.Event { return store.Event{Kind: store.EventClient, ID: clientX} },
			seen{allBut("client x jti-1"), dropped{clientDropped: true}}},
		{"other client", func(*fixture) store.Event { return store.Event{Kind: store.EventClient, ID: clientY} },
			seen{cacheLeft: allBut("client y jti-2")}},
		{"denied", func(f *fixture) store.Event {
			return store.Event{Kind: store.EventDenied, ID: "jti-1", Until: f.now.Add(time.Hour)}
		}, seen{allBut("client x jti-1"), dropped{jti1Denied: true}}},
		{"keyring document", func(*fixture) store.Event { return store.Event{Kind: store.EventDocument, ID: store.DocKeyring} },
			seen{nil, dropped{keysReloaded: true}}},
		{"ACL document", func(*fixture) store.Event { return store.Event{Kind: store.EventDocument, ID: store.DocACL} },
			seen{allBut(), dropped{aclReloaded: true}}},
		{"unknown document", func(*fixture) store.Event { return store.Event{Kind: store.EventDocument, ID: "other"} },
			seen{cacheLeft: allBut()}},
		{"reset", func(*fixture) store.Event { return store.Event{Kind: store.EventReset} }, everything},
		{"unknown kind", func(*fixture) store.Event { return store.Event{Kind: store.EventKind(200)} }, everything},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.targets.Handle(c.ev(f))
			got := f.observe()
			if !slices.Equal(got.cacheLeft, c.want.cacheLeft) {
				t.Errorf("cache keeps %v, want %v", got.cacheLeft, c.want.cacheLeft)
			}
			if got.dropped != c.want.dropped {
				t.Errorf("targets %+v, want %+v", got, c.want)
			}
		})
	}
}
