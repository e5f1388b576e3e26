package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

func TestWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * day: "90 days", day: "1 day", 36 * time.Hour: "36 hours", 90 * time.Minute: "90 minutes",
		2 * time.Second: "2 seconds", time.Hour: "1 hour", 25*time.Hour + time.Second: "90001 seconds",
	} {
		if got := policy.Words(d); got != want {
			t.Errorf("Words(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []policy.Policy{
		{PATMaxLifetime: -1},
		{DormantAfter: day, DormancyWarning: day},
		{DormantAfter: day, DormancyWarning: 2 * day},
		{DormancyWarning: day},
		{LegacyMaxLifetime: time.Millisecond},
		{PATMaxLifetime: policy.Longest + time.Second},
		{LegacyMaxLifetime: 200 * 365 * day},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	for _, p := range []policy.Policy{{}, {PATMaxLifetime: policy.Longest, LegacyMaxLifetime: policy.Longest}, {PATMaxLifetime: day, RequireExpiry: true, DormantAfter: 2 * time.Second, DormancyWarning: time.Second}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	if w := (policy.Policy{DormantAfter: 4 * day}).Warning(); w != 2*day {
		t.Errorf("default warning of a 4-day rule = %v, want half of it", w)
	}
}

// TestUpdateTokenSeesLastUse: the dormancy rule decides inside
// UpdateToken's fn, so fn must see the last use, which Redis keeps apart
// from the token's record.
func TestUpdateTokenSeesLastUse(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, _ := twonodes.Open(t, backend)
			if err := a.CreateUser(ctx, store.User{Name: "u"}); err != nil {
				t.Fatal(err)
			}
			if err := a.CreateToken(ctx, store.Token{ID: "t", Owner: "u", Kind: store.KindPAT, Enabled: true}, 0); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
			if err := a.RecordLastUse(ctx, []store.LastUse{{Owner: "u", TokenID: "t", At: at}}); err != nil {
				t.Fatal(err)
			}
			var seen time.Time
			if _, err := a.UpdateToken(ctx, "u", "t", func(t *store.Token) error { seen = t.LastUsedAt; return nil }); err != nil {
				t.Fatal(err)
			}
			if !seen.Equal(at) {
				t.Fatalf("fn saw last use %v, want %v", seen, at)
			}
		})
	}
}

// TestExpiring lists the tokens that expire or go dormant within the
// period, nearest first, with what comes first and the tokens made
// before the policy flagged.
func TestExpiring(t *testing.T) {
	ctx := context.Background()
	a, _ := twonodes.Open(t, "bolt")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.CreateUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	for i, tok := range []store.Token{
		{ID: "soon", Kind: store.KindPAT, Enabled: true, CreatedAt: t0, ExpiresAt: t0.Add(5 * day)},
		{ID: "later", Kind: store.KindPAT, Enabled: true, CreatedAt: t0, ExpiresAt: t0.Add(60 * day)},
		{ID: "forever", Kind: store.KindPAT, Enabled: true, CreatedAt: t0.Add(-time.Hour)},
		{ID: "idle", Kind: store.KindLegacy, Enabled: true, CreatedAt: t0.Add(-25 * day), ExpiresAt: t0.Add(20 * day)},
		{ID: "off", Kind: store.KindPAT, Enabled: false, CreatedAt: t0, ExpiresAt: t0.Add(day)},
		{ID: "gone", Kind: store.KindPAT, Enabled: true, CreatedAt: t0.Add(-2 * day), ExpiresAt: t0.Add(-day)},
	} {
		tok.Owner, tok.Label = "alice", tok.ID
		tok.Hash[0] = byte(i + 1)
		if err := a.CreateToken(ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
	}
	p := policy.Policy{PATMaxLifetime: 30 * day, DormantAfter: 90 * day, DormancyWarning: 7 * day}
	rows, err := policy.Expiring(ctx, a, nil, p, 30*day, t0)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		id, first string
		beyond    bool
	}
	var got []want
	for _, r := range rows {
		got = append(got, want{r.ID, r.First, r.BeyondMaxLifetime})
	}
	exp := []want{{"soon", policy.FirstExpiry, false}, {"idle", policy.FirstExpiry, false}, {"forever", "", true}, {"later", "", true}}
	if len(got) != len(exp) {
		t.Fatalf("rows %+v, want %+v", got, exp)
	}
	for i := range exp {
		if got[i] != exp[i] {
			t.Fatalf("rows %+v, want %+v", got, exp)
		}
	}

	// A short dormancy rule: "idle" (idle 25 days, not warned yet) goes
	// dormant first, a warning period from now.
	p.DormantAfter = 10 * day
	rows, err = policy.Expiring(ctx, a, nil, p, 30*day, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r := rows[1]; r.ID != "idle" || r.First != policy.FirstDormancy || !r.At.Equal(t0.Add(7*day)) {
		t.Fatalf("second row %+v, want idle going dormant a warning period from now (after soon's expiry)", r)
	}
}

func TestParsePeriod(t *testing.T) {
	for s, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "72h": 72 * time.Hour, "3600": time.Hour, "36500d": policy.Longest} {
		if got, err := policy.ParsePeriod(s); err != nil || got != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	secret := "tgp_" + strings.Repeat("a", 36)
	for _, s := range []string{"", "0", "0d", "-1h", "-5", "36501d", "876601h", "9223372036854775807", "99999999999999999999d", "soon", "1e3", secret} {
		_, err := policy.ParsePeriod(s)
		if err == nil {
			t.Errorf("ParsePeriod(%q) accepted", s)
			continue
		}
		if strings.Contains(err.Error(), strings.Repeat("a", 20)) {
			t.Errorf("ParsePeriod echoes a secret-looking value: %v", err)
		}
	}
}
