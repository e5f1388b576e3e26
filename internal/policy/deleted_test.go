package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

// ghostStore lists a user that is deleted between ListUsers and
// ListTokens, as a scan or a listing meets a user an administrator
// deletes meanwhile.
type ghostStore struct{ policy.Store }

func (g ghostStore) ListUsers(ctx context.Context) ([]store.User, error) {
	us, err := g.Store.ListUsers(ctx)
	return append([]store.User{{Name: "ghost"}}, us...), err
}

// TestDeletedUserDuringScan: a user deleted while the dormancy scan or
// the expiring listing runs is skipped (their tokens went with them): the
// scan still applies the rule to everyone else and reports no error (no
// "scan failed" line), and the listing answers (not a 404).
func TestDeletedUserDuringScan(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, _ := twonodes.Open(t, backend)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := a.CreateUser(ctx, store.User{Name: "alice"}); err != nil {
				t.Fatal(err)
			}
			tok := store.Token{ID: "idle", Owner: "alice", Label: "idle", Kind: store.KindPAT, Enabled: true, CreatedAt: t0.Add(-30 * day)}
			tok.Hash[0] = 1
			if err := a.CreateToken(ctx, tok, 0); err != nil {
				t.Fatal(err)
			}
			g := ghostStore{a}
			p := policy.Policy{DormantAfter: 20 * day, DormancyWarning: day}

			rows, err := policy.Expiring(ctx, g, nil, p, 30*day, t0)
			if err != nil {
				t.Fatalf("listing with a user deleted meanwhile: %v", err)
			}
			if len(rows) != 1 || rows[0].ID != "idle" {
				t.Fatalf("rows %+v, want alice's idle token", rows)
			}

			sc := policy.NewScanner(g, nil, nil, func() time.Time { return t0 })
			sc.Configure(p, 0, nil, nil)
			res, err := sc.Scan(ctx)
			if err != nil {
				t.Fatalf("scan with a user deleted meanwhile: %v", err)
			}
			if res.Warned != 1 {
				t.Fatalf("scan %+v, want alice's idle token warned", res)
			}
		})
	}
}
