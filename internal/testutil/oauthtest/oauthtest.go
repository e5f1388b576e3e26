// Package oauthtest wires the OAuth clients, the access tokens and the edge
// check for tests the way the app does: a real embedded store, the node's
// copies subscribed to its events, and an injectable clock. The tests of
// oauthclient, accesstoken and oauth share it.
package oauthtest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

// Issuer and Audience are the iss and aud of the tokens Env issues.
const (
	Issuer   = "https://gw.example"
	Audience = "https://api.example"
)

// Clock is an injectable clock. It starts at the wall clock's second:
// the store ends denials by the wall clock, so a test clock far from it
// would make fresh denials look ended.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is the OAuth services on one store, with a gate.Checker that
// verifies the access tokens.
type Env struct {
	St      *boltstore.Store
	Clk     *Clock
	Clients *oauthclient.Clients
	Keys    *keyring.Holder
	Tokens  *accesstoken.Tokens
	Checker *gate.Checker
	Uses    *lastuse.Recorder
}

// New returns an Env on a fresh store in a temporary directory, its node
// copies subscribed to the store's events until the test ends.
func New(t testing.TB) *Env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &Clock{t: time.Now().UTC().Truncate(time.Second)}
	e := &Env{St: st, Clk: clk}
	c := cache.New(cache.Options{Now: clk.Now})
	table, denied := oauthclient.NewTable(st), accesstoken.NewDenyList(st)
	e.Keys = keyring.NewHolder(st, keyring.Policy{}, "", 0, clk.Now)
	e.Tokens = accesstoken.NewTokens(e.Keys, table, denied, Issuer, Audience, clk.Now)
	e.Clients = oauthclient.NewClients(st, nil, clk.Now)
	e.Uses = lastuse.New(st)
	e.Checker = gate.New(st, c, e.Uses, gate.Options{Now: clk.Now, AccessTokens: e.Tokens})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	targets := invalidate.Targets{Cache: c, Clients: table, Denied: denied, Keys: e.Keys, ACL: acl.New(st)}
	if err := st.Subscribe(ctx, targets.Handle); err != nil {
		t.Fatal(err)
	}
	return e
}

// NewClient creates a client; by default named "ci" with scopes read and
// write.
func (e *Env) NewClient(t testing.TB, req oauthclient.NewClient) oauthclient.CreatedClient {
	t.Helper()
	if req.Name == "" {
		req.Name = "ci"
	}
	if req.Scopes == nil {
		req.Scopes = []string{"write", "read"}
	}
	c, err := e.Clients.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

// Stored reads a client as stored.
func (e *Env) Stored(t testing.TB, id string) store.Client {
	t.Helper()
	c, err := e.St.GetClient(context.Background(), id)
	if err != nil {
		t.Fatalf("GetClient: %v", err)
	}
	return c
}

// Issue issues an access token to the client with id.
func (e *Env) Issue(t testing.TB, id string, scopes ...string) accesstoken.Issued {
	t.Helper()
	is, err := e.Tokens.Issue(context.Background(), e.Stored(t, id), scopes)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return is
}

// Verify verifies raw as the edge does.
func (e *Env) Verify(t *testing.T, raw string) (*decision.Decision, error) {
	t.Helper()
	return e.Tokens.Verify(context.Background(), raw)
}

// Signer returns the key access tokens are signed with now.
func (e *Env) Signer(t *testing.T) *jwt.Key {
	t.Helper()
	ks, err := e.Keys.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks.Signer()
}

// PausingStore is the real store whose GetClient and ListDenied, once
// armed, read and then wait, so that a change can land between the read
// and its use.
type PausingStore struct {
	*boltstore.Store
	*pausetest.Gate
}

// GetClient reads, then holds when armed.
func (p *PausingStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	c, err := p.Store.GetClient(ctx, id)
	p.Hold()
	return c, err
}

// ListDenied reads, then holds when armed.
func (p *PausingStore) ListDenied(ctx context.Context) ([]store.Denial, error) {
	l, err := p.Store.ListDenied(ctx)
	p.Hold()
	return l, err
}
