package adminapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/adminapi"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/users"
)

// TestExpiringTokens: the listing under the token policy, and a bad
// within refused naming it.
func TestExpiringTokens(t *testing.T) {
	e := newEnv(t)
	e.api.Backup = e.st
	e.api.Now = func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) } // the token service's clock
	e.pats.SetPolicy(policy.Policy{PATMaxLifetime: 90 * 24 * time.Hour})
	ctx := context.Background()
	if _, err := e.api.Users.Create(ctx, users.NewUser{Name: "alice", Password: "correct horse", TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	week := int64(7 * 24 * 3600)
	if _, err := e.pats.Create(ctx, "alice", pat.CreateRequest{Label: "week", ExpiresIn: &week}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pats.Create(ctx, "alice", pat.CreateRequest{Label: "max"}); err != nil {
		t.Fatal(err)
	}
	body := want(t, e.do(t, http.MethodGet, "/tokengate/tokens/expiring", ""), http.StatusOK)
	rows := body["tokens"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["label"] != "week" || rows[0].(map[string]any)["first"] != "expiry" {
		t.Fatalf("within 30d (the default): %v", rows)
	}
	body = want(t, e.do(t, http.MethodGet, "/tokengate/tokens/expiring?within=100d", ""), http.StatusOK)
	if rows := body["tokens"].([]any); len(rows) != 2 || rows[1].(map[string]any)["label"] != "max" {
		t.Fatalf("within 100d: %v", rows)
	}
	for _, bad := range []string{"soon", "-1d", "0", "1000000d", ""} {
		p := want(t, e.do(t, http.MethodGet, "/tokengate/tokens/expiring?within="+bad, ""), http.StatusBadRequest)
		if p["field"] != "within" {
			t.Errorf("within=%q: %v, want field within", bad, p)
		}
	}
	want(t, e.do(t, http.MethodPost, "/tokengate/tokens/expiring", ""), http.StatusMethodNotAllowed)
	for s, d := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "72h": 72 * time.Hour, "3600": time.Hour} {
		if got, err := adminapi.ParseWithin(s); err != nil || got != d {
			t.Errorf("ParseWithin(%q) = %v, %v", s, got, err)
		}
	}
}
