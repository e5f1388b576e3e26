package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testutil/stripetest"
)

// Brute-force limits through the real binary (issue 11 item 2). Guesses
// come through the listener that trusts 127.0.0.1 as a proxy, so that
// X-Forwarded-For gives the attacker an address of its own.

const attackerAddr = "203.0.113.66"

// send makes one request from a goroutine (no t.Fatal there) and returns
// the status, or the transport error.
func send(method, url string, headers map[string][]string, body string) (int, error) {
	r, err := exchange(http.DefaultClient, method, url, headers, body)
	return r.status, err
}

// fromAttacker adds the attacker's address as a trusted proxy tells it.
func fromAttacker(h map[string][]string) map[string][]string {
	return withHeader(h, "X-Forwarded-For", attackerAddr)
}

// victimWithin runs the victim's request and fails the test unless it is
// answered want within bound (a generous bound on waiting for someone
// else's guesses, not a speed claim).
func victimWithin(t *testing.T, bound time.Duration, want int, victim func() (int, error)) {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		status, err := victim()
		done <- fmt.Sprint(status, err)
	}()
	select {
	case got := <-done:
		if w := fmt.Sprint(want, nil); got != w {
			t.Fatalf("victim answered %s, want %s", got, w)
		}
	case <-time.After(bound):
		t.Fatalf("the victim's request waited more than %s on the attackers' guesses", bound)
	}
}

// blockingBackend is an identity backend that accepts alice/secret at
// once and holds every other request until released (or until the
// gateway gives up on it), then says 401.
type blockingBackend struct {
	*httptest.Server
	release  chan struct{}
	arrived  chan string  // names of held requests, as they arrive
	finished atomic.Int64 // held requests that have been answered
	once     sync.Once
}

func startBlockingBackend(t *testing.T) *blockingBackend {
	b := &blockingBackend{release: make(chan struct{}), arrived: make(chan string, 1000)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u == "alice" && p == "secret" {
			return
		}
		u, _, _ := r.BasicAuth()
		b.arrived <- u
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		b.finished.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(func() { b.open(); b.Close() })
	return b
}

func (b *blockingBackend) open() { b.once.Do(func() { close(b.release) }) }

// TestGuessesDoNotDelayAnotherAccount: guesses at made-up names that
// shared the victim's lock stripe in the old limiter, held up in the
// identity backend, must not delay the victim's sign-in. Before the fix
// the victim waited until the gateway gave up on the attackers' backend
// calls (10s each).
func TestGuessesDoNotDelayAnotherAccount(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		backend := startBlockingBackend(t)
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: "identity_backend " + backend.URL +
			"\n\t\tidentity_source backend\n\t\tlogin_limits 10 100 15m"})
		signIn := func(base, user, password string, extra func(map[string][]string) map[string][]string) (int, error) {
			h := withJSON(curlBasic(user, password))
			if extra != nil {
				h = extra(h)
			}
			return send(http.MethodGet, base+"/rest/token", h, "")
		}
		if status, err := signIn(g.base, "alice", "secret", nil); status != http.StatusForbidden || err != nil {
			t.Fatalf("first sign-in (provisions alice): %d %v", status, err)
		}
		grantUse(g, "--user", "alice")

		attackers := stripetest.Colliding("acct:", "alice", "mallory", 3)
		var wg sync.WaitGroup
		for _, name := range attackers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, err := signIn(g.trusted, name, "guess", fromAttacker); status != http.StatusUnauthorized || err != nil {
					t.Errorf("attacker %s: %d %v", name, status, err)
				}
			}()
		}
		<-backend.arrived // an attacker's guess is held in the backend now
		victimWithin(t, 30*time.Second, http.StatusOK, func() (int, error) { return signIn(g.base, "alice", "secret", nil) })
		if n := backend.finished.Load(); n != 0 {
			t.Errorf("the victim was answered only after %d attacker guesses had ended", n)
		}
		backend.open()
		wg.Wait()
	})
}

// TestClientGuessesDoNotDelayAnotherKey: guesses with made-up client ids
// that shared a real OAuth key's lock stripe, held in their slow-down,
// must not delay that key's token request. The attacker's address is
// first given enough failures that each further one is slowed by the
// full 2s, and the victim's request must be answered before any of the
// attackers' (before the fix it waited for at least one of them).
func TestClientGuessesDoNotDelayAnotherKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: "login_limits 10 100 15m"})
		key := addClient(t, g, "billing")
		guess := func(id string) (int, error) {
			return send(http.MethodPost, g.trusted+tokenPath, fromAttacker(clientBasic(id, "tgs_wrong")), ccGrant)
		}
		// 11 failures from the address (ids that are not client ids count
		// against the address only): from then on each failure waits 2s.
		var warm sync.WaitGroup
		for i := range 11 {
			warm.Add(1)
			go func() {
				defer warm.Done()
				if status, err := guess(fmt.Sprint("nobody", i)); status != http.StatusUnauthorized || err != nil {
					t.Errorf("warm-up guess: %d %v", status, err)
				}
			}()
		}
		warm.Wait()

		var answered atomic.Int64
		var wg sync.WaitGroup
		for _, id := range stripetest.Colliding("client:", key.ID, "tgc_made_up_", 4) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, err := guess(id); status != http.StatusUnauthorized || err != nil {
					t.Errorf("attacker %s: %d %v", id, status, err)
				}
				answered.Add(1)
			}()
		}
		time.Sleep(200 * time.Millisecond) // let the attackers reach the gateway
		victimWithin(t, 30*time.Second, http.StatusOK, func() (int, error) {
			return send(http.MethodPost, g.base+tokenPath, clientBasic(key.ID, key.Secret), ccGrant)
		})
		if n := answered.Load(); n != 0 {
			t.Errorf("the key's token request was answered only after %d attacker guesses", n)
		}
		wg.Wait()
	})
}

// TestConcurrentGuessesAtManyAccountsStopAtTheAddressLimit: guesses at as
// many made-up names as there are guesses, all at once from one address,
// check no more passwords than the address's limit. The backend holds
// every check until all guesses have arrived there (or 3s pass), so that
// none is counted as a failure before the others have been let through:
// before the fix all 30 reached the backend.
func TestConcurrentGuessesAtManyAccountsStopAtTheAddressLimit(t *testing.T) {
	const guesses, perAddress = 30, 5
	forEachStore(t, func(t *testing.T, kind storeKind) {
		backend := startBlockingBackend(t)
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{appOptions: fmt.Sprintf("identity_backend %s\n\t\tidentity_source backend\n\t\tlogin_limits 100 %d 15m", backend.URL, perAddress)})
		go func() {
			for range guesses {
				<-backend.arrived
			}
			backend.open()
		}()
		time.AfterFunc(3*time.Second, backend.open)

		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for i := range guesses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, err := send(http.MethodGet, g.trusted+"/rest/token", fromAttacker(withJSON(curlBasic(fmt.Sprint("user", i), "guess"))), "")
				if err != nil {
					t.Errorf("guess %d: %v", i, err)
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[http.StatusUnauthorized] != perAddress || statuses[http.StatusTooManyRequests] != guesses-perAddress {
			t.Errorf("answers %v, want %d checked (401) and the rest refused (429)", statuses, perAddress)
		}
		if n := backend.finished.Load(); n != perAddress {
			t.Errorf("the backend checked %d passwords, limit %d", n, perAddress)
		}
	})
}
