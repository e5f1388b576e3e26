package tests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// recentIPs returns the addresses of a token view's recent_addresses, in
// order, and the sites they were used for.
func recentIPs(t *testing.T, tok map[string]any) (ips []string, hosts map[string]bool) {
	t.Helper()
	list, ok := tok["recent_addresses"].([]any)
	if !ok {
		t.Fatalf("token without recent_addresses: %v", tok)
	}
	hosts = map[string]bool{}
	for _, a := range list {
		m := a.(map[string]any)
		ips = append(ips, m["ip"].(string))
		hosts[m["host"].(string)] = true
		if _, err := time.Parse(time.RFC3339, m["last_used_at"].(string)); err != nil {
			t.Errorf("recent address %v: %v", m, err)
		}
	}
	return ips, hosts
}

// findToken returns the token with id in a listing's "tokens".
func findToken(t *testing.T, v map[string]any, id string) map[string]any {
	t.Helper()
	for _, tok := range v["tokens"].([]any) {
		if m := tok.(map[string]any); m["id"] == id {
			return m
		}
	}
	return nil
}

// TestLegacyUsageReport: a legacy token used from three client addresses
// (two through a trusted proxy's X-Forwarded-For) and for two sites (the
// site's two listeners) shows all of them in the admin report and the
// CLI, with the summary's counts; a never-used legacy token is a candidate
// to revoke; a PAT listing shows its recent addresses too.
func TestLegacyUsageReport(t *testing.T) {
	forEachTopology(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		g.mustCLI(alicePassword+"\n", "user", "add", "bob", "--token-login")
		grantUse(g, "--user", "alice")
		grantUse(g, "--user", "bob")
		inUse, inUseID := legacyToken(t, g, "alice", alicePassword)
		_, unusedID := legacyToken(t, g, "bob", alicePassword)
		patSecret, patID := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)

		base, trusted := strings.TrimPrefix(g.base, "http://"), strings.TrimPrefix(g.trusted, "http://")
		for _, tok := range []string{inUse, patSecret} {
			mustPass(t, do(t, http.MethodGet, g.trusted+"/a", withHeader(bearer(tok), "X-Forwarded-For", "198.51.100.7"), ""), "from 198.51.100.7")
			mustPass(t, do(t, http.MethodGet, g.trusted+"/b", withHeader(bearer(tok), "X-Forwarded-For", "203.0.113.9"), ""), "from 203.0.113.9")
			mustPass(t, do(t, http.MethodGet, g.base+"/c", bearer(tok), ""), "from 127.0.0.1")
		}
		wantIPs := []string{"127.0.0.1", "198.51.100.7", "203.0.113.9"}
		sameIPs := func(ips []string) bool {
			s := slices.Clone(ips)
			slices.Sort(s)
			return slices.Equal(s, wantIPs)
		}

		// The uses reach the store with the next flush (last_access_flush 1s).
		report := func(t *testing.T, query string) map[string]any {
			t.Helper()
			r := do(t, http.MethodGet, "http://"+g.admin+"/tokengate/legacy/tokens"+query, nil, "")
			if r.status != http.StatusOK {
				t.Fatalf("report%s: %d %s", query, r.status, r.body)
			}
			return r.json(t)
		}
		var all map[string]any
		if !eventually(30*time.Second, func() bool {
			all = report(t, "")
			row := findToken(t, all, inUseID)
			ips, _ := recentIPs(t, row)
			return sameIPs(ips)
		}) {
			t.Fatalf("the report never showed the three addresses: %v", all)
		}
		if strings.Contains(jsonString(t, all), inUse) {
			t.Fatal("the report holds a secret")
		}

		t.Run("admin report", func(t *testing.T) {
			row := findToken(t, all, inUseID)
			ips, hosts := recentIPs(t, row)
			if ips[0] != "127.0.0.1" || !hosts[base] || !hosts[trusted] {
				t.Errorf("recent addresses %v for %v, want 127.0.0.1 first, sites %s and %s", ips, hosts, base, trusted)
			}
			// The fields the report had before stay.
			if row["owner"] != "alice" || row["enabled"] != true || row["last_used_at"] == nil ||
				row["last_used_ip"] != "127.0.0.1" || row["last_used_host"] != base {
				t.Errorf("row %v", row)
			}
			if findToken(t, all, patID) != nil {
				t.Error("the report lists a PAT")
			}
			never := findToken(t, all, unusedID)
			if never == nil || never["last_used_at"] != nil || len(never["recent_addresses"].([]any)) != 0 {
				t.Errorf("never used token: %v", never)
			}
			s := all["summary"].(map[string]any)
			if s["total"] != 2.0 || s["listed"] != 2.0 || s["used_within"] != 1.0 || s["never_used"] != 1.0 || s["window_days"] != 30.0 {
				t.Errorf("summary %v", s)
			}
			counts := func(key, name string) map[string]float64 {
				out := map[string]float64{}
				for _, x := range s[key].([]any) {
					m := x.(map[string]any)
					out[m[name].(string)] = m["tokens"].(float64)
				}
				return out
			}
			if got := counts("addresses", "address"); len(got) != 3 || got["127.0.0.1"] != 1 || got["198.51.100.7"] != 1 || got["203.0.113.9"] != 1 {
				t.Errorf("summary addresses %v", got)
			}
			if got := counts("sites", "site"); len(got) != 2 || got[base] != 1 || got[trusted] != 1 {
				t.Errorf("summary sites %v", got)
			}
		})

		t.Run("filters", func(t *testing.T) {
			inUse := report(t, "?used_within=30d")
			if ts := inUse["tokens"].([]any); len(ts) != 1 || findToken(t, inUse, inUseID) == nil {
				t.Errorf("used_within=30d: %v", ts)
			}
			toRevoke := report(t, "?unused_for=90d")
			if ts := toRevoke["tokens"].([]any); len(ts) != 1 || findToken(t, toRevoke, unusedID) == nil {
				t.Errorf("unused_for=90d: %v", ts)
			}
			for q, name := range map[string]string{"?unused_for=soon": "unused_for", "?used_within=0d": "used_within",
				"?used_within=1d&used_within=2d": "used_within", "?since=1d": "since"} {
				r := do(t, http.MethodGet, "http://"+g.admin+"/tokengate/legacy/tokens"+q, nil, "")
				msg, _ := r.json(t)["error"].(string)
				if r.status != http.StatusBadRequest || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !strings.HasPrefix(msg, name+": ") {
					t.Errorf("%s: %d %s, want a 400 naming %s", q, r.status, r.body, name)
				}
			}
		})

		t.Run("CLI", func(t *testing.T) {
			out := g.mustCLI("", "legacy", "tokens")
			var line string
			for l := range strings.SplitSeq(out, "\n") {
				if strings.Contains(l, inUseID) {
					line = l
				}
			}
			f := strings.Fields(line)
			if len(f) != 7 || f[4] != "127.0.0.1" || f[5] != base || f[6] != "198.51.100.7,203.0.113.9" && f[6] != "203.0.113.9,198.51.100.7" {
				t.Errorf("legacy tokens, want the last use from 127.0.0.1 for %s and the two other addresses:\n%s", base, out)
			}
			flat := strings.Join(strings.Fields(out), " ")
			for _, want := range []string{
				"2 legacy tokens, 2 listed: 1 used within 30 days, 1 never used",
				"198.51.100.7 1 ", "203.0.113.9 1 ", "127.0.0.1 1 ", base + " 1 ", trusted + " 1 ",
			} {
				if !strings.Contains(flat, want) {
					t.Errorf("legacy tokens lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, inUse) {
				t.Error("legacy tokens printed a secret")
			}
			out = g.mustCLI("", "legacy", "tokens", "--unused-for", "90d")
			if !strings.Contains(out, unusedID) || strings.Contains(out, inUseID) || !strings.Contains(out, "2 legacy tokens, 1 listed") {
				t.Errorf("legacy tokens --unused-for 90d:\n%s", out)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(g.mustCLI("", "legacy", "tokens", "--json", "--used-within", "7d")), &v); err != nil || len(v["tokens"].([]any)) != 1 {
				t.Errorf("legacy tokens --json --used-within 7d: %v %v", v, err)
			}
			if out, err := g.cli("", "legacy", "tokens", "--unused-for", "soon"); err == nil || !strings.Contains(out, "unused_for") {
				t.Errorf("legacy tokens --unused-for soon: %v\n%s", err, out)
			}
		})

		t.Run("PAT listing", func(t *testing.T) {
			r := do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), "")
			if r.status != http.StatusOK {
				t.Fatalf("list: %d %s", r.status, r.body)
			}
			var ips []string
			if !eventually(30*time.Second, func() bool {
				r = do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), "")
				ips, _ = recentIPs(t, findToken(t, r.json(t), patID))
				return sameIPs(ips)
			}) {
				t.Fatalf("the PAT listing shows addresses %v: %s", ips, r.body)
			}
			admin := do(t, http.MethodGet, "http://"+g.admin+"/tokengate/users/alice/tokens", nil, "")
			if ips, _ := recentIPs(t, findToken(t, admin.json(t), patID)); !sameIPs(ips) {
				t.Errorf("admin listing: %d %s", admin.status, admin.body)
			}
			out := g.mustCLI("", "user", "tokens", "alice")
			if !strings.Contains(out, "RECENT ADDRESSES") || !strings.Contains(out, "127.0.0.1,") || !strings.Contains(out, "198.51.100.7") {
				t.Errorf("user tokens:\n%s", out)
			}
		})
	})
}

