package gate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/extjwt"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/jwks"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
)

const (
	extIssuer   = "https://idp.example.com"
	extAudience = "orders-api"
)

// counted is a site's real external verifier, counting its verifications.
type counted struct {
	*extjwt.Verifier
	verifies atomic.Int64
}

func (c *counted) Verify(ctx context.Context, raw string) (*decision.Decision, error) {
	c.verifies.Add(1)
	return c.Verifier.Verify(ctx, raw)
}

// extEnv is env whose checker also verifies our own access tokens (so a
// JWT is looked up under its plain hash too), with another issuer that
// publishes its JWKS on an httptest server.
type extEnv struct {
	*env
	key     *jwt.Key
	idp     *httptest.Server
	fetches atomic.Int64
}

func newExtEnv(t *testing.T) *extEnv {
	t.Helper()
	x := &extEnv{env: newEnv(t)}
	st, clk := x.st, x.clk
	tokens := accesstoken.NewTokens(keyring.NewHolder(st, keyring.Policy{}, "", 0, clk.Now),
		oauthclient.NewTable(st), accesstoken.NewDenyList(st), "tokengate", "tokengate", clk.Now)
	// A cache of its own: these tests change nothing that an event would
	// have to invalidate.
	x.checker = gate.New(st, cache.New(cache.Options{Now: clk.Now}), x.uses,
		gate.Options{LastUseEvery: lastUseEvery, Now: clk.Now, AccessTokens: tokens})

	var err error
	if x.key, err = jwt.Generate("idp-1", jwt.ES256); err != nil {
		t.Fatal(err)
	}
	pub, _ := x.key.JWK()
	body, err := json.Marshal(map[string]any{"keys": []any{pub}})
	if err != nil {
		t.Fatal(err)
	}
	x.idp = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(x.idp.Close)
	return x
}

