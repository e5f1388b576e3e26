package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/testutil/metricstest"
)

const (
	webhookSecret  = "whsec-0123456789abcdef0123456789abcdef"
	webhookSecret2 = "whsec-second-0123456789abcdef0123456789"
)

// hookReceiver is a webhook endpoint as a user would write one: it
// verifies the signature and the timestamp, drops event ids it has seen,
// and keeps the bodies. While down it answers 500 after reading an event
// (as if its answer were lost), so the gateway sends it again.
type hookReceiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server
	down   atomic.Bool
	hang   chan struct{} // when not nil, requests wait on it

	mu     sync.Mutex
	seen   map[string]bool
	got    []events.Event
	bodies []string
	dups   int
	bad    int
}

func startReceiver(t *testing.T, secret string) *hookReceiver {
	rc := &hookReceiver{t: t, secret: []byte(secret), seen: map[string]bool{}}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.hang != nil {
		select {
		case <-rc.hang:
		case <-r.Context().Done():
		}
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := events.Verify(rc.secret, r.Header.Get(events.SignatureHeader), body, time.Now(), events.DefaultTolerance); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != r.Header.Get(events.IDHeader) {
		rc.t.Errorf("event body %s, id header %q", body, r.Header.Get(events.IDHeader))
		return
	}
	if rc.seen[e.ID] {
		rc.dups++
	} else {
		rc.seen[e.ID] = true
		rc.got = append(rc.got, e)
		rc.bodies = append(rc.bodies, string(body))
	}
	if rc.down.Load() {
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// find returns the events of typ about subject id.
func (rc *hookReceiver) find(typ, id string) []events.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []events.Event
	for _, e := range rc.got {
		if e.Type == typ && (id == "" || e.Subject.ID == id) {
			out = append(out, e)
		}
	}
	return out
}

// wait waits (bounded) until an event of typ about id has arrived.
func (rc *hookReceiver) wait(typ, id string) events.Event {
	rc.t.Helper()
	return rc.waitN(typ, id, 1)[0]
}

// waitN waits (bounded) until n events of typ about id have arrived.
func (rc *hookReceiver) waitN(typ, id string, n int) []events.Event {
	rc.t.Helper()
	var got []events.Event
	if !eventually(30*time.Second, func() bool { got = rc.find(typ, id); return len(got) >= n }) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.t.Fatalf("%d %s events about %q arrived, want %d; got %d events: %q", len(got), typ, id, n, len(rc.got), rc.bodies)
	}
	return got
}

func eventsOptions(url, secretEnv string) string {
	return fmt.Sprintf("events {\n\t\t\twebhook %s\n\t\t\tsecret {env.%s}\n\t\t\tbackoff 50ms 200ms\n\t\t\tattempts 100\n\t\t}", url, secretEnv)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestEventsWebhook: the changes made through the CLI, the token API and
// /rest/token reach a webhook that is down at first, signed, once per
// change (the receiver drops the resends), with the token's hash and
// never a secret.
func TestEventsWebhook(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		rc := startReceiver(t, webhookSecret)
		rc.down.Store(true)
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{
			appOptions: eventsOptions(rc.srv.URL+"/hook", "TG_WEBHOOK_SECRET"),
			env:        []string{"TG_WEBHOOK_SECRET=" + webhookSecret},
		})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice")
		g.mustCLI("", "user", "set", "alice", "--token-login")
		secret, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci","scopes":["read"]}`)
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusOK {
			t.Fatalf("call with the PAT: %d %s", r.status, r.body)
		}
		// The receiver is down: the first events are retried meanwhile.
		rc.wait(events.TokenCreated, id)
		rc.down.Store(false)

		created := rc.wait(events.TokenCreated, id)
		if created.HashedToken != sha256Hex(secret) || created.Subject.Owner != "alice" || created.Subject.TokenKind != "pat" ||
			created.Subject.Label != "ci" || created.Actor != "alice" {
			t.Errorf("token.created: %+v", created)
		}
		login := rc.wait(events.UserTokenLoginChanged, "alice")
		if login.Data["token_login"] != true || login.Actor != "admin" {
			t.Errorf("user.token_login_changed: %+v", login)
		}
		used := rc.wait(events.TokenNewAddress, id)
		if used.Data["address"] != "127.0.0.1" || used.HashedToken != sha256Hex(secret) {
			t.Errorf("token.used_from_new_address: %+v", used)
		}

		if r := do(t, http.MethodDelete, g.base+"/api-user/tokens/"+id, basic("alice", alicePassword), ""); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if ev := rc.wait(events.TokenRevoked, id); ev.HashedToken != sha256Hex(secret) {
			t.Errorf("token.revoked: %+v", ev)
		}

		grantUse(g, "--user", "alice")
		legacySecret, legacyID := legacyToken(t, g, "alice", alicePassword)
		if ev := rc.wait(events.TokenCreated, legacyID); ev.Subject.TokenKind != "legacy" || ev.HashedToken != sha256Hex(legacySecret) {
			t.Errorf("legacy token.created: %+v", ev)
		}
		g.mustCLI("", "user", "revoke", "alice", legacyID)
		rc.wait(events.TokenRevoked, legacyID)

		c := addClient(t, g, "billing")
		if ev := rc.wait(events.OAuthKeyCreated, c.ID); ev.HashedToken != sha256Hex(c.Secret) || ev.Subject.Label != "billing" {
			t.Errorf("oauth_key.created: %+v", ev)
		}
		g.mustCLI("", "oauth", "client", "set", c.ID, "--enabled=false")
		rc.wait(events.OAuthKeyDisabled, c.ID)
		g.mustCLI("", "oauth", "client", "delete", c.ID)
		rc.wait(events.OAuthKeyDeleted, c.ID)
		g.mustCLI("", "oauth", "signing", "set", "--reset", "--immediate", "--confirm")
		if ev := rc.wait(events.SigningKeyRotated, ""); ev.Data["mode"] != "immediate" {
			t.Errorf("signing_key.rotated: %+v", ev)
		}
		g.mustCLI("", "user", "set", "alice", "--token-login=false")
		rc.waitN(events.UserTokenLoginChanged, "alice", 2)

		// Once per change: the resends while the receiver was down were
		// dropped by id, and nothing was sent twice under two ids.
		for _, c := range []struct {
			typ, id string
			n       int
		}{
			{events.TokenCreated, id, 1}, {events.TokenRevoked, id, 1}, {events.UserTokenLoginChanged, "alice", 2},
			{events.TokenCreated, legacyID, 1}, {events.OAuthKeyCreated, c.ID, 1}, {events.OAuthKeyDeleted, c.ID, 1},
		} {
			if n := len(rc.find(c.typ, c.id)); n != c.n {
				t.Errorf("%d %s events about %s, want %d", n, c.typ, c.id, c.n)
			}
		}
		rc.mu.Lock()
		if rc.dups == 0 {
			t.Error("no event was sent again while the receiver answered 500")
		}
		if rc.bad != 0 {
			t.Errorf("%d deliveries failed the signature check", rc.bad)
		}
		all := strings.Join(rc.bodies, "\n")
		rc.mu.Unlock()
		for _, s := range []string{secret, legacySecret, c.Secret, webhookSecret, alicePassword} {
			if strings.Contains(all, s) {
				t.Errorf("an event body holds a secret (%.8s...)", s)
			}
		}
		g.assertNoSecrets(secret, legacySecret, c.Secret, webhookSecret)
	})
}

