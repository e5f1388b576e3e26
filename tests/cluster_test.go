package tests

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/redistest"
	"github.com/tokengate/tokengate/internal/token"
)

// clusterKV is a Redis Cluster of three primaries that share the slots
// (redistest.ShardedCluster), flushed per test.
const clusterKV storeKind = "cluster"

// clusterDeployment is the three-primary cluster that the tests share.
var clusterDeployment = &shared[*redistest.ShardedCluster]{what: "the Redis Cluster", start: redistest.StartShardedClusterMain}

// flushedCluster returns the shared three-primary cluster, emptied.
func flushedCluster(t *testing.T) *redistest.ShardedCluster {
	t.Helper()
	c := clusterDeployment.get(t)
	c.FlushAll(t)
	return c
}

// TestReshardingUnderLoad moves the slots that hold the users' records,
// the set of user names and the index keys of their tokens to another
// node and back, again and again, while clients create PATs through the
// API, use them and revoke most of them: no request may fail (no 5xx,
// every answer what it would be without the moves), and every revocation
// holds afterwards. Repeat it with
//
//	go test -count=1 -run TestReshardingUnderLoad -v ./tests
//
// which logs the figures (requests, slot moves, time).
func TestReshardingUnderLoad(t *testing.T) {
	const (
		users     = 3
		minRounds = 2  // of moves: every slot away and back
		maxIters  = 60 // per user: the load is bounded even if moves are slow
		keepEvery = 4  // one token in keepEvery stays; the others are revoked
	)
	c := flushedCluster(t)
	up := startUpstream(t)
	// Every revoked token is tried once (a failed look-up): no limit on
	// those, which would answer 429 to the test's one address.
	g := startGateway(t, clusterKV, up, gatewayConfig{appOptions: "token_failure_limit off"})
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("load%d", i)
		g.mustCLI(alicePassword+"\n", "user", "add", names[i], "--token-login")
	}

	var (
		mu       sync.Mutex
		failed   []string
		issued   []reshardToken // every token created, for the mover and the end
		requests atomic.Int64
		rounds   atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			for i := 0; i < maxIters && (i < 2*keepEvery || rounds.Load() < minRounds); i++ {
				tok, err := loadRound(g, name, i, i%keepEvery != 0, &requests)
				if tok.secret != "" {
					mu.Lock()
					issued = append(issued, tok)
					mu.Unlock()
				}
				if err != nil {
					fail("%s, round %d: %v", name, i, err)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The mover: this goroutine, as MoveSlots may fail the test.
	nodes := c.Nodes()
	start := time.Now()
	moves := 0
	for {
		select {
		case <-done:
			if rounds.Load() >= minRounds {
				goto loaded
			}
		default:
		}
		slotSet := map[int]bool{c.KeySlot(t, "tg:users"): true}
		for _, name := range names {
			slotSet[c.KeySlot(t, "tg:{u:"+name+"}:user")] = true
		}
		mu.Lock()
		toks := slices.Clone(issued)
		mu.Unlock()
		for _, tok := range toks {
			h := token.Hash(tok.secret)
			slotSet[c.KeySlot(t, "tg:{t:"+hex.EncodeToString(h[:])+"}")] = true
		}
		for sl := range slotSet {
			home := c.Owner(t, sl)
			c.MoveSlots(t, nodes[(slices.Index(nodes, home)+1)%len(nodes)], sl)
			c.MoveSlots(t, home, sl)
			moves += 2
		}
		rounds.Add(1)
	}
loaded:
	elapsed := time.Since(start)

	// Afterwards every token answers as it should: the kept ones pass, the
	// revoked ones stay refused.
	refusedAfter := 0
	for _, tok := range issued {
		r, err := exchange(loadClient, http.MethodGet, g.base+"/orders", bearer(tok.secret), "")
		requests.Add(1)
		switch {
		case err != nil:
			fail("after the moves, %s: %v", tok.id, err)
		case tok.revoked && r.status != http.StatusUnauthorized:
			fail("after the moves, revoked token %s/%s answered %d", tok.owner, tok.id, r.status)
		case !tok.revoked && r.status != http.StatusOK:
			fail("after the moves, token %s/%s answered %d", tok.owner, tok.id, r.status)
		case tok.revoked:
			refusedAfter++
		}
	}
	t.Logf("resharding under load: %d requests (%d tokens created, %d revoked and still refused after), %d slot moves in %d rounds, %v, %d failed",
		requests.Load(), len(issued), refusedAfter, moves, rounds.Load(), elapsed.Round(time.Millisecond), len(failed))
	for i, f := range failed {
		if i == 10 {
			t.Errorf("... and %d more", len(failed)-10)
			break
		}
		t.Error(f)
	}
	if t.Failed() {
		t.Logf("gateway logs:\n%s", g.logs.String())
	}
}

// reshardToken is a token made by TestReshardingUnderLoad.
type reshardToken struct {
	owner, id, secret string
	revoked           bool
}

// loadRound creates PAT number i for name, uses it, and revokes it and checks
// that it is refused if revoke is set. It returns the token as far as it
// got and the first answer that is not what it should be.
func loadRound(g *gateway, name string, i int, revoke bool, requests *atomic.Int64) (reshardToken, error) {
	tok := reshardToken{owner: name}
	call := func(method, path string, h map[string][]string, body string, want int) ([]byte, error) {
		requests.Add(1)
		r, err := exchange(loadClient, method, g.base+path, h, body)
		if err == nil && r.status != want {
			err = fmt.Errorf("%s %s: %d, want %d: %s", method, path, r.status, want, r.body)
		}
		return r.body, err
	}
	b, err := call(http.MethodPost, "/api-user/tokens", basic(name, alicePassword), fmt.Sprintf(`{"label":"load %d"}`, i), http.StatusCreated)
	if err != nil {
		return tok, err
	}
	var created struct{ Token, ID string }
	if err := json.Unmarshal(b, &created); err != nil || created.Token == "" {
		return tok, fmt.Errorf("create token answered %s", b)
	}
	tok.secret, tok.id = created.Token, created.ID
	b, err = call(http.MethodGet, "/orders", bearer(tok.secret), "", http.StatusOK)
	if err != nil {
		return tok, err
	}
	var seen struct{ Headers http.Header }
	if err := json.Unmarshal(b, &seen); err != nil || seen.Headers.Get("X-Auth-User") != name {
		return tok, fmt.Errorf("the upstream saw %s, want the user %s", b, name)
	}
	if !revoke {
		return tok, nil
	}
	if _, err := call(http.MethodDelete, "/api-user/tokens/"+tok.id, basic(name, alicePassword), "", http.StatusNoContent); err != nil {
		return tok, err
	}
	tok.revoked = true
	_, err = call(http.MethodGet, "/orders", bearer(tok.secret), "", http.StatusUnauthorized)
	return tok, err
}