// jsonString is v as JSON.
func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRecentAddressesNotSpoofed: the address recorded with a use is
// Caddy's client IP only: a client on the listener without trusted
// proxies that sends X-Forwarded-For, Forwarded or X-Real-IP plants none
// of them in its token's recent addresses or the legacy report; and the
// site recorded from a long Host is bounded.
func TestRecentAddressesNotSpoofed(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	grantUse(g, "--user", "alice")
	legacy, legacyID := legacyToken(t, g, "alice", alicePassword)
	patSecret, patID := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
	longHost := strings.Repeat("h", 8000) + ".example"
	for _, tok := range []string{legacy, patSecret} {
		req, err := http.NewRequest(http.MethodGet, g.base+"/spoof", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = longHost
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-For", "203.0.113.66")
		req.Header.Set("Forwarded", "for=203.0.113.77")
		req.Header.Set("X-Real-IP", "203.0.113.88")
		req.Header.Set("Client-IP", "203.0.113.99")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("spoofing request: %d", resp.StatusCode)
		}
	}
	var tokens, report response
	if !eventually(30*time.Second, func() bool {
		tokens = do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), "")
		report = do(t, http.MethodGet, "http://"+g.admin+"/tokengate/legacy/tokens", nil, "")
		pat, row := findToken(t, tokens.json(t), patID), findToken(t, report.json(t), legacyID)
		return pat != nil && row != nil && len(pat["recent_addresses"].([]any)) > 0 && len(row["recent_addresses"].([]any)) > 0
	}) {
		t.Fatalf("the uses were never recorded:\n%s\n%s", tokens.body, report.body)
	}
	for what, tok := range map[string]map[string]any{"PAT": findToken(t, tokens.json(t), patID), "legacy": findToken(t, report.json(t), legacyID)} {
		ips, hosts := recentIPs(t, tok)
		if !slices.Equal(ips, []string{"127.0.0.1"}) || tok["last_used_ip"] != "127.0.0.1" {
			t.Errorf("%s token recorded addresses %v (last %v), want only 127.0.0.1", what, ips, tok["last_used_ip"])
		}
		for h := range hosts {
			if len(h) > 270 || !strings.HasPrefix(h, "hhhh") {
				t.Errorf("%s token recorded a site of %d bytes", what, len(h))
			}
		}
	}
	if strings.Contains(string(tokens.body)+string(report.body), "203.0.113.") {
		t.Errorf("a client-sent address was recorded:\n%s\n%s", tokens.body, report.body)
	}
}
