// Package tests holds black-box tests: they build the real tokengate
// binary, start it with a real Caddyfile in front of a real upstream, on
// the embedded store and on a real redis-server, and talk to it over HTTP
// and through its CLI as a user would.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

var (
	binary string            // the built tokengate binary
	redis  *redistest.Server // shared by the Redis variants; flushed per test
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tokengate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "tokengate")
	// With the race detector: a data race in the gateway is reported on
	// its standard error, which gateway.stop turns into a failure of the
	// test that ran into it.
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/tokengate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokengate:", err)
		return 1
	}
	srv, stop, err := redistest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting redis-server:", err)
		return 1
	}
	defer stop()
	redis = srv
	defer runAtExit()
	return m.Run()
}

var (
	atExitMu sync.Mutex
	atExits  []func()
)

// atExit registers fn to run when all the tests have ended (latest first),
// e.g. to stop a Redis topology that the first test needing it started.
func atExit(fn func()) {
	atExitMu.Lock()
	defer atExitMu.Unlock()
	atExits = append(atExits, fn)
}

// shared is a deployment that the tests share: the first test that needs
// it starts it, and it is stopped when the tests end. A deployment that
// does not come up fails every test that needs it.
type shared[T any] struct {
	what  string                    // for the failure message
	start func() (T, func(), error) // starts it; the func stops it
	once  sync.Once
	v     T
	err   error
}

// get returns the deployment, started on first use.
func (s *shared[T]) get(t *testing.T) T {
	t.Helper()
	s.once.Do(func() {
		var stop func()
		if s.v, stop, s.err = s.start(); s.err == nil {
			atExit(stop)
		}
	})
	if s.err != nil {
		t.Fatalf("starting %s: %v", s.what, s.err)
	}
	return s.v
}

// runAtExit runs the functions atExit registered.
func runAtExit() {
	atExitMu.Lock()
	fns := atExits
	atExits = nil
	atExitMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// storeKind names a store variant every end-to-end test runs on.
type storeKind string

const (
	embedded storeKind = "embedded"
	redisKV  storeKind = "redis"
)

// forEachStore runs fn once per store backend: the embedded store, then a
// standalone redis-server (flushed first).
func forEachStore(t *testing.T, fn func(t *testing.T, kind storeKind)) {
	for _, kind := range []storeKind{embedded, redisKV} {
		t.Run(string(kind), func(t *testing.T) { fn(t, kind) })
	}
}

// topologies are the deployments forEachTopology runs a flow on: every
// store backend and every Redis topology the gateway supports. Each Redis
// topology is started (once, for all the tests that use it) by the first
// test that asks for it and stopped when the tests end.
var topologies = []storeKind{embedded, redisKV, sentinelKV, clusterKV}

// forEachTopology is forEachStore over topologies, for the flows that must
// hold on every deployment a user may run.
func forEachTopology(t *testing.T, fn func(t *testing.T, kind storeKind)) {
	for _, kind := range topologies {
		t.Run(string(kind), func(t *testing.T) { fn(t, kind) })
	}
}

// upstream is a real HTTP backend that records what reached it.
type upstream struct {
	addr string
	mu   sync.Mutex
	reqs []*http.Request
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "query": r.URL.RawQuery, "headers": r.Header})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

