package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// metricName finds tokengate's metric names in a PromQL expression or a
// README line.
var metricName = regexp.MustCompile(`tokengate_[a-z_]+`)

// family is the family of a series name: a histogram's _bucket, _sum and
// _count series belong to it.
func family(name string, families map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
			return base
		}
	}
	return name
}

// TestDashboard checks docs/grafana-dashboard.json: valid JSON, a
// Prometheus data source variable that every panel and query uses, every
// metric it draws exists, and every metric is drawn.
func TestDashboard(t *testing.T) {
	families := families(t)
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct{ Type, UID string }
	var dash struct {
		Title      string
		UID        string
		Templating struct {
			List []struct{ Name, Type, Query any }
		}
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource *datasource
			Targets    []struct {
				Expr       string
				Datasource *datasource
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	hasVar := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasVar = true
		}
	}
	if !hasVar {
		t.Error("no Prometheus data source variable named datasource")
	}
	drawn := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no query on the ${datasource} variable", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query not on the ${datasource} variable", p.Title)
			}
			names := metricName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: a query without a tokengate metric: %s", p.Title, q.Expr)
			}
			for _, n := range names {
				f := family(n, families)
				if families[f] == "" {
					t.Errorf("panel %q uses %s, which tokengate does not export", p.Title, n)
				}
				drawn[f] = true
			}
		}
	}
	for f := range families {
		if !drawn[f] {
			t.Errorf("the dashboard does not draw %s", f)
		}
	}
}

// TestREADMETable checks the README's table of metrics against the
// registry: every metric has its row, and every row is a metric.
func TestREADMETable(t *testing.T) {
	families := families(t)
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for line := range strings.Lines(string(raw)) {
		if !strings.HasPrefix(line, "| `tokengate_") {
			continue
		}
		cells := strings.Split(line, "|")
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows[name] = true
		if families[name] == "" {
			t.Errorf("the README lists %s, which tokengate does not export", name)
		}
		if typ := strings.TrimSpace(cells[2]); typ != families[name] {
			t.Errorf("the README says %s is a %q; it is a %s", name, typ, families[name])
		}
	}
	for f := range families {
		if !rows[f] {
			t.Errorf("the README's metrics table has no row for %s", f)
		}
	}
}
