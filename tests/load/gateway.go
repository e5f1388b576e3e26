package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ports of one gateway process.
type ports struct {
	admin, bare, gate, check, forward int
	// assert is tokengate with identity_assertion (ES256) + reverse_proxy.
	assert int
}

// gateway is a running tokengate process with five sites: bare
// reverse_proxy (the baseline), tokengate + reverse_proxy, the same with
// an identity assertion, a yes/no check endpoint, and forward_auth to that
// endpoint + reverse_proxy.
type gateway struct {
	cmd   *exec.Cmd
	ports ports
	logs  *bytes.Buffer
	dir   string
}

const caddyfile = `{
	admin 127.0.0.1:{{admin}}
	persist_config off
	default_bind 127.0.0.1
	log {
		level ERROR
	}
	tokengate {
		store {{store}}
		max_tokens_per_user -1
		jwks_max_age 1s
		audit_log off
		{{app}}
	}
}

(upstream) {
	reverse_proxy {{upstream}} {
		transport http {
			keepalive_idle_conns_per_host 128
		}
	}
}

http://:{{bare}} {
	import upstream
}

http://:{{gate}} {
	tokengate
	import upstream
}

http://:{{assert}} {
	tokengate {
		identity_assertion {
			audience https://upstream.load
		}
	}
	import upstream
}

http://:{{check}} {
	tokengate {
		tokens_api off
		oauth_api off
		legacy_api off
	}
	# Answer with who the caller is; deferred, so the placeholders are
	# read after tokengate has set them.
	header {
		defer
		X-Auth-User {http.auth.user.id}
		X-Auth-Token-Type {http.auth.user.token_type}
		X-Auth-Token-Id {http.auth.user.token_id}
		X-Auth-Scopes {http.auth.user.scopes}
	}
	respond 204
}

http://:{{forward}} {
	forward_auth 127.0.0.1:{{check}} {
		uri /check
		copy_headers X-Auth-User X-Auth-Token-Type X-Auth-Token-Id X-Auth-Scopes
	}
	import upstream
}
`

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGateway runs binary on a fresh Caddyfile for storeURL.
func startGateway(binary, dir, storeURL, upstream, appOptions string) (*gateway, error) {
	g := &gateway{ports: ports{freePort(), freePort(), freePort(), freePort(), freePort(), freePort()}, logs: &bytes.Buffer{}, dir: dir}
	cf := strings.NewReplacer(
		"{{admin}}", fmt.Sprint(g.ports.admin), "{{bare}}", fmt.Sprint(g.ports.bare), "{{gate}}", fmt.Sprint(g.ports.gate),
		"{{check}}", fmt.Sprint(g.ports.check), "{{forward}}", fmt.Sprint(g.ports.forward), "{{assert}}", fmt.Sprint(g.ports.assert),
		"{{store}}", storeURL, "{{upstream}}", upstream, "{{app}}", appOptions,
	).Replace(caddyfile)
	path := filepath.Join(dir, fmt.Sprintf("Caddyfile.%d", g.ports.admin))
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	g.cmd = exec.Command(binary, "run", "--config", path, "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(g.url(g.ports.bare, "/")); err == nil {
			resp.Body.Close()
			return g, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.stop()
	return nil, fmt.Errorf("gateway did not start:\n%s", g.logs.String())
}

func (g *gateway) url(port int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
}

func (g *gateway) stop() {
	if g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
}

// storeStats reads the node's store counters: commands and round trips.
func (g *gateway) storeStats() (ops, trips uint64, err error) {
	var v struct {
		Ops        uint64 `json:"ops"`
		RoundTrips uint64 `json:"round_trips"`
	}
	err = g.admin(http.MethodGet, "/tokengate/store/stats", nil, &v)
	return v.Ops, v.RoundTrips, err
}

// admin calls the admin API; out may be nil.
func (g *gateway) admin(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.url(g.ports.admin, path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