// last returns the last request the upstream saw.
func (u *upstream) last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// gateway is a running tokengate process.
type gateway struct {
	t       *testing.T
	dir     string
	admin   string // host:port of the admin endpoint
	base    string // the guarded site
	trusted string // the same site on a listener that trusts 127.0.0.1 as a proxy
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended
	logs    *syncBuffer
	store   string
	// raceChecked: stop has looked for the race detector's reports of
	// this run (launch starts a run).
	raceChecked bool
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// gatewayConfig customises the Caddyfile of startGateway.
type gatewayConfig struct {
	// siteOptions go inside the site's tokengate block.
	siteOptions string
	// appOptions go inside the global tokengate block.
	appOptions string
	// env is added to the gateway process's environment ("NAME=value").
	env []string
	// extraSites is appended to the Caddyfile (more site blocks).
	extraSites string
	// globalOptions go in the global options block ({{port}} and
	// {{trusted}} are replaced there too).
	globalOptions string
}

const caddyfileTemplate = `{
	admin 127.0.0.1:{{admin}}
	persist_config off
	{{global}}
	default_bind 127.0.0.1
	log {
		output stderr
		level DEBUG
	}
	servers 127.0.0.1:{{trusted}} {
		trusted_proxies static 127.0.0.1/32
	}
	tokengate {
		store {{store}}
		last_access_flush 1s
		bcrypt_cost 4
		{{app}}
	}
}

http://:{{port}}, http://:{{trusted}} {
	# The access log records requests as they arrived, before any handler
	# runs: the filter the README recommends keeps credentials out of it.
	log {
		format filter {
			request>headers>Auth-Pwd delete
			request>headers>X-Auth-Token delete
			request>uri query {
				delete token
			}
		}
	}
	tokengate {
		{{site}}
	}
	reverse_proxy {{upstream}}
}
`

// startGateway writes a Caddyfile and runs the binary on it.
func startGateway(t *testing.T, kind storeKind, up *upstream, cfg gatewayConfig) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: t.TempDir(), logs: &syncBuffer{}}
	switch kind {
	case embedded:
		g.store = filepath.Join(g.dir, "tokengate.db")
	case redisKV:
		redis.FlushAll(t)
		g.store = redis.URL()
	case sentinelKV:
		g.store = sentinelURL(t)
	case clusterKV:
		g.store = flushedCluster(t).URL()
	}
	g.start(up, cfg)
	return g
}

// startPeer runs a second node on g's Redis store (nothing is flushed),
// as a deployment with several gateways behind a load balancer would.
func (g *gateway) startPeer(up *upstream, cfg gatewayConfig) *gateway {
	g.t.Helper()
	if !strings.HasPrefix(g.store, "redis") {
		g.t.Fatalf("nodes share only a Redis store, not %s", g.store)
	}
	return startGatewayOn(g.t, g.store, up, cfg)
}

// startGatewayOn runs the binary on store, a location the test set up
// itself (a Redis of its own, a proxy, a deployment): nothing is flushed.
func startGatewayOn(t *testing.T, store string, up *upstream, cfg gatewayConfig) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: t.TempDir(), logs: &syncBuffer{}, store: store}
	g.start(up, cfg)
	return g
}

func (g *gateway) start(up *upstream, cfg gatewayConfig) {
	g.launch(up, cfg)
	g.waitReady()
}

