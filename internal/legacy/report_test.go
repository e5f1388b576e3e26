package legacy_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/store"
)

func TestReport(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	alice, bob := e.allowedUser(t, "alice"), e.allowedUser(t, "bob")
	inUse, old, never := e.issue(t, alice), e.issue(t, alice), e.issue(t, bob)
	day := 24 * time.Hour
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.st.RecordLastUse(ctx, []store.LastUse{
		{Owner: "alice", TokenID: inUse.ID, At: t0.Add(-2 * time.Hour), IP: "192.0.2.2", Host: "api.example"},
		{Owner: "alice", TokenID: old.ID, At: t0.Add(-100 * day), IP: "192.0.2.1", Host: "app.example"},
	}))
	// Not yet written: the report shows it too.
	e.uses.Record(store.LastUse{Owner: "alice", TokenID: inUse.ID, At: t0.Add(-time.Hour), IP: "192.0.2.1", Host: "app.example"})

	ids := func(r legacy.Report) []string {
		var out []string
		for _, u := range r.Tokens {
			out = append(out, u.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	sources := func(ss []legacy.Source) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Address+s.Site+":"+strconv.Itoa(s.Tokens))
		}
		return out
	}
	tests := []struct {
		name                      string
		filter                    legacy.ReportFilter
		want                      []string
		usedWithin, never, listed int
		window                    float64
		wantAddresses, wantSites  []string
	}{
		{"all", legacy.ReportFilter{}, sorted(inUse.ID, old.ID, never.ID), 1, 1, 3, 30,
			[]string{"192.0.2.1:2", "192.0.2.2:1"}, []string{"app.example:2", "api.example:1"}},
		{"in use", legacy.ReportFilter{UsedWithin: 30 * day}, []string{inUse.ID}, 1, 0, 1, 30,
			[]string{"192.0.2.1:1", "192.0.2.2:1"}, []string{"app.example:1", "api.example:1"}},
		{"in use within a week", legacy.ReportFilter{UsedWithin: 7 * day}, []string{inUse.ID}, 1, 0, 1, 7,
			[]string{"192.0.2.1:1", "192.0.2.2:1"}, []string{"app.example:1", "api.example:1"}},
		{"to revoke", legacy.ReportFilter{UnusedFor: 90 * day}, sorted(old.ID, never.ID), 0, 1, 2, 30,
			[]string{"192.0.2.1:1"}, []string{"app.example:1"}},
		{"between", legacy.ReportFilter{UsedWithin: 200 * day, UnusedFor: 90 * day}, []string{old.ID}, 1, 0, 1, 200,
			[]string{"192.0.2.1:1"}, []string{"app.example:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.svc.Report(ctx, tt.filter)
			must(err)
			if got := ids(r); !slices.Equal(got, tt.want) {
				t.Fatalf("tokens %v, want %v", got, tt.want)
			}
			s := r.Summary
			if s.Total != 3 || s.Listed != tt.listed || s.UsedWithin != tt.usedWithin || s.NeverUsed != tt.never || s.WindowDays != tt.window {
				t.Fatalf("summary %+v", s)
			}
			if got := sources(s.Addresses); !slices.Equal(got, tt.wantAddresses) {
				t.Errorf("addresses %v, want %v", got, tt.wantAddresses)
			}
			if got := sources(s.Sites); !slices.Equal(got, tt.wantSites) {
				t.Errorf("sites %v, want %v", got, tt.wantSites)
			}
		})
	}

	r, err := e.svc.Report(ctx, legacy.ReportFilter{UsedWithin: day})
	must(err)
	if len(r.Tokens) != 1 || len(r.Tokens[0].RecentAddresses) != 2 || r.Tokens[0].RecentAddresses[0].IP != "192.0.2.1" ||
		r.Tokens[0].RecentAddresses[1].Host != "api.example" || r.Tokens[0].LastUsedHost != "app.example" {
		t.Fatalf("row %+v, want both addresses, the pending one first", r.Tokens)
	}
	if a := r.Summary.Addresses[0]; a.Address != "192.0.2.1" || !a.LastUsedAt.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("address %+v", a)
	}
}

func TestParseReportFilter(t *testing.T) {
	tests := []struct {
		query string
		want  legacy.ReportFilter
		field string // "" when valid
	}{
		{"", legacy.ReportFilter{}, ""},
		{"used_within=30d", legacy.ReportFilter{UsedWithin: 30 * 24 * time.Hour}, ""},
		{"unused_for=90d&used_within=36h", legacy.ReportFilter{UsedWithin: 36 * time.Hour, UnusedFor: 90 * 24 * time.Hour}, ""},
		{"used_within=0d", legacy.ReportFilter{}, "used_within"},
		{"used_within=-1h", legacy.ReportFilter{}, "used_within"},
		{"unused_for=soon", legacy.ReportFilter{}, "unused_for"},
		{"unused_for=3600", legacy.ReportFilter{UnusedFor: time.Hour}, ""},
		{"unused_for=99999999d", legacy.ReportFilter{}, "unused_for"},
		{"unused_for=1d&unused_for=2d", legacy.ReportFilter{}, "unused_for"},
		{"used=30d", legacy.ReportFilter{}, "used"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := legacy.ParseReportFilter(q)
			if tt.field == "" {
				if err != nil || got != tt.want {
					t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			p := apierr.For(err)
			if p.Status != http.StatusBadRequest || p.Field != tt.field {
				t.Fatalf("error %v: %+v, want a 400 naming %s", err, p, tt.field)
			}
		})
	}
}

// deletingStore is a store whose user listing still names a user deleted
// right after it was read, as a report racing a user deletion sees.
type deletingStore struct {
	legacy.Store
	gone string
}

func (s deletingStore) ListUsers(ctx context.Context) ([]store.User, error) {
	us, err := s.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range us {
		if u.Name == s.gone {
			if err := s.Store.DeleteUser(ctx, u.Name); err != nil {
				return nil, err
			}
		}
	}
	return us, nil
}

// TestReportUserDeletedMeanwhile: a user deleted while the report runs is
// left out of it (its tokens are gone), not a failed report.
func TestReportUserDeletedMeanwhile(t *testing.T) {
	e := newEnv(t, 0, 0)
	alice, bob := e.allowedUser(t, "alice"), e.allowedUser(t, "bob")
	kept := e.issue(t, alice)
	e.issue(t, bob)
	svc := legacy.NewService(deletingStore{Store: e.st, gone: "bob"}, e.uses, e.acl, legacy.Cap{}, 0, func() time.Time { return t0 }, nil)
	r, err := svc.Report(context.Background(), legacy.ReportFilter{})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if len(r.Tokens) != 1 || r.Tokens[0].ID != kept.ID || r.Summary.Total != 1 {
		t.Errorf("report %+v, want alice's token only", r)
	}
}
