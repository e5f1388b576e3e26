package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// failoverApp are the gateway options of the failover tests: no limit on
// PATs or on refused look-ups (the load makes many of both; the
// template already has a cheap bcrypt_cost).
const failoverApp = "max_tokens_per_user -1\n\t\ttoken_failure_limit off"

// try is exchange for the load's workers, where a request that got no
// answer is a failure like any other: status 0. A body cut short only
// fails the decode of a created token.
func try(method, url string, headers map[string][]string, body string) (int, []byte) {
	r, _ := exchange(loadClient, method, url, headers, body)
	return r.status, r.body
}

// failoverToken is a PAT the load created.
type failoverToken struct {
	user, id, secret string
	revoked          bool // its revocation was answered 204
	unknown          bool // its revocation failed: it may or may not be revoked
}

// loadFigures are what the load saw.
type loadFigures struct {
	mu                          sync.Mutex
	tokens                      []*failoverToken
	requests, failed            int
	firstFailure, lastFailure   time.Time
	failedByStatus              map[int]int
	createsFailed, revokeFailed int
}

// fail records a failed request.
func (f *loadFigures) fail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.firstFailure.IsZero() {
		f.firstFailure = now
	}
	f.lastFailure = now
	f.failed++
	f.failedByStatus[status]++
}

// TestSentinelFailoverUnderLoad runs two gateway nodes on a Sentinel
// deployment, a bounded load on them (see failoverUnderLoad) and a
// SENTINEL FAILOVER in the middle. Every revocation answered 204 must stay
// revoked and every PAT answered 201 must work, on both nodes, after the
// failover (every write waits for the replica: store_durability's default
// on Sentinel). Requests that failed meanwhile (503 while the client
// finds the new primary, answered with Retry-After) are counted and
// logged, with the time from the first to the last failure:
//
//	go test -count=1 -run TestSentinelFailoverUnderLoad -v ./tests/
func TestSentinelFailoverUnderLoad(t *testing.T) {
	sen := redistest.StartSentinel(t)
	up := startUpstream(t)
	cfg := gatewayConfig{appOptions: failoverApp}
	a := startGatewayOn(t, sen.URL(), up, cfg)
	b := a.startPeer(up, cfg)
	failoverUnderLoad(t, "SENTINEL FAILOVER", []*gateway{a, b}, func() { sen.Failover(t) })
}

// TestClusterFailoverUnderLoad is TestSentinelFailoverUnderLoad on a Redis
// Cluster of three primaries with a replica each: a primary is killed
// (kill -9) in the middle of the load, the cluster promotes its replica
// (cluster-node-timeout 1s), and the killed node is started again, empty,
// and rejoins as the replica of the promoted one. Every write waits for a
// replica on every primary (store_durability's default on a cluster whose
// primaries all have one), so every revocation answered 204 stays revoked
// and every PAT answered 201 works, on both nodes:
//
//	go test -count=1 -run TestClusterFailoverUnderLoad -v ./tests/
func TestClusterFailoverUnderLoad(t *testing.T) {
	c := redistest.StartShardedClusterWithReplicas(t)
	up := startUpstream(t)
	cfg := gatewayConfig{appOptions: failoverApp}
	a := startGatewayOn(t, c.URL(), up, cfg)
	b := a.startPeer(up, cfg)
	failoverUnderLoad(t, "kill -9 of a cluster primary", []*gateway{a, b}, func() {
		c.KillPrimary(t, 0)
		c.RestartReplica(t, 0)
	})
	for _, g := range []*gateway{a, b} {
		if !g.logHas("Redis primary changed") {
			t.Errorf("gateway %s did not log the new primary:\n%s", g.base, g.logs.String())
		}
	}
}

