package tests

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// validate runs `tokengate validate` on caddyfile in dir, with Caddy's
// directories under dir and dir as the working directory.
func validate(t *testing.T, dir, caddyfile string) (string, error) {
	t.Helper()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "validate", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tree lists every path under dir.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A validate beside a running gateway neither needs nor touches the
// embedded store's file, which the gateway holds locked.
func TestValidateBesideRunningGateway(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	caddyfile, err := os.ReadFile(filepath.Join(g.dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := validate(t, t.TempDir(), string(caddyfile))
	if err != nil {
		t.Fatalf("validate failed while the gateway runs: %v\n%s", err, out)
	}
	if !g.running() {
		t.Fatal("the gateway stopped")
	}
}

// validate opens, locks and creates nothing: not the default store under
// Caddy's data directory, not the audit directory.
func TestValidateCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit")
	caddyfile := fmt.Sprintf("{\n\tadmin off\n\ttokengate {\n\t\taudit_log %s\n\t}\n}\nhttp://127.0.0.1:%d {\n\ttokengate\n\trespond ok\n}\n", audit, freePort(t))
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	if out, err := validate(t, dir, caddyfile); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if after := tree(t, dir); !slices.Equal(before, after) {
		t.Errorf("validate created files or directories:\nbefore %v\nafter  %v", before, after)
	}
}

// A store value that looks like a mistyped URL is refused with a hint, and
// no file named after it appears in the working directory.
func TestValidateMistypedStoreURL(t *testing.T) {
	cases := map[string]string{
		"redis//127.0.0.1:6379":       "did you mean redis://127.0.0.1:6379",
		"redis:/127.0.0.1:6379":       "did you mean redis://127.0.0.1:6379",
		"redis-sentinal://h?master=m": "did you mean redis-sentinel://",
		"127.0.0.1:6379":              "did you mean redis://127.0.0.1:6379",
	}
	for value, hint := range cases {
		t.Run(value, func(t *testing.T) {
			dir := t.TempDir()
			caddyfile := fmt.Sprintf("{\n\tadmin off\n\ttokengate {\n\t\tstore %s\n\t}\n}\nhttp://127.0.0.1:%d {\n\ttokengate\n\trespond ok\n}\n", value, freePort(t))
			out, err := validate(t, dir, caddyfile)
			if err == nil {
				t.Fatalf("validate accepted store %s:\n%s", value, out)
			}
			if !strings.Contains(out, hint) {
				t.Errorf("no hint %q in:\n%s", hint, out)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "Caddyfile" {
					t.Errorf("validate left %s in the working directory", e.Name())
				}
			}
		})
	}
}

// Redis unreachable at start-up stops nothing: the gateway starts, answers
// 503 (JSON) for what needs the store while other sites work, retries in
// the background, logs once when Redis is back, and then works.
func TestRedisDownAtStartup(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	up := startUpstream(t)
	other := freePort(t)
	g := startGatewayOn(t, srv.URL(), up, gatewayConfig{extraSites: fmt.Sprintf("\nhttp://:%d {\n\trespond \"plain site\" 200\n}\n", other)})
	g.waitLog("store unreachable")

	r := do(t, http.MethodGet, g.base+"/data", bearer(strings.Repeat("ab", 20)), "")
	if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("bearer request with Redis down: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", other), nil, ""); r.status != http.StatusOK {
		t.Fatalf("the site without tokengate: %d %s", r.status, r.body)
	}
	if up.count() != 0 {
		t.Fatal("a request reached the upstream without the store")
	}

	srv.Restart(t)
	g.waitLog("store reachable again")
	c := addClient(t, g, "after the outage")
	tok := requestToken(t, g.base, c, nil, "")
	if r := do(t, http.MethodGet, g.base+"/data", bearer(tok), ""); r.status != http.StatusOK {
		t.Fatalf("token after recovery: %d %s", r.status, r.body)
	}
	if n := strings.Count(g.logs.String(), "store unreachable"); n != 1 {
		t.Errorf("%d lines say the store is unreachable, want 1", n)
	}
	if n := strings.Count(g.logs.String(), "store reachable again"); n != 1 {
		t.Errorf("%d lines say the store is back, want 1", n)
	}
}

// An audit log that cannot be written is reported once per streak of
// failures and counted; the token requests are answered all the same.
func TestAuditLogUnwritable(t *testing.T) {
	up := startUpstream(t)
	auditDir := t.TempDir()
	g := startGateway(t, embedded, up, gatewayConfig{appOptions: "audit_log " + auditDir})
	c := addClient(t, g, "audited")
	// A file where the log wants its directory: writes fail, even as root.
	if err := os.WriteFile(filepath.Join(auditDir, "auth"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		requestToken(t, g.base, c, nil, "")
	}
	if n := strings.Count(g.logs.String(), "writing the audit log failed"); n != 1 {
		t.Errorf("%d error lines for one streak of failures, want 1; logs:\n%s", n, g.logs.String())
	}
	var stats map[string]uint64
	if err := json.Unmarshal([]byte(g.adminGet(t, "/tokengate/store/stats")), &stats); err != nil {
		t.Fatal(err)
	}
	if stats["audit_write_failures"] != 3 {
		t.Errorf("stats %v, want audit_write_failures 3", stats)
	}
	// And validate says so before a gateway starts on it.
	caddyfile, err := os.ReadFile(filepath.Join(g.dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := validate(t, t.TempDir(), string(caddyfile)); err == nil || !strings.Contains(out, "audit_log") {
		t.Errorf("validate with an unwritable audit_log: %v\n%s", err, out)
	}
}

// adminGet GETs an admin API path and returns the body.
func (g *gateway) adminGet(t *testing.T, path string) string {
	t.Helper()
	r := do(t, http.MethodGet, "http://"+g.admin+path, nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	return string(r.body)
}
