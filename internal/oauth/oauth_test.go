package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

const (
	issuer   = "https://gw.example"
	audience = "https://api.example"
	// alice may use tokens and call introspection and revocation.
	alicePassword = "correct horse"
	// perClient failed client authentications lock a client id.
	perClient = 3
)

// clock is an injectable clock. It starts at the wall clock's second:
// the store ends denials by the wall clock, so a test clock far from it
// would make fresh denials look ended.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env wires the OAuth services the way the app does: a real embedded
// store, the node's caches subscribed to its events, a gate.Checker as
// the endpoint's Inspector, and an audit log in a temporary directory.
type env struct {
	st       *boltstore.Store
	clk      *clock
	clients  *oauthclient.Clients
	keys     *keyring.Holder
	tokens   *accesstoken.Tokens
	checker  *gate.Checker
	pats     *pat.Service
	ep       *oauth.Endpoint
	auditDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	e := &env{st: st, clk: clk, auditDir: t.TempDir()}
	c := cache.New(cache.Options{Now: clk.Now})
	table, denied := oauthclient.NewTable(st), accesstoken.NewDenyList(st)
	e.keys = keyring.NewHolder(st, keyring.Policy{}, "", 0, clk.Now)
	e.tokens = accesstoken.NewTokens(e.keys, table, denied, issuer, audience, clk.Now)
	e.clients = oauthclient.NewClients(st, nil, clk.Now)
	uses := lastuse.New(st)
	e.checker = gate.New(st, c, uses, gate.Options{Now: clk.Now, AccessTokens: e.tokens})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	targets := invalidate.Targets{Cache: c, Clients: table, Denied: denied, Keys: e.keys, ACL: acl.New(st)}
	if err := st.Subscribe(ctx, targets.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := users.NewService(st, 4, clk.Now).Create(ctx, users.NewUser{Name: "alice", Password: alicePassword, TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	auth, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	e.pats = pat.NewService(st, uses, 0, clk.Now)
	log := audit.New(audit.Options{Dir: e.auditDir, Now: clk.Now, Location: time.UTC})
	t.Cleanup(func() { log.Close() })
	e.ep = &oauth.Endpoint{
		Clients: e.clients, Tokens: e.tokens, Users: auth, Inspector: e.checker, Store: st,
		Limiter: bruteforce.New(st, bruteforce.Limits{PerAccount: perClient, PerAddress: 1000, Window: 15 * time.Minute}),
		Audit:   log, Realm: "tokengate",
	}
	return e
}

// newClient creates a client; by default named "ci" with scopes read and
// write.
func (e *env) newClient(t *testing.T, req oauthclient.NewClient) oauthclient.CreatedClient {
	t.Helper()
	if req.Name == "" {
		req.Name = "ci"
	}
	if req.Scopes == nil {
		req.Scopes = []string{"write", "read"}
	}
	c, err := e.clients.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func (e *env) stored(t *testing.T, id string) store.Client {
	t.Helper()
	c, err := e.st.GetClient(context.Background(), id)
	if err != nil {
		t.Fatalf("GetClient: %v", err)
	}
	return c
}

func (e *env) issue(t *testing.T, id string, scopes ...string) accesstoken.Issued {
	t.Helper()
	is, err := e.tokens.Issue(context.Background(), e.stored(t, id), scopes)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return is
}

func (e *env) verify(t *testing.T, raw string) (*decision.Decision, error) {
	t.Helper()
	return e.tokens.Verify(context.Background(), raw)
}

// sign signs claims with k as a JWT of type typ.
func sign(t *testing.T, k *jwt.Key, typ string, cl accesstoken.Claims) string {
	t.Helper()
	s, err := jwt.Sign(k, typ, cl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) signer(t *testing.T) *jwt.Key {
	t.Helper()
	ks, err := e.keys.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks.Signer()
}

// status is the HTTP status apierr maps err to.
func status(err error) int { return apierr.For(err).Status }

func TestCreateClient(t *testing.T) {
	e := newEnv(t)
	off := false
	cases := []struct {
		name    string
		req     oauthclient.NewClient
		enabled bool
	}{
		{"defaults", oauthclient.NewClient{Name: "  ci  ", AllowedIPs: []string{"10.1.2.3/8", "192.0.2.7"}, Scopes: []string{"write", "read", "read"}}, true},
		{"disabled", oauthclient.NewClient{Name: "off", Enabled: &off}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := e.newClient(t, c.req)
			if !strings.HasPrefix(cc.ClientID, token.ClientIDPrefix) || len(cc.ClientID) != len(token.ClientIDPrefix)+16 {
				t.Errorf("client id %q", cc.ClientID)
			}
			if !strings.HasPrefix(cc.ClientSecret, token.ClientSecretPrefix) || !token.IsClientSecret(cc.ClientSecret) {
				t.Errorf("client secret has the wrong shape")
			}
			if cc.Enabled != c.enabled || cc.Name != strings.TrimSpace(c.req.Name) {
				t.Errorf("view %+v", cc.ClientView)
			}
			raw := e.stored(t, cc.ClientID)
			if raw.SecretHash != store.TokenHash(sha256.Sum256([]byte(cc.ClientSecret))) {
				t.Error("the stored hash is not the SHA-256 of the secret")
			}
			b, _ := json.Marshal(raw)
			if strings.Contains(string(b), cc.ClientSecret) || strings.Contains(string(b), cc.ClientSecret[len(token.ClientSecretPrefix):]) {
				t.Error("the secret is stored in clear")
			}
		})
	}
	t.Run("canonical lists", func(t *testing.T) {
		raw := e.stored(t, e.newClient(t, cases[0].req).ClientID)
		if !slices.Equal(raw.AllowedIPs, []string{"10.0.0.0/8", "192.0.2.7/32"}) || !slices.Equal(raw.Scopes, []string{"read", "write"}) {
			t.Errorf("stored %v and %v", raw.AllowedIPs, raw.Scopes)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	c := e.newClient(t, oauthclient.NewClient{})
	other, _ := token.NewClientSecret()
	flipped := c.ClientSecret[:len(c.ClientSecret)-1] + "A"
	if strings.HasSuffix(c.ClientSecret, "A") {
		flipped = c.ClientSecret[:len(c.ClientSecret)-1] + "B"
	}
	ctx := context.Background()
	// The one answer every refusal gives.
	_, refused := e.clients.Authenticate(ctx, c.ClientID, other)
	if refused == nil {
		t.Fatal("a wrong secret was accepted")
	}
	cases := []struct {
		name, id, secret string
		ok               bool
	}{
		{"right secret", c.ClientID, c.ClientSecret, true},
		{"wrong secret", c.ClientID, other, false},
		{"unknown id", "tgc_0000000000000000", c.ClientSecret, false},
		{"id without prefix", c.ClientID[len(token.ClientIDPrefix):], c.ClientSecret, false},
		{"secret of the wrong shape", c.ClientID, "hunter2", false},
		{"PAT as secret", c.ClientID, "tgp_" + c.ClientSecret[len(token.ClientSecretPrefix):], false},
		{"wrong checksum", c.ClientID, flipped, false},
		{"empty secret", c.ClientID, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.clients.Authenticate(ctx, tc.id, tc.secret)
			switch {
			case tc.ok && (err != nil || got.ID != c.ClientID):
				t.Errorf("Authenticate = %+v, %v", got, err)
			case !tc.ok && (!errors.Is(err, refused) || got.ID != ""):
				t.Errorf("Authenticate = %+v, %v; want %v", got, err, refused)
			}
		})
	}
}

func TestUpdateAndDeleteClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.newClient(t, oauthclient.NewClient{})
	name, off, ips, scopes := "deploy", false, []string{"2001:db8::1/32"}, []string{"admin"}
	cases := []struct {
		name  string
		ch    oauthclient.ClientChanges
		check func(store.Client) bool
	}{
		{"name", oauthclient.ClientChanges{Name: &name}, func(s store.Client) bool { return s.Name == "deploy" }},
		{"enabled", oauthclient.ClientChanges{Enabled: &off}, func(s store.Client) bool { return !s.Enabled }},
		{"allowed IPs", oauthclient.ClientChanges{AllowedIPs: &ips}, func(s store.Client) bool { return slices.Equal(s.AllowedIPs, []string{"2001:db8::/32"}) }},
		{"scopes", oauthclient.ClientChanges{Scopes: &scopes}, func(s store.Client) bool { return slices.Equal(s.Scopes, []string{"admin"}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.stored(t, c.ClientID)
			e.clk.Advance(time.Second)
			v, err := e.clients.Update(ctx, c.ClientID, tc.ch)
			if err != nil {
				t.Fatal(err)
			}
			after := e.stored(t, c.ClientID)
			if !tc.check(after) || !after.UpdatedAt.After(before.UpdatedAt) || after.SecretHash != before.SecretHash {
				t.Errorf("stored %+v", after)
			}
			if got, _ := e.clients.Get(ctx, c.ClientID); !equalViews(got, v) {
				t.Errorf("Get %+v, Update returned %+v", got, v)
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		if err := e.clients.Delete(ctx, c.ClientID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.GetClient(ctx, c.ClientID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetClient after Delete: %v", err)
		}
		for what, err := range map[string]error{
			"Delete": e.clients.Delete(ctx, c.ClientID),
			"Update": func() error {
				_, err := e.clients.Update(ctx, c.ClientID, oauthclient.ClientChanges{Name: &name})
				return err
			}(),
		} {
			if status(err) != http.StatusNotFound {
				t.Errorf("%s of a deleted client: %v", what, err)
			}
		}
		if _, err := e.clients.Authenticate(ctx, c.ClientID, c.ClientSecret); err == nil {
			t.Error("a deleted client authenticated")
		}
	})
}

func equalViews(a, b oauthclient.ClientView) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestClientFieldErrors(t *testing.T) {
	long := strings.Repeat("é", oauthclient.MaxNameLen+1)
	cases := []struct {
		name, field string
		req         oauthclient.NewClient
	}{
		{"empty name", "name", oauthclient.NewClient{Name: " "}},
		{"long name", "name", oauthclient.NewClient{Name: long}},
		{"control character", "name", oauthclient.NewClient{Name: "ci\x00"}},
		{"invalid UTF-8", "name", oauthclient.NewClient{Name: "ci\xff"}},
		{"bad CIDR", "allowed_ips", oauthclient.NewClient{Name: "ci", AllowedIPs: []string{"10.0.0.0/33"}}},
		{"not an address", "allowed_ips", oauthclient.NewClient{Name: "ci", AllowedIPs: []string{"localhost"}}},
		{"scope with a space", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{"read write"}}},
		{"empty scope", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{""}}},
		{"scope with a quote", "scopes", oauthclient.NewClient{Name: "ci", Scopes: []string{`re"ad`}}},
	}
	e := newEnv(t)
	ctx := context.Background()
	existing := e.newClient(t, oauthclient.NewClient{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if p := apierr.For(err); p.Status != http.StatusBadRequest || p.Field != c.field {
					t.Errorf("%s: %v (status %d, field %q); want 400 naming %q", what, err, p.Status, p.Field, c.field)
				}
			}
			_, err := e.clients.Create(ctx, c.req)
			check("Create", err)
			ch := oauthclient.ClientChanges{}
			switch c.field {
			case "name":
				ch.Name = &c.req.Name
			case "allowed_ips":
				ch.AllowedIPs = &c.req.AllowedIPs
			case "scopes":
				ch.Scopes = &c.req.Scopes
			}
			_, err = e.clients.Update(ctx, existing.ClientID, ch)
			check("Update", err)
			if list, _ := e.clients.List(ctx); len(list) != 1 {
				t.Errorf("%d clients stored", len(list))
			}
			if got := e.stored(t, existing.ClientID); got.Name != "ci" || len(got.Scopes) != 2 || len(got.AllowedIPs) != 0 {
				t.Errorf("a refused update was stored: %+v", got)
			}
		})
	}
}

func TestIssueVerify(t *testing.T) {
	e := newEnv(t)
	c := e.newClient(t, oauthclient.NewClient{AllowedIPs: []string{"192.0.2.0/24"}})
	is := e.issue(t, c.ClientID, "read")
	en, err := e.verify(t, is.Token)
	if err != nil || en.Refusal != nil {
		t.Fatalf("Verify = %+v, %v", en, err)
	}
	wantExp := e.clk.Now().Add(keyring.DefaultLifetime + keyring.Leeway).UnixNano()
	checks := []struct {
		name string
		ok   bool
	}{
		{"kind", en.Kind == "oauth"},
		{"owner", en.Owner == "client:"+c.ClientID},
		{"user", en.User == c.ClientID},
		{"token id is the jti", en.TokenID == is.Claims.ID && en.TokenID != ""},
		{"scopes", en.ScopeHeader == "read"},
		{"expires at exp plus leeway", en.ExpiresAt == wantExp},
		{"allowed IPs", len(en.AllowedIPs) == 1 && en.AllowedIPs[0].String() == "192.0.2.0/24"},
		{"claims", is.Claims.Issuer == issuer && slices.Equal(is.Claims.Audience, accesstoken.Audience{audience}) && is.Claims.ClientID == c.ClientID && is.Claims.Subject == c.ClientID},
		{"expires in", is.ExpiresIn == int64(keyring.DefaultLifetime/time.Second) && is.Claims.Expiry-is.Claims.IssuedAt == is.ExpiresIn},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if !ch.ok {
				t.Errorf("entry %+v, issued %+v", en, is)
			}
		})
	}
	t.Run("typ header", func(t *testing.T) {
		tok, err := jwt.Parse(is.Token)
		if err != nil || tok.Header.Typ != accesstoken.TokenType || tok.Header.Kid != e.signer(t).ID {
			t.Errorf("header %+v, %v", tok, err)
		}
	})
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	// Each case returns a token that must be refused. Where a change
	// makes it so, the token is first accepted, so that the client table
	// and the deny-list are warm and must learn of the change.
	claims := func(e *env, t *testing.T, id string) accesstoken.Claims { return e.issue(t, id, "read").Claims }
	cases := []struct {
		name string
		make func(*testing.T, *env, string) string
		want error
		// asError: the refusal comes back as an error (not cached), not
		// as an entry with Refusal.
		asError bool
	}{
		{"typ JWT", func(t *testing.T, e *env, id string) string {
			return sign(t, e.signer(t), "JWT", claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"no typ", func(t *testing.T, e *env, id string) string {
			return sign(t, e.signer(t), "", claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"wrong iss", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.Issuer = "https://evil.example"
			return sign(t, e.signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, false},
		{"wrong aud", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.Audience = accesstoken.Audience{"https://other.example", "https://evil.example"}
			return sign(t, e.signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, false},
		{"expired", func(t *testing.T, e *env, id string) string {
			raw := e.issue(t, id).Token
			e.clk.Advance(keyring.DefaultLifetime + keyring.Leeway)
			return raw
		}, apierr.ErrExpiredToken, false},
		{"unknown kid", func(t *testing.T, e *env, id string) string {
			k, err := jwt.Generate("00000000000000ff", jwt.HS256)
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, k, accesstoken.TokenType, claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"known kid, other secret", func(t *testing.T, e *env, id string) string {
			k, err := jwt.Generate(e.signer(t).ID, jwt.HS256)
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, k, accesstoken.TokenType, claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"client switched off", func(t *testing.T, e *env, id string) string {
			raw, off := e.issue(t, id).Token, false
			mustVerify(t, e, raw)
			if _, err := e.clients.Update(ctx, id, oauthclient.ClientChanges{Enabled: &off}); err != nil {
				t.Fatal(err)
			}
			return raw
		}, apierr.ErrClientDisabled, false},
		{"client deleted", func(t *testing.T, e *env, id string) string {
			raw := e.issue(t, id).Token
			mustVerify(t, e, raw)
			if err := e.clients.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			return raw
		}, apierr.ErrInvalidToken, false},
		{"jti denied", func(t *testing.T, e *env, id string) string {
			is := e.issue(t, id)
			mustVerify(t, e, is.Token)
			if err := e.st.Deny(ctx, store.Denial{JTI: is.Claims.ID, Until: time.Unix(is.Claims.Expiry, 0)}); err != nil {
				t.Fatal(err)
			}
			return is.Token
		}, apierr.ErrInvalidToken, false},
		{"not valid yet", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.NotBefore = e.clk.Now().Add(time.Minute).Unix()
			return sign(t, e.signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.newClient(t, oauthclient.NewClient{}).ClientID
			en, err := e.verify(t, c.make(t, e, id))
			switch {
			case c.asError && (en != nil || !errors.Is(err, c.want)):
				t.Errorf("Verify = %+v, %v; want the error %v", en, err, c.want)
			case !c.asError && (err != nil || en == nil || !errors.Is(en.Refusal, c.want)):
				t.Errorf("Verify = %+v, %v; want an entry refused with %v", en, err, c.want)
			}
		})
	}
}

// mustVerify checks that raw is accepted (and warms the client table and
// the deny-list).
func mustVerify(t *testing.T, e *env, raw string) {
	t.Helper()
	if en, err := e.verify(t, raw); err != nil || en.Refusal != nil {
		t.Fatalf("Verify before the change = %+v, %v", en, err)
	}
}

// TestImmediateResetRefusesCachedToken (issue 11 item 6): an access token
// whose verdict the edge has cached is refused right after an immediate
// reset of the key that signed it (RS256, whose next key is not yet
// usable), and a token from the new key passes.
func TestImmediateResetRefusesCachedToken(t *testing.T) {
	e := newEnv(t)
	e.keys.Configure(keyring.Policy{PublishDelay: time.Hour}, jwt.RS256, 0)
	c := e.newClient(t, oauthclient.NewClient{})
	old := e.issue(t, c.ClientID, "read")
	if got := e.signer(t).Alg; got != jwt.RS256 {
		t.Fatalf("signing with %s", got)
	}
	check := func(tok string) error {
		_, err := e.checker.Check(context.Background(), gate.Request{Token: tok})
		return err
	}
	for range 2 { // the second answer comes from the cache
		if err := check(old.Token); err != nil {
			t.Fatalf("token before the reset: %v", err)
		}
	}
	if _, err := e.keys.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	if err := check(old.Token); !errors.Is(err, apierr.ErrInvalidToken) {
		t.Errorf("old token right after an immediate reset: %v", err)
	}
	fresh := e.issue(t, c.ClientID, "read")
	if k, err := jwt.Parse(fresh.Token); err != nil || k.Header.Kid != e.signer(t).ID {
		t.Fatalf("new token %+v, %v; signer %s", k, err, e.signer(t).ID)
	}
	if err := check(fresh.Token); err != nil {
		t.Errorf("new token: %v", err)
	}
}

// TestVerifyLearnsKeyOfAnotherNode: a token signed with a key another
// node has just made passes before that node's announcement arrives: a
// verifier that meets an unknown kid reads the keyring again.
func TestVerifyLearnsKeyOfAnotherNode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.newClient(t, oauthclient.NewClient{})
	// This node: not subscribed to the store, as if announcements were late.
	mine := keyring.NewHolder(e.st, keyring.Policy{}, "", 0, e.clk.Now)
	tokens := accesstoken.NewTokens(mine, oauthclient.NewTable(e.st), accesstoken.NewDenyList(e.st), issuer, audience, e.clk.Now)
	for range 2 { // the first Get creates the keyring, the second keeps it
		if _, err := mine.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Advance(time.Second)
	// The other node resets the keys and signs with the new one.
	if _, err := e.keys.Apply(ctx, keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	is := e.issue(t, c.ClientID, "read")
	if en, err := tokens.Verify(ctx, is.Token); err != nil || en.Refusal != nil {
		t.Fatalf("token signed with the other node's new key: %+v, %v", en, err)
	}
}
