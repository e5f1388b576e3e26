package policy_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

// collected records events as "type id".
type collected struct {
	mu  sync.Mutex
	got []string
}

func (c *collected) Emit(e events.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.HashedToken == "" || e.Actor != "system" {
		panic("a dormancy event without hashed_token or actor")
	}
	c.got = append(c.got, e.Type+" "+e.Subject.ID)
}

func (c *collected) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	slices.Sort(out)
	return out
}

const day = 24 * time.Hour

// TestDormancyOnTwoNodes moves a test clock over tokens' idle lives with
// two nodes scanning at once each time: a token unused past dormant_after
// minus the warning is warned once, switched off no earlier than the
// warning period after the warning, once; a token used after its warning
// is not switched off (and is warned again only after a new idle
// period); a token already long unused when the policy comes is warned
// now and switched off the warning period later; a token switched on
// again is not switched off at the next scan.
func TestDormancyOnTwoNodes(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, b := twonodes.Open(t, backend)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := a.CreateUser(ctx, store.User{Name: "alice", TokenLogin: true, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			for i, tok := range []struct {
				id      string
				kind    string
				created time.Time
				enabled bool
			}{
				{"idle", store.KindPAT, t0, true},
				{"used", store.KindLegacy, t0, true},
				{"old", store.KindPAT, t0.Add(-365 * day), true},
				{"off", store.KindPAT, t0, false},
			} {
				st := store.Token{ID: tok.id, Owner: "alice", Kind: tok.kind, Enabled: tok.enabled, CreatedAt: tok.created}
				st.Hash[0] = byte(i + 1)
				if err := a.CreateToken(ctx, st, 0); err != nil {
					t.Fatal(err)
				}
			}
			var now atomic.Int64
			clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
			out := &collected{}
			p := policy.Policy{DormantAfter: 30 * day, DormancyWarning: 7 * day}
			nodes := []*policy.Scanner{policy.NewScanner(a, nil, out, clock), policy.NewScanner(b, nil, out, clock)}
			for _, n := range nodes {
				n.Configure(p, 0, nil, nil)
			}
			svc := pat.NewService(a, nil, 0, clock)
			for _, step := range []struct {
				at   time.Duration
				do   func(at time.Time) // before the scan
				want []string
			}{
				// "old" was idle for a year: warned now, off 7 days later.
				{0, nil, []string{"token.dormant_soon old"}},
				{7*day - time.Minute, nil, nil},
				{7 * day, nil, []string{"token.dormant old"}}, // 7 days after its warning
				{22 * day, nil, nil},
				{23*day + time.Hour, nil, []string{"token.dormant_soon idle", "token.dormant_soon used"}},
				{24 * day, func(at time.Time) { // "used" is used after its warning
					if err := a.RecordLastUse(ctx, []store.LastUse{{Owner: "alice", TokenID: "used", At: at, IP: "192.0.2.1"}}); err != nil {
						t.Fatal(err)
					}
				}, nil},
				{30 * day, nil, nil}, // idle: 30 days idle but warned only 6d23h ago
				{30*day + time.Hour, nil, []string{"token.dormant idle"}}, // a week after its warning
				{31 * day, func(time.Time) { // "idle" switched on again by its owner
					if _, err := svc.Update(ctx, "alice", "idle", pat.UpdateRequest{Enabled: ptr(true)}); err != nil {
						t.Fatal(err)
					}
				}, nil},
				{32 * day, nil, nil},
				{47*day + time.Hour, nil, []string{"token.dormant_soon used"}},                       // 23 days after its use
				{54*day + time.Hour, nil, []string{"token.dormant used", "token.dormant_soon idle"}}, // idle: 23 days after day 31
				{60 * day, nil, nil},
			} {
				at := t0.Add(step.at)
				now.Store(at.UnixNano())
				if step.do != nil {
					step.do(at)
				}
				var wg sync.WaitGroup
				for _, n := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := n.Scan(ctx); err != nil {
							t.Error(err)
						}
					}()
				}
				wg.Wait()
				if got := out.take(); !slices.Equal(got, step.want) {
					t.Errorf("at t0+%v: got %q, want %q", step.at, got, step.want)
				}
			}
			// The switched-off tokens are off in the store, the others on.
			ts, err := b.ListTokens(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range ts {
				wantOn := tok.ID == "idle"
				if tok.Enabled != wantOn {
					t.Errorf("token %s enabled = %v, want %v", tok.ID, tok.Enabled, wantOn)
				}
			}
		})
	}
}