// failoverUnderLoad runs a bounded load on nodes (gateways on one store):
// workers that create PATs, use them on the other node and revoke every
// other one, alternating between the nodes; failover is called after 2 s
// of it, and the load goes on 3 s after it returned. Then every
// revocation answered 204 must be refused and every PAT answered 201
// accepted, on every node; the figures (requests, failed ones by status,
// the span from the first failure to the last, undone and lost answers)
// are logged with what, the kind of failover.
func failoverUnderLoad(t *testing.T, what string, nodes []*gateway, failover func()) {
	t.Helper()
	a := nodes[0]
	const workers = 4
	for w := range workers {
		a.mustCLI(alicePassword+"\n", "user", "add", fmt.Sprintf("load%d", w), "--token-login")
	}

	figs := &loadFigures{failedByStatus: map[int]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("load%d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g := nodes[i%len(nodes)]
				status, body := try(http.MethodPost, g.base+"/api-user/tokens", basic(user, alicePassword), fmt.Sprintf(`{"label":"load %d"}`, i))
				figs.mu.Lock()
				figs.requests++
				figs.mu.Unlock()
				if status != http.StatusCreated {
					figs.fail(status)
					figs.mu.Lock()
					figs.createsFailed++
					figs.mu.Unlock()
					continue
				}
				var v struct{ Token, ID string }
				if err := json.Unmarshal(body, &v); err != nil || v.Token == "" {
					figs.fail(status)
					continue
				}
				tok := &failoverToken{user: user, id: v.ID, secret: v.Token}
				figs.mu.Lock()
				figs.tokens = append(figs.tokens, tok)
				figs.requests++ // the use below
				figs.mu.Unlock()
				// Use it on the other node, then revoke every other one.
				other := nodes[(i+1)%len(nodes)]
				if status, _ := try(http.MethodGet, other.base+"/", bearer(tok.secret), ""); status != http.StatusOK {
					figs.fail(status)
				}
				if i%2 == 1 {
					continue
				}
				status, _ = try(http.MethodDelete, g.base+"/api-user/tokens/"+tok.id, basic(user, alicePassword), "")
				figs.mu.Lock()
				figs.requests++
				if status == http.StatusNoContent {
					tok.revoked = true
				} else {
					tok.unknown = true
				}
				figs.mu.Unlock()
				if status != http.StatusNoContent {
					figs.fail(status)
					figs.mu.Lock()
					figs.revokeFailed++
					figs.mu.Unlock()
				}
			}
		}()
	}

	time.Sleep(2 * time.Second) // load before the failover
	failoverAt := time.Now()
	stopped := false
	defer func() { // a failover that stops the test (t.Fatal) stops the load too
		if !stopped {
			close(stop)
			wg.Wait()
		}
	}()
	failover()
	settled := time.Since(failoverAt)
	time.Sleep(3 * time.Second) // load after it
	close(stop)
	wg.Wait()
	stopped = true

	// Every answer held, on every node.
	var revoked, created, undone, lost int
	for _, tok := range figs.tokens {
		created++
		if tok.revoked {
			revoked++
		}
		if tok.unknown {
			continue // a revocation answered 503: either outcome is right
		}
		for _, g := range nodes {
			status, _ := try(http.MethodGet, g.base+"/", bearer(tok.secret), "")
			switch {
			case tok.revoked && status != http.StatusUnauthorized:
				undone++
				t.Errorf("token %s revoked (204) is answered %d on %s after the failover", tok.id, status, g.base)
			case !tok.revoked && status != http.StatusOK:
				lost++
				t.Errorf("token %s created (201) is answered %d on %s after the failover", tok.id, status, g.base)
			}
		}
	}
	window := time.Duration(0)
	if !figs.firstFailure.IsZero() {
		window = figs.lastFailure.Sub(figs.firstFailure)
	}
	t.Logf("%s under load: %d requests, %d failed (by status %v; creates %d, revokes %d), failures spanned %v (failover settled in %v); "+
		"%d tokens created (201), %d revoked (204); after the failover: %d revocations undone, %d created tokens lost (checked on every node)",
		what, figs.requests, figs.failed, figs.failedByStatus, figs.createsFailed, figs.revokeFailed, window.Round(time.Millisecond),
		settled.Round(time.Millisecond), created, revoked, undone, lost)
	if revoked == 0 || created-revoked == 0 {
		t.Fatalf("the load made %d tokens and revoked %d: too little to show anything", created, revoked)
	}
	for _, g := range nodes {
		g.assertNoSecrets(alicePassword)
	}
}

// TestNotDurableRevokeAnswers503: with the replica frozen, a revocation
// is applied on the primary but cannot be made durable within
// store_durability's timeout; it is answered 503 with Retry-After (the
// log says that the write is on the primary but not durable), and the
// token is refused. Once the replica is back the client's retry finds the
// token gone (404), and new writes succeed.
func TestNotDurableRevokeAnswers503(t *testing.T) {
	sen := redistest.StartSentinel(t)
	up := startUpstream(t)
	g := startGatewayOn(t, sen.URL(), up, gatewayConfig{appOptions: "store_durability {\n\t\t\treplicas 1\n\t\t\ttimeout 300ms\n\t\t}"})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	secret, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
	if r := do(t, http.MethodGet, g.base+"/", bearer(secret), ""); r.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}

	sen.Replica().Pause(t)
	r := do(t, http.MethodDelete, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), "")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("revoke with the replica frozen: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	if got := r.json(t)["error"]; got != "temporarily_unavailable" {
		t.Errorf("error code %v, want temporarily_unavailable", got)
	}
	if !g.logHas("applied on the primary but not durable") {
		t.Errorf("the log does not say that the revocation is on the primary but not durable:\n%s", g.logs.String())
	}
	if r := do(t, http.MethodGet, g.base+"/", bearer(secret), ""); r.status != http.StatusUnauthorized {
		t.Errorf("token after the undurable revoke: %d %s, want 401", r.status, r.body)
	}
	sen.Replica().Resume(t)

	if r := do(t, http.MethodDelete, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), ""); r.status != http.StatusNotFound {
		t.Errorf("retried revoke: %d %s, want 404", r.status, r.body)
	}
	again, _ := createPAT(t, g, "alice", alicePassword, `{"label":"after"}`)
	if r := do(t, http.MethodGet, g.base+"/", bearer(again), ""); r.status != http.StatusOK {
		t.Errorf("token made after the replica came back: %d %s", r.status, r.body)
	}
	g.assertNoSecrets(secret, again, alicePassword)
}
