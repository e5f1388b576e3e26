// Command load is tokengate's load harness: in one run on one machine it
// starts a Go upstream, a real redis-server and the built binary, and
// measures requests/s and p50/p99 latency with wrk for every token kind
// side by side with bare reverse_proxy (the baseline B) and with Caddy's
// forward_auth to a tokengate yes/no endpoint. Rows that touch the store
// run on the embedded store and on Redis; every row reports store round
// trips and commands per request from the gateway's own counters (and
// Redis' commandstats, which also counts the commands inside scripts).
// Rounds are interleaved and each figure is the median of the rounds.
//
//	go run ./tests/load            # full run (about 10 minutes)
//	go run ./tests/load -short     # a second per row, one round (the test suite runs this)
//
// Results are printed and written as JSON and Markdown under
// tests/load/results/.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

type config struct {
	short    bool
	rounds   int
	duration time.Duration
	conns    int
	threads  int
	out      string
	only     string
	// failLimit is the gateway's token_failure_limit (see the flag).
	failLimit string
}

func main() {
	var c config
	flag.BoolVar(&c.short, "short", false, "a second per row, one round, small pools")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds (each figure is the median)")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "wrk duration per row and round")
	flag.IntVar(&c.conns, "c", 50, "wrk connections")
	flag.IntVar(&c.threads, "t", 2, "wrk threads")
	flag.StringVar(&c.out, "out", "tests/load/results", "results folder")
	flag.StringVar(&c.only, "only", "", "run only rows whose name contains this")
	flag.StringVar(&c.failLimit, "token-failure-limit", "off", "the gateway's token_failure_limit: off measures what a flood "+
		"costs the store; a limit (e.g. '100 1m', the product default) shows it refused: the unknown-flood row is then "+
		"mostly 429, the expected outcome (run it with -only unknown: in a full run the flood would also limit the cold rows' address)")
	flag.Parse()
	if c.short {
		c.rounds, c.duration = 1, time.Second
	}
	results, extra, err := run(c)
	if err == nil {
		err = report(c, results, extra)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// row is one measured configuration.
type row struct {
	Name string `json:"name"`
	// Store is "embedded" or "redis".
	Store string `json:"store"`
	// Expect2xx is false for rows whose answers are refusals by design.
	Expect2xx bool `json:"expect_2xx"`
	// Baseline rows are the B of their store run.
	Baseline bool `json:"baseline"`
	// Group is what the row's targets are ("cached", "first_sight", ...).
	Group string `json:"group"`

	port    int
	path    string
	mode    string // once, cycle, none, label
	tokens  []string
	perRnd  int // tokens per round for "once" rows
	method  string
	body    string
	ctype   string
	conns   int
	threads int
	// duration overrides the run's per-row duration (first-sight RS256:
	// signing its pool costs a millisecond a token).
	duration time.Duration
}

// sample is one wrk run of a row.
type sample struct {
	RPS          float64 `json:"rps"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	Requests     int64   `json:"requests"`
	StatusErrors int64   `json:"status_errors"`
	SocketErrors int64   `json:"socket_errors"`
	StoreOps     uint64  `json:"store_ops"`
	StoreTrips   uint64  `json:"store_round_trips"`
	RedisCalls   int64   `json:"redis_calls"`
	Overshoot    int64   `json:"repeated_tokens"`
	Exhausted    bool    `json:"pool_exhausted"`
	// Sample describes one answer of a row that got refusals.
	Sample string `json:"sample_answer,omitempty"`
}

// result is a row's median figures.
type result struct {
	row
	Samples         []sample `json:"samples"`
	RPS             float64  `json:"rps"`
	P50us           float64  `json:"p50_us"`
	P99us           float64  `json:"p99_us"`
	RatioToB        float64  `json:"ratio_to_b"`
	StorePerRequest float64  `json:"store_calls_per_request"`
	TripsPerRequest float64  `json:"store_round_trips_per_request"`
	RedisPerRequest float64  `json:"redis_calls_per_request"`
	Errors          int64    `json:"errors"`
	RepeatedTokens  int64    `json:"repeated_tokens"`
	Failed          bool     `json:"failed"`
	// PoolExhausted: a "once" row used up its pool before the time was
	// over; its rate is then a lower bound (the row was idle at the end).
	PoolExhausted     bool    `json:"pool_exhausted"`
	FailReason        string  `json:"fail_reason,omitempty"`
	ForwardAuthFactor float64 `json:"times_forward_auth,omitempty"`
}

// run measures every row; failed rows are in the results, err is for a
// harness that could not run.
func run(c config) ([]result, map[string]any, error) {
	if err := ensureTools(); err != nil {
		return nil, nil, err
	}
	root, err := repoRoot()
	if err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp("", "tokengate-load-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(work)
	binary := filepath.Join(work, "tokengate")
	fmt.Println("building tokengate...")
	build := exec.Command("go", "build", "-o", binary, "./cmd/tokengate")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, nil, fmt.Errorf("building: %v", err)
	}
	upstream, stopUpstream, err := startUpstream()
	if err != nil {
		return nil, nil, err
	}
	defer stopUpstream()
	redis, stopRedis, err := redistest.StartMain()
	if err != nil {
		return nil, nil, fmt.Errorf("starting redis-server: %v", err)
	}
	defer stopRedis()

	var results []result
	extra := map[string]any{}
	for _, kind := range []string{"embedded", "redis"} {
		rs, more, err := runStore(c, kind, work, binary, upstream, redis)
		if err != nil {
			return nil, nil, fmt.Errorf("%s store: %v", kind, err)
		}
		results = append(results, rs...)
		for k, v := range more {
			extra[kind+" "+k] = v
		}
	}
	ratios(results)
	return results, extra, nil
}

// repoRoot is the folder of go.mod, from here or above.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the current directory")
		}
		dir = parent
	}
}

// ensureTools installs wrk and redis-server from Debian's packages when
// they are missing.
func ensureTools() error {
	var missing []string
	for cmd, pkg := range map[string]string{"wrk": "wrk", "redis-server": "redis-server"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Println("installing", strings.Join(missing, " "), "...")
	sudo := []string{}
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, append([]string{"apt-get", "install", "-y", "-qq"}, missing...)} {
		cmd := exec.Command(append(sudo, args...)[0], append(sudo, args...)[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("installing %v: %v", missing, err)
		}
	}
	return nil
}

// startUpstream serves a small 200 answer: a Go server, not a script, so
// the upstream is never the bottleneck.
func startUpstream() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	body := []byte(`{"ok":true}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}

// pubsubDownRevokes of the revocable tokens are kept for the pub/sub-down
// measurement.
const pubsubDownRevokes = 20

// poolSizes are per round; "once" rows stop when their pool is used up.
// They are sized above what the row can do in its time on this machine,
// so that it never runs out (a row that does is marked).
func poolSizes(c config) pools {
	perSecond := map[string]int{"HS256": 14000, "RS256": 11000, "ES256": 7000}
	p := pools{rounds: c.rounds, firstSight: map[string]int{}, cold: int(14000 * c.duration.Seconds()), revocable: 1000 + pubsubDownRevokes}
	for alg, n := range perSecond {
		p.firstSight[alg] = int(float64(n) * rowDuration(c, alg).Seconds())
	}
	if c.short {
		// The short mode checks that the harness works, not speed: small
		// pools keep its seeding quick (rows may then run out: marked).
		for alg := range p.firstSight {
			p.firstSight[alg] /= 4
		}
		p.cold /= 4
		p.revocable = 200 + pubsubDownRevokes
	}
	return p
}

// rowDuration is the time of a first-sight row of alg: RS256 rows are
// kept short because each of their tokens costs the harness a signature.
func rowDuration(c config, alg string) time.Duration {
	if alg == "RS256" {
		return min(c.duration, 2*time.Second)
	}
	return c.duration
}

// runStore seeds one store, starts the gateway on it and measures its rows.
func runStore(c config, kind, work, binary, upstream string, redis *redistest.Server) ([]result, map[string]any, error) {
	ctx := context.Background()
	p := poolSizes(c)
	dir := filepath.Join(work, kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	var storeURL string
	var st store.Store
	var err error
	fmt.Printf("seeding the %s store...\n", kind)
	switch kind {
	case "embedded":
		storeURL = filepath.Join(dir, "tokengate.db")
		st, err = boltstore.Open(storeURL, boltstore.Options{NoSync: true})
	default:
		if err := redisCommand(redis, "FLUSHALL"); err != nil {
			return nil, nil, err
		}
		storeURL = redis.URL()
		st, err = redisstore.Open(storeURL, redisstore.Options{})
	}
	if err != nil {
		return nil, nil, err
	}
	sd, err := seed(ctx, st, p)
	// The embedded store is one file locked by its user: close it before
	// the gateway opens it.
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	appOptions := ""
	if c.failLimit != "" {
		appOptions = "token_failure_limit " + c.failLimit
	}
	g, err := startGateway(binary, dir, storeURL, upstream, appOptions)
	if err != nil {
		return nil, nil, err
	}
	defer g.stop()

	rows := buildRows(c, kind, g, sd, p)
	if c.only != "" {
		rows = filterRows(rows, c.only)
	}
	results, err := measure(c, g, rows, kind, redis)
	if err != nil {
		return nil, nil, err
	}
	extra := map[string]any{}
	if kind == "redis" && (c.only == "" || strings.Contains("propagation", c.only)) {
		n := len(sd.revocable) - pubsubDownRevokes
		prop, err := measurePropagation(binary, dir, storeURL, upstream, g, sd.revocable[:n])
		if err != nil {
			return nil, nil, fmt.Errorf("propagation: %v", err)
		}
		extra["propagation"] = prop
		fmt.Println("[redis] revokes with node B's pub/sub silently down")
		down, err := measurePubsubDown(binary, dir, redis.Addr(), upstream, g, sd.revocable[n:])
		if err != nil {
			return nil, nil, fmt.Errorf("pub/sub down: %v", err)
		}
		extra["pubsub_down"] = down
	}
	if c.only == "" || strings.Contains("endpoint", c.only) {
		ep, err := measureEndpoints(c, g, sd, kind, redis)
		if err != nil {
			return nil, nil, fmt.Errorf("token endpoint: %v", err)
		}
		results = append(results, ep...)
	}
	return results, extra, nil
}

func filterRows(rows []row, only string) []row {
	var out []row
	for _, r := range rows {
		if r.Baseline || strings.Contains(r.Name, only) {
			out = append(out, r)
		}
	}
	return out
}

func bearer(ts ...string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = "Bearer " + t
	}
	return out
}

// buildRows lists the rows of a store run. Rows that never touch the
// store run only on the embedded store.
func buildRows(c config, kind string, g *gateway, sd *seeded, p pools) []row {
	base := row{Store: kind, Expect2xx: true, path: "/", mode: "cycle", conns: c.conns, threads: c.threads, method: "GET"}
	mk := func(name, group string, port int, mode string, tokens []string, perRound int, edit func(*row)) row {
		r := base
		r.Name, r.Group, r.port, r.mode, r.tokens, r.perRnd = name, group, port, mode, tokens, perRound
		if edit != nil {
			edit(&r)
		}
		return r
	}
	rows := []row{mk("bare reverse_proxy (B)", "baseline", g.ports.bare, "none", nil, 0, func(r *row) { r.Baseline = true })}
	if kind == "embedded" {
		rows = append(rows,
			mk("cached PAT", "cached", g.ports.gate, "cycle", bearer(sd.hotPAT), 0, nil),
			mk("cached legacy token", "cached", g.ports.gate, "cycle", bearer(sd.hotLegacy), 0, nil),
			mk("cached PAT + identity assertion, ES256", "cached", g.ports.assert, "cycle", bearer(sd.hotPAT), 0, nil),
			mk("access token seen before, HS256", "cached", g.ports.gate, "cycle", bearer(sd.hotJWT["HS256"]), 0, nil),
			mk("access token seen before, RS256", "cached", g.ports.gate, "cycle", bearer(sd.hotJWT["RS256"]), 0, nil),
			mk("access token seen before, ES256", "cached", g.ports.gate, "cycle", bearer(sd.hotJWT["ES256"]), 0, nil),
			mk("access token first sight, HS256", "first_sight", g.ports.gate, "once", bearer(sd.firstSight["HS256"]...), p.firstSight["HS256"], nil),
			mk("access token first sight, RS256", "first_sight", g.ports.gate, "once", bearer(sd.firstSight["RS256"]...), p.firstSight["RS256"],
				func(r *row) { r.duration = rowDuration(c, "RS256") }),
			mk("access token first sight, ES256", "first_sight", g.ports.gate, "once", bearer(sd.firstSight["ES256"]...), p.firstSight["ES256"], nil),
			mk("wrong-checksum flood", "malformed", g.ports.gate, "cycle", bearer(wrongChecksums(10000)...), 0, func(r *row) { r.Expect2xx = false }),
			mk("no token", "malformed", g.ports.gate, "none", nil, 0, func(r *row) { r.Expect2xx = false }),
			mk("forward_auth + cached PAT", "forward_auth", g.ports.forward, "cycle", bearer(sd.hotPAT), 0, nil),
			mk("c1: bare reverse_proxy (B)", "latency", g.ports.bare, "none", nil, 0, func(r *row) { r.conns, r.threads = 1, 1 }),
			mk("c1: cached PAT", "latency", g.ports.gate, "cycle", bearer(sd.hotPAT), 0, func(r *row) { r.conns, r.threads = 1, 1 }),
			mk("c1: cached PAT + identity assertion, ES256", "latency", g.ports.assert, "cycle", bearer(sd.hotPAT), 0, func(r *row) { r.conns, r.threads = 1, 1 }),
			mk("c1: cached legacy token", "latency", g.ports.gate, "cycle", bearer(sd.hotLegacy), 0, func(r *row) { r.conns, r.threads = 1, 1 }),
			mk("c1: access token seen before, HS256", "latency", g.ports.gate, "cycle", bearer(sd.hotJWT["HS256"]), 0, func(r *row) { r.conns, r.threads = 1, 1 }),
		)
	}
	rows = append(rows,
		mk("PAT first sight (cold, store look-up)", "cold", g.ports.gate, "once", bearer(sd.coldPATs...), p.cold, nil),
		mk("well-formed unknown flood", "unknown", g.ports.gate, "once", bearer(randomPATs(3*p.rounds*p.cold)...), 3*p.cold, func(r *row) { r.Expect2xx = false }),
	)
	return rows
}

// measure runs rows in interleaved rounds.
func measure(c config, g *gateway, rows []row, kind string, redis *redistest.Server) ([]result, error) {
	dir := filepath.Join(g.dir, "wrk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	samples := make([][]sample, len(rows))
	for round := 0; round < c.rounds; round++ {
		for i, r := range rows {
			fmt.Printf("[%s] round %d/%d: %s\n", kind, round+1, c.rounds, r.Name)
			s, err := runWrk(c, g, r, round, dir, kind, redis)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", r.Name, err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	return summarize(rows, samples), nil
}

// runWrk runs one row once and reads the store counters around it.
func runWrk(c config, g *gateway, r row, round int, dir, kind string, redis *redistest.Server) (sample, error) {
	tokens := r.tokens
	if r.mode == "once" {
		lo, hi := round*r.perRnd, (round+1)*r.perRnd
		tokens = tokens[lo:min(hi, len(tokens))]
	}
	file := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(file, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return sample{}, err
	}
	bodyFile := ""
	if r.body != "" {
		bodyFile = filepath.Join(dir, "body.txt")
		if err := os.WriteFile(bodyFile, []byte(r.body), 0o600); err != nil {
			return sample{}, err
		}
	}
	root, err := repoRoot()
	if err != nil {
		return sample{}, err
	}
	script := filepath.Join(root, "tests", "load", "tokens.lua")
	opsBefore, tripsBefore, err := g.storeStats()
	if err != nil {
		return sample{}, err
	}
	redisBefore := redisCalls(kind, redis)
	args := []string{
		"-t", fmt.Sprint(r.threads), "-c", fmt.Sprint(r.conns), "-d", fmt.Sprintf("%ds", max(1, int(cmp.Or(r.duration, c.duration).Seconds()))),
		"--latency", "-s", script, g.url(r.port, r.path), "--", file, r.mode, fmt.Sprint(r.threads), r.method, bodyFile, r.ctype,
		fmt.Sprintf("r%d-", round),
	}
	cmd := exec.Command("wrk", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %v: %s%s", err, out, stderr.String())
	}
	opsAfter, tripsAfter, err := g.storeStats()
	if err != nil {
		return sample{}, err
	}
	var w struct {
		Requests     int64   `json:"requests"`
		DurationUS   int64   `json:"duration_us"`
		StatusErrors int64   `json:"status_errors"`
		SocketErrors int64   `json:"socket_errors"`
		P50          float64 `json:"p50_us"`
		P99          float64 `json:"p99_us"`
	}
	line := lastJSONLine(string(out))
	if err := json.Unmarshal([]byte(line), &w); err != nil {
		return sample{}, fmt.Errorf("reading wrk output %q: %v", out, err)
	}
	s := sample{
		RPS: float64(w.Requests) / (float64(w.DurationUS) / 1e6), P50us: w.P50, P99us: w.P99, Requests: w.Requests,
		StatusErrors: w.StatusErrors, SocketErrors: w.SocketErrors, StoreOps: opsAfter - opsBefore, StoreTrips: tripsAfter - tripsBefore,
		RedisCalls: redisCalls(kind, redis) - redisBefore,
	}
	if r.mode == "once" && int64(len(tokens)) <= w.Requests {
		s.Overshoot = w.Requests - int64(len(tokens))
		s.Exhausted = true
	}
	if r.Expect2xx && w.StatusErrors > 0 {
		s.Sample = probe(g.url(r.port, r.path), r, tokens)
	}
	return s, nil
}

// probe sends one request like the row's and describes the answer, to
// explain a failed row.
func probe(url string, r row, tokens []string) string {
	req, err := http.NewRequest(r.method, url, strings.NewReader(r.body))
	if err != nil {
		return err.Error()
	}
	if len(tokens) > 0 {
		req.Header.Set("Authorization", tokens[len(tokens)-1])
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

func lastJSONLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return lines[i]
		}
	}
	return ""
}

// redisCommand sends one inline command and reads the answer.
func redisCommand(redis *redistest.Server, cmd string) error {
	_, err := redisRaw(redis, cmd)
	return err
}

func redisRaw(redis *redistest.Server, cmd string) (string, error) {
	conn, err := net.Dial("tcp", redis.Addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf, _ := io.ReadAll(io.LimitReader(conn, 1<<20)) // ends at the deadline
	if strings.HasPrefix(string(buf), "-") {
		return "", fmt.Errorf("redis: %s", strings.TrimSpace(string(buf)))
	}
	return string(buf), nil
}

// redisCalls sums INFO commandstats calls (0 for the embedded store).
func redisCalls(kind string, redis *redistest.Server) int64 {
	if kind != "redis" {
		return 0
	}
	out, err := redisRaw(redis, "INFO commandstats")
	if err != nil {
		return 0
	}
	buf := []byte(out)
	var total int64
	for _, l := range strings.Split(string(buf), "\n") {
		if !strings.HasPrefix(l, "cmdstat_") || strings.HasPrefix(l, "cmdstat_info") {
			continue
		}
		if i := strings.Index(l, "calls="); i >= 0 {
			var n int64
			fmt.Sscanf(l[i+len("calls="):], "%d", &n)
			total += n
		}
	}
	return total
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize takes medians and ratios, and marks failed rows.
func summarize(rows []row, samples [][]sample) []result {
	out := make([]result, len(rows))
	for i, r := range rows {
		res := result{row: r, Samples: samples[i]}
		var rps, p50, p99 []float64
		var reqs int64
		var ops, trips uint64
		var rcalls int64
		for _, s := range samples[i] {
			rps, p50, p99 = append(rps, s.RPS), append(p50, s.P50us), append(p99, s.P99us)
			reqs += s.Requests
			ops += s.StoreOps
			trips += s.StoreTrips
			rcalls += s.RedisCalls
			res.Errors += s.SocketErrors
			if r.Expect2xx {
				res.Errors += s.StatusErrors
			}
			res.RepeatedTokens += s.Overshoot
			res.PoolExhausted = res.PoolExhausted || s.Exhausted
		}
		res.RPS, res.P50us, res.P99us = median(rps), median(p50), median(p99)
		if reqs > 0 {
			res.StorePerRequest = float64(ops) / float64(reqs)
			res.TripsPerRequest = float64(trips) / float64(reqs)
			res.RedisPerRequest = float64(rcalls) / float64(reqs)
		}
		if res.Errors > 0 {
			res.Failed, res.FailReason = true, fmt.Sprintf("%d errors or non-2xx answers where 2xx was expected", res.Errors)
			for _, s := range samples[i] {
				if s.Sample != "" {
					res.FailReason += "; e.g. " + s.Sample
				}
			}
		}
		out[i] = res
	}
	return out
}

// ratios relates every row to its store's baseline and to forward_auth.
func ratios(results []result) {
	baseline := map[string]float64{}
	var fa float64
	for _, r := range results {
		if r.Baseline {
			baseline[r.Store] = r.RPS
		}
		if r.Group == "forward_auth" {
			fa = r.RPS
		}
	}
	for i := range results {
		r := &results[i]
		if b := baseline[r.Store]; b > 0 {
			r.RatioToB = r.RPS / b
		}
		if fa > 0 && r.Group != "latency" && r.Group != "endpoint" {
			r.ForwardAuthFactor = r.RPS / fa
		}
	}
}

// report prints the table and writes it as JSON and Markdown.
func report(c config, results []result, extra map[string]any) error {
	md := markdown(c, results, extra)
	fmt.Println()
	fmt.Println(md)
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	if c.short {
		stamp += "-short"
	}
	doc := map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "machine": machine(), "rounds": c.rounds,
		"duration": c.duration.String(), "connections": c.conns, "threads": c.threads, "rows": results, "extra": extra,
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(filepath.Join(c.out, stamp+".json"), b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, stamp+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Failed {
			failed++
			fmt.Fprintf(os.Stderr, "row %q (%s) failed: %s\n", r.Name, r.Store, r.FailReason)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d rows failed", failed)
	}
	return nil
}

func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func markdown(c config, results []result, extra map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokengate load harness, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "machine: %s; wrk -t%d -c%d, %v per row, %d interleaved round(s), median\n\n", machine(), c.threads, c.conns, c.duration, c.rounds)
	fmt.Fprintln(&b, "| row | store | req/s | x B | x forward_auth | p50 us | p99 us | store round trips/req | store commands/req | redis calls/req | errors | repeated tokens |")
	fmt.Fprintln(&b, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		name := r.Name
		if r.Failed {
			name += " **FAILED**"
		}
		if r.PoolExhausted {
			name += " (pool used up: lower bound)"
		}
		fa := ""
		if r.ForwardAuthFactor > 0 {
			fa = fmt.Sprintf("%.2f", r.ForwardAuthFactor)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.3f | %s | %.0f | %.0f | %.4f | %.4f | %.4f | %d | %d |\n",
			name, r.Store, r.RPS, r.RatioToB, fa, r.P50us, r.P99us, r.TripsPerRequest, r.StorePerRequest, r.RedisPerRequest, r.Errors, r.RepeatedTokens)
	}
	if len(extra) > 0 {
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\n")
		for _, k := range keys {
			j, _ := json.Marshal(extra[k])
			fmt.Fprintf(&b, "- %s: `%s`\n", k, j)
		}
	}
	return b.String()
}