// verifier is a site's verifier for the issuer. Its key set goes stale at
// once, so every verification after the clock moves fetches the JWKS
// again: a check that fetches nothing was served from the cache.
func (x *extEnv) verifier(t *testing.T) *counted {
	t.Helper()
	v, err := extjwt.New(extjwt.Config{
		Issuer: extIssuer, Audience: extAudience, JWKSURL: x.idp.URL, Now: x.clk.Now,
		JWKS: jwks.Options{Client: x.idp.Client(), Floor: time.Nanosecond, MaxAge: time.Nanosecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &counted{Verifier: v}
}

// jwt signs an access token of the issuer (iss may be changed).
func (x *extEnv) jwt(t *testing.T, iss string) string {
	t.Helper()
	now := x.clk.Now()
	tok, err := jwt.Sign(x.key, "at+jwt", map[string]any{
		"iss": iss, "aud": extAudience, "sub": "bob", "jti": "ext-1", "scope": "orders:read",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkSite checks tok on a site that accepts the external verifiers.
func (x *extEnv) checkSite(tok string, external ...gate.External) (identity.Identity, error) {
	return x.checker.Check(context.Background(), gate.Request{Token: tok, ClientIP: clientIP, External: external})
}

func (x *extEnv) wantExternalIdentity(t *testing.T, tok string, v *counted) {
	t.Helper()
	id, err := x.checkSite(tok, v)
	if err != nil {
		t.Fatalf("Check on the site with the external issuer: %v", err)
	}
	if id.User != "bob" || id.TokenType != "jwt" || id.TokenID != "ext-1" || id.Scopes != "orders:read" {
		t.Fatalf("identity = %+v", id)
	}
}

func (x *extEnv) wantCounts(t *testing.T, v *counted, verifies, fetches int64) {
	t.Helper()
	if n, f := v.verifies.Load(), x.fetches.Load(); n != verifies || f != fetches {
		t.Fatalf("%d verifications and %d JWKS fetches, want %d and %d", n, f, verifies, fetches)
	}
}

func TestExternalJWTAcceptedThenCached(t *testing.T) {
	x := newExtEnv(t)
	v := x.verifier(t)
	tok := x.jwt(t, extIssuer)
	x.wantExternalIdentity(t, tok, v)
	x.wantCounts(t, v, 1, 1)

	x.clk.Advance(time.Second) // a second verification would refetch the stale key set
	x.wantExternalIdentity(t, tok, v)
	x.wantCounts(t, v, 1, 1)
}

func TestExternalJWTIsNotServedToAnotherSite(t *testing.T) {
	t.Run("site without External", func(t *testing.T) {
		x := newExtEnv(t)
		v := x.verifier(t)
		tok := x.jwt(t, extIssuer)
		x.wantExternalIdentity(t, tok, v)
		for range 2 {
			_, err := x.checkSite(tok)
			wantRefused(t, err, apierr.ErrInvalidToken, http.StatusUnauthorized)
		}
		x.wantCounts(t, v, 1, 1)
	})
	t.Run("another site's verifier of the same issuer", func(t *testing.T) {
		x := newExtEnv(t)
		mine, theirs := x.verifier(t), x.verifier(t)
		tok := x.jwt(t, extIssuer)
		x.wantExternalIdentity(t, tok, mine)
		x.wantExternalIdentity(t, tok, theirs)
		if theirs.verifies.Load() != 1 {
			t.Fatalf("the other site's verifier ran %d times, want 1 (not served from this site's cache)", theirs.verifies.Load())
		}
	})
	t.Run("our own refusal does not block the site with External", func(t *testing.T) {
		x := newExtEnv(t)
		v := x.verifier(t)
		tok := x.jwt(t, extIssuer)
		_, err := x.checkSite(tok) // cached as refused under the plain hash
		wantRefused(t, err, apierr.ErrInvalidToken, http.StatusUnauthorized)
		x.wantExternalIdentity(t, tok, v)
		_, err = x.checkSite(tok)
		wantRefused(t, err, apierr.ErrInvalidToken, http.StatusUnauthorized)
	})
}

func TestExternalSiteRefusesUnknownIssuer(t *testing.T) {
	x := newExtEnv(t)
	v := x.verifier(t)
	for _, iss := range []string{"https://other.example.com", ""} {
		t.Run("iss "+iss, func(t *testing.T) {
			_, err := x.checkSite(x.jwt(t, iss), v)
			wantRefused(t, err, apierr.ErrInvalidToken, http.StatusUnauthorized)
			x.wantCounts(t, v, 0, 0)
		})
	}
}

func TestOwnPATOnExternalSite(t *testing.T) {
	x := newExtEnv(t)
	v := x.verifier(t)
	c := x.newToken(t, pat.CreateRequest{Scopes: []string{"read"}})
	for range 2 {
		id, err := x.checkSite(c.Token, v)
		if err != nil {
			t.Fatalf("PAT on a site with External: %v", err)
		}
		if id.User != "alice" || id.TokenType != "pat" || id.TokenID != c.ID {
			t.Fatalf("identity = %+v", id)
		}
	}
	x.wantCounts(t, v, 0, 0)
}

// Forged tokens of an external issuer naming made-up key ids are failed
// look-ups like unknown PATs: past the limit the address gets 429 (they
// used to be refunded as if the failure were ours).
func TestForgedExternalJWTsCountAsFailedLookups(t *testing.T) {
	x := newExtEnv(t)
	limiter := failrate.New(failrate.Options{Limit: 3, Window: time.Minute, Now: x.clk.Now})
	x.checker = gate.New(x.st, cache.New(cache.Options{Now: x.clk.Now}), x.uses,
		gate.Options{Now: x.clk.Now, FailedLookups: limiter})
	v := x.verifier(t)
	forge := func(i int) string {
		k, err := jwt.Generate(fmt.Sprintf("made-up-%d", i), jwt.ES256)
		if err != nil {
			t.Fatal(err)
		}
		now := x.clk.Now()
		tok, err := jwt.Sign(k, "at+jwt", map[string]any{
			"iss": extIssuer, "aud": extAudience, "sub": "bob", "jti": fmt.Sprint("f", i),
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for i := range 3 {
		if _, err := x.checkSite(forge(i), v); !errors.Is(err, apierr.ErrInvalidToken) {
			t.Fatalf("forgery %d: %v, want invalid_token", i, err)
		}
	}
	var limited *apierr.RateLimited
	if _, err := x.checkSite(forge(3), v); !errors.As(err, &limited) {
		t.Fatalf("a forgery past the limit: %v, want 429", err)
	}
}
