package tests

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBinary runs the tokengate binary with Caddy's directories in a temp dir.
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestListModules(t *testing.T) {
	out, err := runBinary(t, "list-modules")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, m := range []string{"tokengate", "http.handlers.tokengate", "admin.api.tokengate", "http.handlers.reverse_proxy"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.TrimSpace(line) == m {
				found = true
			}
		}
		if !found {
			t.Errorf("list-modules does not list %s", m)
		}
	}
}

func TestCaddyfileExampleValidates(t *testing.T) {
	out, err := runBinary(t, "validate", "--config", "../Caddyfile.example", "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("Caddyfile.example does not validate: %v\n%s", err, out)
	}
}

// TestConfigErrorsNameTheDirective: mistakes are reported at validate time,
// naming what is wrong.
func TestConfigErrorsNameTheDirective(t *testing.T) {
	tests := []struct {
		name, caddyfile, want string
	}{
		{"unknown site subdirective", ":8080 {\n\ttokengate {\n\t\trequire_scop read\n\t}\n}\n", `unrecognized subdirective "require_scop"`},
		{"unknown global subdirective", "{\n\ttokengate {\n\t\tcache 5\n\t}\n}\n:8080 {\n\ttokengate\n}\n", `unrecognized subdirective "cache"`},
		{"bad duration", "{\n\ttokengate {\n\t\tcache_ttl forever\n\t}\n}\n", `cache_ttl: invalid duration "forever"`},
		{"bad store scheme", "{\n\ttokengate {\n\t\tstore postgres://db/x\n\t}\n}\n:8080 {\n\ttokengate\n}\n", "unsupported store URL scheme"},
		{"bad redis URL", "{\n\ttokengate {\n\t\tstore redis-sentinel://127.0.0.1:26379/0\n\t}\n}\n:8080 {\n\ttokengate\n}\n", "master"},
		{"bad tokens_path", ":8080 {\n\ttokengate {\n\t\ttokens_path tokens/\n\t}\n}\n", "tokens_path"},
		{"bad scope", ":8080 {\n\ttokengate {\n\t\trequire_scope \"a\\\"b\"\n\t}\n}\n", "require_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Caddyfile")
			if err := os.WriteFile(path, []byte(tt.caddyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runBinary(t, "validate", "--config", path, "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("validate accepted it:\n%s", out)
			}
			// Caddy logs the error as JSON, escaping the quotes.
			if !strings.Contains(strings.ReplaceAll(out, `\"`, `"`), tt.want) {
				t.Fatalf("error does not say %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestPasswordBruteForceIsLimited: after login_limits failures the account
// is refused with 429 and Retry-After, even with the right password.
func TestPasswordBruteForceIsLimited(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: "login_limits 3 100 10m"})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		for i := 0; i < 3; i++ {
			r := do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", "wrong password"), "")
			if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("attempt %d: %d %s", i, r.status, r.body)
			}
		}
		r := do(t, http.MethodGet, g.base+"/api-user/tokens", basic("alice", alicePassword), "")
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("after 3 failures: %d (Retry-After %q) %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		if r.json(t)["error"] != "rate_limited" {
			t.Fatalf("body %s", r.body)
		}
		// Another account from the same address is not locked.
		g.mustCLI(alicePassword+"\n", "user", "add", "bob", "--token-login")
		if r := do(t, http.MethodGet, g.base+"/api-user/tokens", basic("bob", alicePassword), ""); r.status != http.StatusOK {
			t.Fatalf("bob: %d %s", r.status, r.body)
		}
		g.assertNoSecrets(alicePassword)
	})
}

// TestCLIWithoutGateway: the CLI fails with a clear message when no
// gateway answers.
func TestCLIWithoutGateway(t *testing.T) {
	out, err := runBinary(t, "user", "list", "--address", "127.0.0.1:1")
	if err == nil || !strings.Contains(out, "connection refused") {
		t.Fatalf("user list without a gateway: %v\n%s", err, out)
	}
	out, err = runBinary(t, "user", "set", "alice", "--address", "127.0.0.1:1")
	if err == nil || !strings.Contains(out, "nothing to change") {
		t.Fatalf("user set without flags: %v\n%s", err, out)
	}
}

// TestBinaryNamesItself: usage lines say tokengate, not caddy, and
// `version` (and --version) print tokengate's version and Caddy's.
func TestBinaryNamesItself(t *testing.T) {
	out, err := runBinary(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Usage:\n  tokengate [command]") || strings.Contains(out, "caddy [command]") {
		t.Errorf("--help usage does not name tokengate:\n%s", out)
	}
	out, err = runBinary(t, "user", "add", "--help")
	if err != nil || !strings.Contains(out, "tokengate user add") {
		t.Errorf("user add --help: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runBinary(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if !strings.HasPrefix(out, "tokengate ") || !strings.Contains(out, ", Caddy v2.") {
			t.Errorf("%v printed %q, want tokengate's version and Caddy's", args, out)
		}
	}
}

// TestCLIErrorsReadPlainly: CLI errors name what was not found and speak
// in flag names, never `HTTP 404: {"error":...}`.
func TestCLIErrorsReadPlainly(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "show", "bob"}, "no such user: bob"},
		{[]string{"user", "revoke", "bob", "abc"}, "token not found: abc"},
		{[]string{"oauth", "signing", "set", "--lifetime", "5"}, "--lifetime"},
		{[]string{"oauth", "client", "show", "tgc_nope"}, "no such OAuth key: tgc_nope"},
		{[]string{"oauth", "signing", "set", "--algorithm", "RS256"}, "--confirm"},
	} {
		out, err := g.cli("", tc.args...)
		if err == nil {
			t.Fatalf("%v succeeded: %s", tc.args, out)
		}
		if !strings.Contains(out, tc.want) || strings.Contains(out, "HTTP 4") || strings.Contains(out, `{"error"`) {
			t.Errorf("%v printed %q, want plain words with %q", tc.args, out, tc.want)
		}
	}
}