// TestDormancyPendingUse: a use this node has not written yet keeps a
// token from being warned by this node.
func TestDormancyPendingUse(t *testing.T) {
	ctx := context.Background()
	a, _ := twonodes.Open(t, "bolt")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.CreateUser(ctx, store.User{Name: "bob", TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "x", Owner: "bob", Kind: store.KindPAT, Enabled: true, CreatedAt: t0}
	if err := a.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	pending := pendingUses{"x": {Owner: "bob", TokenID: "x", At: t0.Add(20 * day)}}
	out := &collected{}
	sc := policy.NewScanner(a, pending, out, func() time.Time { return t0.Add(25 * day) })
	sc.Configure(policy.Policy{DormantAfter: 30 * day, DormancyWarning: 7 * day}, 0, nil, nil)
	if res, err := sc.Scan(ctx); err != nil || res != (policy.Result{}) {
		t.Fatalf("scan = %+v, %v; want nothing done", res, err)
	}
	if got := out.take(); len(got) != 0 {
		t.Fatalf("events %q", got)
	}
}

type pendingUses map[string]store.LastUse

func (p pendingUses) Pending(string) map[string]store.LastUse { return p }

func ptr[T any](v T) *T { return &v }

// TestDormancyWaitsForLateUses: a switch-off waits UseDelay past the
// token's DormantAt, so a use made just before it on another node, which
// reaches the store in that node's next batch, keeps the token on.
func TestDormancyWaitsForLateUses(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, b := twonodes.Open(t, backend)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := a.CreateUser(ctx, store.User{Name: "carol", TokenLogin: true, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			for i, id := range []string{"late", "idle"} {
				tok := store.Token{ID: id, Owner: "carol", Kind: store.KindPAT, Enabled: true, CreatedAt: t0}
				tok.Hash[0] = byte(i + 1)
				if err := a.CreateToken(ctx, tok, 0); err != nil {
					t.Fatal(err)
				}
			}
			var now atomic.Int64
			clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
			scan := func(at time.Time) policy.Result {
				t.Helper()
				now.Store(at.UnixNano())
				sc := policy.NewScanner(a, nil, &collected{}, clock)
				sc.Configure(policy.Policy{DormantAfter: 30 * day, DormancyWarning: 7 * day, UseDelay: 20 * time.Second}, 0, nil, nil)
				res, err := sc.Scan(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			if res := scan(t0.Add(23 * day)); res.Warned != 2 {
				t.Fatalf("scan at day 23 = %+v, want both warned", res)
			}
			dormantAt := t0.Add(30 * day)
			if res := scan(dormantAt.Add(10 * time.Second)); res.SwitchedOff != 0 {
				t.Fatalf("switched off %d tokens within UseDelay of their DormantAt", res.SwitchedOff)
			}
			// Node b used "late" a second before DormantAt; its batch lands now.
			if err := b.RecordLastUse(ctx, []store.LastUse{{Owner: "carol", TokenID: "late", At: dormantAt.Add(-time.Second), IP: "192.0.2.9"}}); err != nil {
				t.Fatal(err)
			}
			if res := scan(dormantAt.Add(20 * time.Second)); res.SwitchedOff != 1 {
				t.Fatalf("scan past UseDelay = %+v, want only the idle token switched off", res)
			}
			late, err := a.GetToken(ctx, "carol", "late")
			if err != nil || !late.Enabled {
				t.Fatalf("the token used just before its DormantAt: %+v, %v; want it on", late, err)
			}
		})
	}
}
