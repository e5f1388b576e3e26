package pat_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

const ninetyDays = 90 * 24 * time.Hour

// wantPolicyRefusal checks a refusal by the token policy: 400, field
// expires_in, and a description naming the maximum in seconds and words.
func wantPolicyRefusal(t *testing.T, err error, want string) {
	t.Helper()
	wantProblem(t, err, http.StatusBadRequest, "expires_in", "invalid_request")
	if d := apierr.For(err).Description; !strings.Contains(d, want) {
		t.Fatalf("description %q does not say %q", d, want)
	}
}

// TestPolicyMaxLifetime: a PAT asked to live longer than the maximum is
// refused naming it, one within it gets what it asked, one without
// expires_in gets the maximum, and a change of expires_in (PAT or legacy)
// beyond its kind's maximum is refused while the token keeps its expiry.
func TestPolicyMaxLifetime(t *testing.T) {
	e := newEnv(t, 0)
	e.svc.SetPolicy(policy.Policy{PATMaxLifetime: ninetyDays, LegacyMaxLifetime: 30 * 24 * time.Hour})
	ctx := context.Background()
	now := e.clk.Now()

	_, err := e.svc.Create(ctx, "alice", pat.CreateRequest{Label: "long", ExpiresIn: ptr(int64(ninetyDays/time.Second) + 1)})
	wantPolicyRefusal(t, err, "expires_in must be at most 7776000 seconds (90 days) by the token policy")
	if vs := e.list(t, "alice"); len(vs) != 0 {
		t.Fatalf("a refused create stored %d tokens", len(vs))
	}

	ok := e.create(t, "alice", pat.CreateRequest{Label: "ok", ExpiresIn: ptr(int64(ninetyDays / time.Second))})
	if ok.ExpiresAt == nil || !ok.ExpiresAt.Equal(now.Add(ninetyDays)) {
		t.Fatalf("expires_at = %v, want %v", ok.ExpiresAt, now.Add(ninetyDays))
	}
	none := e.create(t, "alice", pat.CreateRequest{Label: "none"})
	if none.ExpiresAt == nil || !none.ExpiresAt.Equal(now.Add(ninetyDays)) {
		t.Fatalf("a PAT without expires_in expires at %v, want the maximum %v", none.ExpiresAt, now.Add(ninetyDays))
	}

	_, err = e.svc.Update(ctx, "alice", ok.ID, pat.UpdateRequest{ExpiresIn: ptr(int64(100 * 24 * 3600))})
	wantPolicyRefusal(t, err, "(90 days)")
	if v := e.view(t, "alice", ok.ID); !v.ExpiresAt.Equal(*ok.ExpiresAt) {
		t.Fatalf("a refused change moved the expiry to %v", v.ExpiresAt)
	}

	// A legacy token: its own maximum.
	secret, err := token.NewLegacy()
	if err != nil {
		t.Fatal(err)
	}
	leg := store.Token{ID: "l1", Owner: "alice", Kind: store.KindLegacy, Hash: token.Hash(secret), Enabled: true,
		Label: "rest/token", CreatedAt: now, ExpiresAt: now.Add(10 * 24 * time.Hour)}
	if err := e.st.CreateToken(ctx, leg, 0); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Update(ctx, "alice", "l1", pat.UpdateRequest{ExpiresIn: ptr(int64(31 * 24 * 3600))})
	wantPolicyRefusal(t, err, "at most 2592000 seconds (30 days)")
	if _, err := e.svc.Update(ctx, "alice", "l1", pat.UpdateRequest{ExpiresIn: ptr(int64(30 * 24 * 3600))}); err != nil {
		t.Fatalf("a legacy token set to its maximum: %v", err)
	}

	// Rotation keeps the expiry.
	r, err := e.svc.Rotate(ctx, "alice", none.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExpiresAt == nil || !r.ExpiresAt.Equal(*none.ExpiresAt) {
		t.Fatalf("rotation moved the expiry from %v to %v", none.ExpiresAt, r.ExpiresAt)
	}
}

// TestPolicyRequireExpiry: without a maximum, require_expiry refuses a
// PAT without expires_in (400 naming the field) and takes one with it.
func TestPolicyRequireExpiry(t *testing.T) {
	e := newEnv(t, 0)
	e.svc.SetPolicy(policy.Policy{RequireExpiry: true})
	_, err := e.svc.Create(context.Background(), "alice", pat.CreateRequest{Label: "forever"})
	wantPolicyRefusal(t, err, "expires_in is required by the token policy")
	c := e.create(t, "alice", pat.CreateRequest{Label: "year", ExpiresIn: ptr(int64(365 * 24 * 3600))})
	if c.ExpiresAt == nil {
		t.Fatal("the token has no expiry")
	}
}

// TestPolicySwitchOnMarksActive: switching a token back on sets ActiveAt,
// from which the dormancy rule counts.
func TestPolicySwitchOnMarksActive(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	c := e.create(t, "alice", pat.CreateRequest{Label: "x"})
	if _, err := e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Hour)
	if _, err := e.svc.Update(ctx, "alice", c.ID, pat.UpdateRequest{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.GetToken(ctx, "alice", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ActiveAt.Equal(e.clk.Now()) {
		t.Fatalf("active_at = %v, want %v", got.ActiveAt, e.clk.Now())
	}
}

// TestPolicyRotateBoundsExpiry: a rotation is a new secret made under the
// token policy. A token that outlives its kind's maximum (made before the
// policy: a PAT that never expires, a legacy token of the 100-year
// default) gets the maximum from now, by Rotate and by RotateSelf (the
// self route and /rest/token/rotate), and the old secret's overlap never
// outlasts it; a token within the maximum keeps its expiry.
func TestPolicyRotateBoundsExpiry(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	forever := e.create(t, "alice", pat.CreateRequest{Label: "forever"})
	within := e.create(t, "alice", pat.CreateRequest{Label: "within", ExpiresIn: ptr(int64(10 * 24 * 3600))})
	secret, err := token.NewLegacy()
	if err != nil {
		t.Fatal(err)
	}
	now := e.clk.Now()
	leg := store.Token{ID: "l1", Owner: "alice", Kind: store.KindLegacy, Hash: token.Hash(secret), Enabled: true,
		Label: "rest/token", CreatedAt: now, ExpiresAt: now.Add(100 * 365 * 24 * time.Hour)}
	if err := e.st.CreateToken(ctx, leg, 0); err != nil {
		t.Fatal(err)
	}
	e.svc.SetPolicy(policy.Policy{PATMaxLifetime: ninetyDays, LegacyMaxLifetime: time.Hour})
	e.clk.Advance(time.Minute)
	now = e.clk.Now()

	r, err := e.svc.Rotate(ctx, "alice", forever.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExpiresAt == nil || !r.ExpiresAt.Equal(now.Add(ninetyDays)) {
		t.Fatalf("a PAT that never expires, rotated under a 90-day maximum, expires at %v, want %v", r.ExpiresAt, now.Add(ninetyDays))
	}
	if v := e.view(t, "alice", forever.ID); v.ExpiresAt == nil || !v.ExpiresAt.Equal(now.Add(ninetyDays)) {
		t.Fatalf("stored expiry %v, want %v", v.ExpiresAt, now.Add(ninetyDays))
	}
	r, err = e.svc.Rotate(ctx, "alice", within.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.Equal(*within.ExpiresAt) {
		t.Fatalf("a token within the maximum, rotated, expires at %v, want its own %v", r.ExpiresAt, within.ExpiresAt)
	}

	// The legacy token rotated by its holder (RotateSelf), asking for a
	// two-hour overlap: both the token and the overlap end within the hour.
	r, err = e.svc.RotateSelf(ctx, pat.Presented{Owner: "alice", ID: "l1", Kind: store.KindLegacy, Hash: leg.Hash}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExpiresAt == nil || !r.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("a 100-year legacy token, rotated under a 1h maximum, expires at %v, want %v", r.ExpiresAt, now.Add(time.Hour))
	}
	if r.ReplacedValidUntil == nil || r.ReplacedValidUntil.After(now.Add(time.Hour)) {
		t.Fatalf("the replaced secret works until %v, past the token's new expiry %v", r.ReplacedValidUntil, now.Add(time.Hour))
	}
}