// TestEventsSurviveReload: events queued while the webhook is down are
// delivered after a reload that points at another webhook with another
// secret: the queue outlives the config.
func TestEventsSurviveReload(t *testing.T) {
	old := startReceiver(t, webhookSecret)
	old.down.Store(true)
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{
		appOptions: eventsOptions(old.srv.URL, "TG_WEBHOOK_SECRET"),
		env:        []string{"TG_WEBHOOK_SECRET=" + webhookSecret, "TG_WEBHOOK_SECRET2=" + webhookSecret2},
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice")
	g.mustCLI("", "user", "set", "alice", "--token-login")
	_, id := createPAT(t, g, "alice", alicePassword, `{"label":"before reload"}`)
	// The first event reached the old webhook, which answers 500: it and
	// the token's event wait in the queue (in order) for a retry.
	old.wait(events.UserTokenLoginChanged, "alice")

	next := startReceiver(t, webhookSecret2)
	path := filepath.Join(g.dir, "Caddyfile")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(strings.Replace(string(raw), old.srv.URL, next.srv.URL, 1), "{env.TG_WEBHOOK_SECRET}", "{env.TG_WEBHOOK_SECRET2}", 1)
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := g.cli("", "reload", "--config", path, "--adapter", "caddyfile"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	next.wait(events.UserTokenLoginChanged, "alice")
	next.wait(events.TokenCreated, id)
	next.mu.Lock()
	defer next.mu.Unlock()
	if next.bad != 0 {
		t.Errorf("%d deliveries to the new webhook were not signed with its secret", next.bad)
	}
}

// TestEventsNeverHoldUpRequests: a receiver that never answers does not
// slow token requests; past the queue's size events are dropped and
// counted.
func TestEventsNeverHoldUpRequests(t *testing.T) {
	rc := startReceiver(t, webhookSecret)
	rc.hang = make(chan struct{})
	t.Cleanup(func() { close(rc.hang) })
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{
		appOptions: strings.Replace(eventsOptions(rc.srv.URL, "TG_WEBHOOK_SECRET"), "attempts 100", "attempts 100\n\t\t\tqueue_size 3\n\t\t\ttimeout 1h", 1),
		env:        []string{"TG_WEBHOOK_SECRET=" + webhookSecret},
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	client := &http.Client{Timeout: 10 * time.Second} // a bound on waiting, not a timing
	for i := range 10 {
		req, err := http.NewRequest(http.MethodPost, g.base+"/api-user/tokens", strings.NewReader(fmt.Sprintf(`{"label":"t%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("alice", alicePassword)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("token request %d waited on the webhook: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("token request %d: %d", i, resp.StatusCode)
		}
	}
	m := g.scrape()
	if n := m.Value("tokengate_webhook_events_total", metricstest.L("outcome", "dropped_queue_full")); n < 1 {
		t.Errorf("dropped_queue_full = %v, want some (10 events, a queue of 3, a receiver that hangs)", n)
	}
	if n := m.Value("tokengate_webhook_queue_length", nil); n > 3 {
		t.Errorf("queue length %v, above its size 3", n)
	}
	if !g.logHas("event webhook queue is full") {
		t.Error("the full queue was not logged")
	}
}
