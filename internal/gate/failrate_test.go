package gate_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/token"
)

// A flood of made-up, well-formed tokens from one address costs a store
// round trip each only up to the limit; past it the address gets 429
// before any I/O, while its good tokens, cached or not, and other
// addresses go on working.
func TestFailedLookupsAreLimitedPerAddress(t *testing.T) {
	e := newEnv(t)
	good := e.newToken(t, pat.CreateRequest{})
	cold := e.newToken(t, pat.CreateRequest{})
	limiter := failrate.New(failrate.Options{Limit: 5, Window: time.Minute, Now: e.clk.Now})
	checker := gate.New(e.st, cache.New(cache.Options{Now: e.clk.Now}), e.uses, gate.Options{Now: e.clk.Now, FailedLookups: limiter})
	check := func(tok string, ip netip.Addr) error {
		_, err := checker.Check(context.Background(), gate.Request{Token: tok, ClientIP: ip})
		return err
	}
	if err := check(good.Token, clientIP); err != nil {
		t.Fatal(err)
	}
	fake := func() string {
		tok, err := token.NewPAT()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for range 5 {
		wantRefused(t, check(fake(), clientIP), apierr.ErrInvalidToken, http.StatusUnauthorized)
	}
	var limited *apierr.RateLimited
	n := e.opsDuring(func() {
		for range 100 {
			err := check(fake(), clientIP)
			if !errors.As(err, &limited) || apierr.For(err).Status != http.StatusTooManyRequests || limited.RetryAfter <= 0 {
				t.Fatalf("past the limit: %v", err)
			}
		}
	})
	if n != 0 {
		t.Fatalf("limited look-ups made %d store operations", n)
	}
	if err := check(good.Token, clientIP); err != nil {
		t.Fatalf("a cached good token of the limited address: %v", err)
	}
	if err := check(fake(), netip.MustParseAddr("192.0.2.99")); !errors.Is(err, apierr.ErrInvalidToken) {
		t.Fatalf("another address: %v", err)
	}
	e.clk.Advance(time.Minute)
	if err := check(cold.Token, clientIP); err != nil {
		t.Fatalf("after the window, a good token: %v", err)
	}
}
