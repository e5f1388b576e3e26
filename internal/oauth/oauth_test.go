package oauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/users"
)

const (
	issuer = oauthtest.Issuer
	// alice may use tokens and call introspection and revocation.
	alicePassword = "correct horse"
	// perClient failed client authentications lock a client id.
	perClient = 3
)

// env wires the OAuth services the way the app does (oauthtest.Env: a real
// embedded store, the node's caches subscribed to its events, a
// gate.Checker as the endpoint's Inspector) and an audit log in a
// temporary directory.
type env struct {
	*oauthtest.Env
	pats     *pat.Service
	ep       *oauth.Endpoint
	auditDir string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	o := oauthtest.New(t)
	st, clk, ctx := o.St, o.Clk, context.Background()
	e := &env{Env: o, auditDir: t.TempDir()}
	if _, err := users.NewService(st, 4, clk.Now).Create(ctx, users.NewUser{Name: "alice", Password: alicePassword, TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	auth, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	e.pats = pat.NewService(st, o.Uses, 0, clk.Now)
	log := audit.New(audit.Options{Dir: e.auditDir, Now: clk.Now, Location: time.UTC})
	t.Cleanup(func() { log.Close() })
	e.ep = &oauth.Endpoint{
		Clients: o.Clients, Tokens: o.Tokens, Users: auth, Inspector: o.Checker, Store: st,
		Limiter: bruteforce.New(st, bruteforce.Limits{PerAccount: perClient, PerAddress: 1000, Window: 15 * time.Minute}),
		Audit:   log, Realm: "tokengate",
	}
	return e
}
