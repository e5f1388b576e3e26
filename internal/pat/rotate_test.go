package pat_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/token"
)

// rotationEnv is a service on a store that shares its clock, so that the
// store's end of an overlap and the service's agree.
func rotationEnv(t *testing.T) (*pat.Service, *boltstore.Store, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(context.Background(), store.User{Name: "alice", TokenLogin: true, CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	return pat.NewService(st, nil, 0, clk.Now), st, clk
}

func found(t *testing.T, st store.Store, secret string) bool {
	t.Helper()
	_, err := st.LookupToken(context.Background(), token.Hash(secret))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRotate: the new secret has the token's kind, everything else but the
// secret stays (the expiry too), the old secret works until the overlap
// ends, and an expired token is not rotated.
func TestRotate(t *testing.T) {
	svc, st, clk := rotationEnv(t)
	ctx := context.Background()
	var got []events.Event
	svc.SetEvents(events.Func(func(ev events.Event) { got = append(got, ev) }))
	in := int64(3 * 3600)
	c, err := svc.Create(ctx, "alice", pat.CreateRequest{Label: "ci", Scopes: []string{"read"}, ExpiresIn: &in, AllowedIPs: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := svc.Rotate(ctx, "alice", c.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if token.Classify(r.Token) != token.PAT || r.ID != c.ID || r.Label != "ci" || !r.ExpiresAt.Equal(*c.ExpiresAt) ||
		len(r.AllowedIPs) != 1 || r.ReplacedValidUntil == nil || !r.ReplacedValidUntil.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("rotated %+v", r)
	}
	if !found(t, st, r.Token) || !found(t, st, c.Token) {
		t.Fatal("a secret is not found during the overlap")
	}
	if len(got) != 2 || got[1].Type != events.TokenRotated ||
		got[1].HashedToken != store.TokenHash(token.Hash(r.Token)).String() ||
		got[1].Data["previous_hashed_token"] != store.TokenHash(token.Hash(c.Token)).String() {
		t.Fatalf("events %+v", got)
	}

	// The overlap is cut at the token's own expiry.
	clk.Advance(time.Hour)
	if found(t, st, c.Token) {
		t.Fatal("the old secret outlived its overlap")
	}
	r2, err := svc.Rotate(ctx, "alice", c.ID, pat.MaxOverlap)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.ReplacedValidUntil.Equal(*c.ExpiresAt) {
		t.Fatalf("the overlap ends %v, after the token's expiry %v", r2.ReplacedValidUntil, c.ExpiresAt)
	}

	// The self routes: the current secret sees the token, a replaced one
	// may not rotate it.
	if v, err := svc.Self(ctx, pat.Presented{Owner: "alice", ID: c.ID, Hash: token.Hash(r2.Token)}); err != nil || v.ID != c.ID {
		t.Fatalf("Self = %+v, %v", v, err)
	}
	_, err = svc.RotateSelf(ctx, pat.Presented{Owner: "alice", ID: c.ID, Hash: token.Hash(r.Token)}, 0)
	if p := apierr.For(err); p.Status != http.StatusForbidden {
		t.Fatalf("RotateSelf with a replaced secret: %v", err)
	}

	clk.Advance(2 * time.Hour)
	_, err = svc.Rotate(ctx, "alice", c.ID, time.Hour)
	if p := apierr.For(err); p.Status != http.StatusConflict {
		t.Fatalf("Rotate of an expired token: %v", err)
	}
	if _, err := svc.Rotate(ctx, "alice", "nope", time.Hour); apierr.For(err).Status != http.StatusNotFound {
		t.Fatalf("Rotate of a missing token: %v", err)
	}
}

// TestRotateLegacy: a legacy token gets a legacy secret.
func TestRotateLegacy(t *testing.T) {
	svc, st, _ := rotationEnv(t)
	ctx := context.Background()
	secret, err := token.NewLegacy()
	if err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "l1", Owner: "alice", Kind: store.KindLegacy, Hash: token.Hash(secret), Enabled: true, Label: "rest/token"}
	if err := st.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	r, err := svc.Rotate(ctx, "alice", "l1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if token.Classify(r.Token) != token.Legacy || r.Kind != store.KindLegacy || r.ReplacedValidUntil != nil {
		t.Fatalf("rotated %+v", r)
	}
	if found(t, st, secret) || !found(t, st, r.Token) {
		t.Fatal("overlap 0 kept the old legacy secret, or the new one is not found")
	}
}

// TestParseOverlapSeconds: a whole number of seconds is taken within
// bounds only; a negative one so large that it would wrap into range as
// a Duration (-18446744073 s is 709ms after the wrap) is refused too.
func TestParseOverlapSeconds(t *testing.T) {
	for s, want := range map[string]time.Duration{"3600": time.Hour, "0": 0, "604800": pat.MaxOverlap} {
		if d, err := pat.ParseOverlap(s); err != nil || d != want {
			t.Errorf("ParseOverlap(%q) = %v, %v; want %v", s, d, err, want)
		}
	}
	for _, s := range []string{"-1", "604801", "-18446744073", "-9223372037"} {
		if d, err := pat.ParseOverlap(s); apierr.For(err).Field != "overlap" {
			t.Errorf("ParseOverlap(%q) = %v, %v; want a 400 on overlap", s, d, err)
		}
	}
}