// launch writes the Caddyfile and starts the process, without waiting for
// it to serve (or to fail: see g.exited).
func (g *gateway) launch(up *upstream, cfg gatewayConfig) {
	t := g.t
	adminPort, port, trusted := freePort(t), freePort(t), freePort(t)
	g.admin = fmt.Sprintf("127.0.0.1:%d", adminPort)
	g.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	g.trusted = fmt.Sprintf("http://127.0.0.1:%d", trusted)
	caddyfile := strings.NewReplacer(
		"{{admin}}", fmt.Sprint(adminPort), "{{port}}", fmt.Sprint(port), "{{trusted}}", fmt.Sprint(trusted),
		"{{store}}", g.store, "{{upstream}}", up.addr, "{{app}}", cfg.appOptions, "{{site}}", cfg.siteOptions,
	).Replace(strings.Replace(caddyfileTemplate, "{{global}}", cfg.globalOptions, 1)) + cfg.extraSites
	path := filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(binary, "run", "--config", path, "--adapter", "caddyfile")
	g.cmd.Env = append(g.env(), cfg.env...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.exited = make(chan struct{})
	g.raceChecked = false
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(g.stop)
}

// running reports whether the process is still alive.
func (g *gateway) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// env keeps Caddy's data and config directories inside the test's dir.
func (g *gateway) env() []string {
	return append(os.Environ(), "HOME="+g.dir, "XDG_DATA_HOME="+filepath.Join(g.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(g.dir, "config"))
}

func (g *gateway) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !g.running() {
			g.t.Fatalf("gateway exited at start; logs:\n%s", g.logs.String())
		}
		resp, err := http.Get(g.base + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("gateway did not come up; logs:\n%s", g.logs.String())
}

// stop ends the process gracefully, so that pending writes are flushed,
// and fails the test if the race detector reported a data race in it.
func (g *gateway) stop() {
	if g.exited == nil {
		return
	}
	if g.running() {
		_ = g.cmd.Process.Signal(os.Interrupt)
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
	}
	// Also for a process that ended on its own; once, though stop runs
	// both when a test stops the gateway and at its cleanup.
	if !g.raceChecked {
		g.raceChecked = true
		if logs := g.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
			g.t.Errorf("the race detector found a data race in the gateway; logs:\n%s", logs)
		}
	}
}

// eventually polls cond until it holds, for at most bound, and reports
// whether it held: a bounded wait for what another process does in its
// own time.
func eventually(bound time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(bound); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// logWithin reports whether the gateway's log holds msg within bound: a
// line the gateway wrote before it answered may still be on its way
// through the pipe when the answer arrives.
func (g *gateway) logWithin(msg string, bound time.Duration) bool {
	return eventually(bound, func() bool { return strings.Contains(g.logs.String(), msg) })
}

// logHas is logWithin 30 s.
func (g *gateway) logHas(msg string) bool { return g.logWithin(msg, 30*time.Second) }

// waitLogWithin fails the test unless the gateway's log holds msg within
// bound, and returns how often it does.
func (g *gateway) waitLogWithin(msg string, bound time.Duration) int {
	g.t.Helper()
	if !g.logWithin(msg, bound) {
		g.t.Fatalf("no %q in the log within %v:\n%s", msg, bound, g.logs.String())
	}
	return strings.Count(g.logs.String(), msg)
}

// waitLog is waitLogWithin 30 s.
func (g *gateway) waitLog(msg string) int {
	g.t.Helper()
	return g.waitLogWithin(msg, 30*time.Second)
}

// cli runs a tokengate subcommand against this gateway's admin endpoint.
func (g *gateway) cli(stdin string, args ...string) (string, error) {
	g.t.Helper()
	args = append(args, "--address", g.admin)
	cmd := exec.Command(binary, args...)
	cmd.Env = g.env()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustCLI is cli that fails the test on error.
func (g *gateway) mustCLI(stdin string, args ...string) string {
	g.t.Helper()
	out, err := g.cli(stdin, args...)
	if err != nil {
		g.t.Fatalf("tokengate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not JSON (%d): %q", r.status, r.body)
	}
	return v
}

// do sends a request and fails the test if no answer came back. headers
// are raw (not canonicalised), so a test can send exactly the spelling a
// hostile client would.
func do(t *testing.T, method, url string, headers map[string][]string, body string) response {
	t.Helper()
	r, err := exchange(http.DefaultClient, method, url, headers, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exchange is do with a client of the caller's and the error returned, for
// goroutines other than the test's (which may not fail it): a status of
// 0 when no answer came back, the answer as far as it was read when its
// body broke off.
func exchange(client *http.Client, method, url string, headers map[string][]string, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	for k, vs := range headers {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}, err
}

// loadClient is the HTTP client of the load tests' workers: bounded, so
// that a request the gateway never answers fails rather than hangs the
// run.
var loadClient = &http.Client{Timeout: 15 * time.Second}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

func basic(user, password string) map[string][]string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return map[string][]string{"Authorization": {req.Header.Get("Authorization")}, "Content-Type": {"application/json"}}
}

// assertNoSecrets stops the gateway, so that all its output has arrived
// through the pipe, and fails if that output ever held a secret. Call it
// when the test is done with the gateway.
func (g *gateway) assertNoSecrets(secrets ...string) {
	g.t.Helper()
	g.stop()
	logs := g.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			g.t.Errorf("the gateway logged a secret (%.8s...)", s)
		}
	}
}
