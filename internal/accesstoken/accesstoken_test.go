package accesstoken_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
)

// env is the OAuth services on one store (oauthtest.Env).
type env struct{ *oauthtest.Env }

func newEnv(t *testing.T) *env { return &env{oauthtest.New(t)} }

const issuer, audience = oauthtest.Issuer, oauthtest.Audience

// sign signs claims with k as a JWT of type typ.
func sign(t *testing.T, k *jwt.Key, typ string, cl accesstoken.Claims) string {
	t.Helper()
	s, err := jwt.Sign(k, typ, cl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerify(t *testing.T) {
	e := newEnv(t)
	c := e.NewClient(t, oauthclient.NewClient{AllowedIPs: []string{"192.0.2.0/24"}})
	is := e.Issue(t, c.ClientID, "read")
	en, err := e.Verify(t, is.Token)
	if err != nil || en.Refusal != nil {
		t.Fatalf("Verify = %+v, %v", en, err)
	}
	wantExp := e.Clk.Now().Add(keyring.DefaultLifetime + keyring.Leeway).UnixNano()
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
		if err != nil || tok.Header.Typ != accesstoken.TokenType || tok.Header.Kid != e.Signer(t).ID {
			t.Errorf("header %+v, %v", tok, err)
		}
	})
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	// Each case returns a token that must be refused. Where a change
	// makes it so, the token is first accepted, so that the client table
	// and the deny-list are warm and must learn of the change.
	claims := func(e *env, t *testing.T, id string) accesstoken.Claims { return e.Issue(t, id, "read").Claims }
	cases := []struct {
		name string
		make func(*testing.T, *env, string) string
		want error
		// asError: the refusal comes back as an error (not cached), not
		// as an entry with Refusal.
		asError bool
	}{
		{"typ JWT", func(t *testing.T, e *env, id string) string {
			return sign(t, e.Signer(t), "JWT", claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"no typ", func(t *testing.T, e *env, id string) string {
			return sign(t, e.Signer(t), "", claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"wrong iss", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.Issuer = "https://evil.example"
			return sign(t, e.Signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, false},
		{"wrong aud", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.Audience = accesstoken.Audience{"https://other.example", "https://evil.example"}
			return sign(t, e.Signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, false},
		{"expired", func(t *testing.T, e *env, id string) string {
			raw := e.Issue(t, id).Token
			e.Clk.Advance(keyring.DefaultLifetime + keyring.Leeway)
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
			k, err := jwt.Generate(e.Signer(t).ID, jwt.HS256)
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, k, accesstoken.TokenType, claims(e, t, id))
		}, apierr.ErrInvalidToken, false},
		{"client switched off", func(t *testing.T, e *env, id string) string {
			raw, off := e.Issue(t, id).Token, false
			mustVerify(t, e, raw)
			if _, err := e.Clients.Update(ctx, id, oauthclient.ClientChanges{Enabled: &off}); err != nil {
				t.Fatal(err)
			}
			return raw
		}, apierr.ErrClientDisabled, false},
		{"client deleted", func(t *testing.T, e *env, id string) string {
			raw := e.Issue(t, id).Token
			mustVerify(t, e, raw)
			if err := e.Clients.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			return raw
		}, apierr.ErrInvalidToken, false},
		{"jti denied", func(t *testing.T, e *env, id string) string {
			is := e.Issue(t, id)
			mustVerify(t, e, is.Token)
			if err := e.St.Deny(ctx, store.Denial{JTI: is.Claims.ID, Until: time.Unix(is.Claims.Expiry, 0)}); err != nil {
				t.Fatal(err)
			}
			return is.Token
		}, apierr.ErrInvalidToken, false},
		{"not valid yet", func(t *testing.T, e *env, id string) string {
			cl := claims(e, t, id)
			cl.NotBefore = e.Clk.Now().Add(time.Minute).Unix()
			return sign(t, e.Signer(t), accesstoken.TokenType, cl)
		}, apierr.ErrInvalidToken, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.NewClient(t, oauthclient.NewClient{}).ClientID
			en, err := e.Verify(t, c.make(t, e, id))
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
	if en, err := e.Verify(t, raw); err != nil || en.Refusal != nil {
		t.Fatalf("Verify before the change = %+v, %v", en, err)
	}
}

// TestImmediateResetRefusesCachedToken (issue 11 item 6): an access token
// whose verdict the edge has cached is refused right after an immediate
// reset of the key that signed it (RS256, whose next key is not yet
// usable), and a token from the new key passes.
func TestImmediateResetRefusesCachedToken(t *testing.T) {
	e := newEnv(t)
	e.Keys.Configure(keyring.Policy{PublishDelay: time.Hour}, jwt.RS256, 0)
	c := e.NewClient(t, oauthclient.NewClient{})
	old := e.Issue(t, c.ClientID, "read")
	if got := e.Signer(t).Alg; got != jwt.RS256 {
		t.Fatalf("signing with %s", got)
	}
	check := func(tok string) error {
		_, err := e.Checker.Check(context.Background(), gate.Request{Token: tok})
		return err
	}
	for range 2 { // the second answer comes from the cache
		if err := check(old.Token); err != nil {
			t.Fatalf("token before the reset: %v", err)
		}
	}
	if _, err := e.Keys.Apply(context.Background(), keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	if err := check(old.Token); !errors.Is(err, apierr.ErrInvalidToken) {
		t.Errorf("old token right after an immediate reset: %v", err)
	}
	fresh := e.Issue(t, c.ClientID, "read")
	if k, err := jwt.Parse(fresh.Token); err != nil || k.Header.Kid != e.Signer(t).ID {
		t.Fatalf("new token %+v, %v; signer %s", k, err, e.Signer(t).ID)
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
	c := e.NewClient(t, oauthclient.NewClient{})
	// This node: not subscribed to the store, as if announcements were late.
	mine := keyring.NewHolder(e.St, keyring.Policy{}, "", 0, e.Clk.Now)
	tokens := accesstoken.NewTokens(mine, oauthclient.NewTable(e.St), accesstoken.NewDenyList(e.St), issuer, audience, e.Clk.Now)
	for range 2 { // the first Get creates the keyring, the second keeps it
		if _, err := mine.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.Clk.Advance(time.Second)
	// The other node resets the keys and signs with the new one.
	if _, err := e.Keys.Apply(ctx, keyring.Change{Reset: true, Mode: keyring.ModeImmediate, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	is := e.Issue(t, c.ClientID, "read")
	if en, err := tokens.Verify(ctx, is.Token); err != nil || en.Refusal != nil {
		t.Fatalf("token signed with the other node's new key: %+v, %v", en, err)
	}
}
