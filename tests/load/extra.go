package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// propagation is the time from a revoke through node A to the first
// refusal of the token on node B.
type propagation struct {
	Revokes int     `json:"revokes"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	MaxUS   float64 `json:"max_us"`
}

// measurePropagation starts node B on the same Redis, warms B's cache with
// every revocable token, then revokes them one by one through node A's
// admin API and polls B until it refuses the token.
func measurePropagation(binary, dir, storeURL, upstream string, a *gateway, tokens []revocable) (propagation, error) {
	b, err := startGateway(binary, dir, storeURL, upstream, "")
	if err != nil {
		return propagation{}, err
	}
	defer b.stop()
	fmt.Printf("[redis] propagation: %d revokes through node A, refusal on node B\n", len(tokens))
	delays, err := revokeAndWait(a, b, tokens, 30*time.Second, nil, 0)
	if err != nil {
		return propagation{}, err
	}
	for i := range delays {
		delays[i] /= 1e3 // microseconds
	}
	sort.Float64s(delays)
	pct := func(p float64) float64 { return delays[int(p*float64(len(delays)-1))] }
	return propagation{Revokes: len(delays), P50us: pct(0.5), P99us: pct(0.99), MaxUS: delays[len(delays)-1]}, nil
}

// revokeAndWait warms node b's cache with every token, calls prepare (if
// any), then revokes the tokens one by one through node a's admin API and
// polls b (pausing between polls) until it refuses each. It returns the
// delays in nanoseconds; a token still accepted after limit is an error.
func revokeAndWait(a, b *gateway, tokens []revocable, limit time.Duration, prepare func(), pause time.Duration) ([]float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	call := func(tok string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, b.url(b.ports.gate, "/"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, t := range tokens {
		if code, err := call(t.secret); err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("warming node B: %d %v", code, err)
		}
	}
	if prepare != nil {
		prepare()
	}
	var delays []float64
	for _, t := range tokens {
		if err := a.admin(http.MethodDelete, "/tokengate/users/"+url.PathEscape(t.owner)+"/tokens/"+t.id, nil, nil); err != nil {
			return nil, err
		}
		start := time.Now()
		for {
			code, err := call(t.secret)
			if err != nil {
				return nil, err
			}
			if code == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > limit {
				return nil, fmt.Errorf("node B still accepts a token revoked %v ago", limit)
			}
			time.Sleep(pause)
		}
		delays = append(delays, float64(time.Since(start)))
	}
	return delays, nil
}

// measureEndpoints measures the token endpoint per algorithm and PAT
// creation (each with HTTP Basic: a client secret hash, or a bcrypt
// password check at the default cost).
func measureEndpoints(c config, g *gateway, sd *seeded, kind string, redis *redistest.Server) ([]result, error) {
	base := row{Store: kind, Expect2xx: true, Group: "endpoint", port: g.ports.gate, mode: "cycle", conns: c.conns, threads: c.threads, method: "POST"}
	var rows []row
	var samples [][]sample
	dir := g.dir + "/wrk"
	for _, alg := range []string{"HS256", "RS256", "ES256"} {
		if err := useAlgorithm(g, alg); err != nil {
			return nil, err
		}
		r := base
		r.Name, r.path, r.tokens = "token endpoint, "+alg, "/api-user/oauth/token", []string{sd.clientBasic}
		r.body, r.ctype = "grant_type=client_credentials", "application/x-www-form-urlencoded"
		var ss []sample
		for round := 0; round < c.rounds; round++ {
			fmt.Printf("[%s] round %d/%d: %s\n", kind, round+1, c.rounds, r.Name)
			s, err := runWrk(c, g, r, round, dir, kind, redis)
			if err != nil {
				return nil, err
			}
			ss = append(ss, s)
		}
		rows, samples = append(rows, r), append(samples, ss)
	}
	r := base
	r.Name, r.path, r.tokens, r.mode, r.ctype = "PAT creation (bcrypt cost 10)", "/api-user/tokens", []string{sd.userBasic}, "label", "application/json"
	r.duration = max(c.duration, 3*time.Second) // a few dozen per second: give it time
	r.conns = 4                                 // bcrypt-bound: more connections only queue (and time out)
	var ss []sample
	for round := 0; round < c.rounds; round++ {
		fmt.Printf("[%s] round %d/%d: %s\n", kind, round+1, c.rounds, r.Name)
		s, err := runWrk(c, g, r, round, dir, kind, redis)
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	rows, samples = append(rows, r), append(samples, ss)
	return summarize(rows, samples), nil
}

// useAlgorithm switches signing to alg and waits until it signs.
func useAlgorithm(g *gateway, alg string) error {
	var show struct {
		Algorithm string `json:"algorithm"`
		Keys      []struct {
			Alg, State string
		} `json:"keys"`
	}
	active := func() (string, error) {
		if err := g.admin(http.MethodGet, "/tokengate/oauth/signing", nil, &show); err != nil {
			return "", err
		}
		for _, k := range show.Keys {
			if k.State == "active" {
				return k.Alg, nil
			}
		}
		return "", nil
	}
	if a, err := active(); err != nil || a == alg {
		return err
	}
	body := map[string]any{"algorithm": alg, "mode": "grace", "confirm": true}
	if err := g.admin(http.MethodPost, "/tokengate/oauth/signing", body, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if a, err := active(); err != nil || a == alg {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("signing did not switch to %s", alg)
}
