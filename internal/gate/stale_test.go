package gate_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

// With the store's breaker open, cached decisions work until their TTL;
// with a stale window a good one works that much longer, and never an
// unknown or revoked token (whose entry is a refusal); with no window
// (the default) the gate fails closed as soon as the TTL ran out.
func TestStaleWindowWhileTheStoreIsDown(t *testing.T) {
	ctx := context.Background()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := store.NewDeferred()
	if err := d.Attach(bolt); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	clk := newClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	c := cache.New(cache.Options{TTL: 30 * time.Second, Now: clk.Now})
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.Subscribe(sub, (&invalidate.Targets{Cache: c}).Handle); err != nil {
		t.Fatal(err)
	}
	uses := lastuse.New(d)
	stale := gate.New(d, c, uses, gate.Options{Now: clk.Now, StaleWindow: time.Minute})
	strict := gate.New(d, c, uses, gate.Options{Now: clk.Now})
	if _, err := users.NewService(d, 4, clk.Now).Create(ctx, users.NewUser{Name: "alice", Password: "correct horse", TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	pats := pat.NewService(d, uses, 0, clk.Now)
	good, err := pats.Create(ctx, "alice", pat.CreateRequest{Label: "good"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := pats.Create(ctx, "alice", pat.CreateRequest{Label: "revoked"})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := token.NewPAT()
	if err != nil {
		t.Fatal(err)
	}
	check := func(g *gate.Checker, tok string) error {
		_, err := g.Check(ctx, gate.Request{Token: tok, ClientIP: clientIP})
		return err
	}
	for _, tok := range []string{good.Token, revoked.Token} {
		if err := check(stale, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := pats.Delete(ctx, "alice", revoked.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{revoked.Token, unknown} { // cached as refusals
		wantRefused(t, check(stale, tok), apierr.ErrInvalidToken, http.StatusUnauthorized)
	}

	d.Breaker().Probed(errors.New("no answer to PING")) // the store is known to be down
	if err := check(strict, good.Token); err != nil {
		t.Fatalf("a cached token within its TTL, store down: %v", err)
	}
	clk.Advance(40 * time.Second) // the TTL (30s) ran out 10s ago
	unavailable := func(err error) {
		t.Helper()
		if !errors.Is(err, breaker.ErrOpen) || apierr.For(err).Status != http.StatusServiceUnavailable {
			t.Fatalf("err = %v, want 503 from the open breaker", err)
		}
	}
	unavailable(check(strict, good.Token))
	if err := check(stale, good.Token); err != nil {
		t.Fatalf("a good token 10s past its TTL, 1m stale window: %v", err)
	}
	for _, tok := range []string{revoked.Token, unknown} {
		unavailable(check(stale, tok))
	}
	clk.Advance(time.Minute) // now past TTL + window
	unavailable(check(stale, good.Token))

	d.Breaker().Probed(nil) // back: the store answers again
	if err := check(strict, good.Token); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, check(stale, revoked.Token), apierr.ErrInvalidToken, http.StatusUnauthorized)
}
