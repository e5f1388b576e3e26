package events_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test")

// receiver is a webhook endpoint that verifies signatures, drops event
// ids it has seen, and answers the first failFirst requests 500 after
// taking their event (as if the answer were lost).
type receiver struct {
	t         *testing.T
	secret    []byte
	mu        sync.Mutex
	failFirst int
	requests  int
	seen      map[string]bool
	got       []events.Event
	bodies    []string
	dups      int
	arrived   chan struct{}
}

func newReceiver(t *testing.T, secret []byte, failFirst int) *receiver {
	return &receiver{t: t, secret: secret, failFirst: failFirst, seen: map[string]bool{}, arrived: make(chan struct{}, 1000)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	if err := events.Verify(rc.secret, r.Header.Get(events.SignatureHeader), body, time.Now(), events.DefaultTolerance); err != nil {
		rc.t.Errorf("signature: %v", err)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		rc.t.Errorf("body: %v", err)
		return
	}
	if e.ID != r.Header.Get(events.IDHeader) || e.Type != r.Header.Get(events.TypeHeader) {
		rc.t.Errorf("headers %q %q do not match the body %q %q", r.Header.Get(events.IDHeader), r.Header.Get(events.TypeHeader), e.ID, e.Type)
	}
	if rc.seen[e.ID] {
		rc.dups++
	} else {
		rc.seen[e.ID] = true
		rc.got = append(rc.got, e)
		rc.bodies = append(rc.bodies, string(body))
	}
	rc.arrived <- struct{}{}
	if rc.requests <= rc.failFirst {
		// The event was taken, but the answer says otherwise (as when an
		// answer is lost): the sender tries again with the same id.
		w.WriteHeader(500)
	}
}

func (rc *receiver) events() []events.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]events.Event(nil), rc.got...)
}

// waitFor waits (bounded) until the receiver has n distinct events.
func (rc *receiver) waitFor(n int) []events.Event {
	rc.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if got := rc.events(); len(got) >= n {
			return got
		}
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.t.Fatalf("the receiver got %d events, want %d", len(rc.events()), n)
		}
	}
}

func run(t *testing.T, w *events.Webhook) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func fast(url string, s []byte) events.WebhookConfig {
	return events.WebhookConfig{URL: url, Secret: s, Backoff: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Attempts: 50, Timeout: 2 * time.Second}
}

// freeAddr returns an address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestDownThenUp: the receiver first refuses connections, then answers
// 500, then takes the events: every event arrives once, in order, signed.
func TestDownThenUp(t *testing.T) {
	addr := freeAddr(t)
	w := events.NewWebhook(nil, nil)
	w.Configure(fast("http://"+addr+"/hook", secret))
	run(t, w)
	for _, typ := range []string{events.TokenCreated, events.TokenRevoked, events.OAuthKeyCreated} {
		w.Emit(events.Event{Type: typ, Subject: events.Subject{Kind: events.SubjectToken, ID: typ}})
	}
	time.Sleep(200 * time.Millisecond) // a few refused attempts (not a timing assertion)
	rc := newReceiver(t, secret, 3)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: rc}}
	srv.Start()
	defer srv.Close()
	got := rc.waitFor(3)
	for i, typ := range []string{events.TokenCreated, events.TokenRevoked, events.OAuthKeyCreated} {
		if got[i].Type != typ || !strings.HasPrefix(got[i].ID, "evt_") || got[i].Time.IsZero() {
			t.Errorf("event %d: %+v", i, got[i])
		}
	}
	if w.Len() != 0 {
		t.Errorf("queue holds %d", w.Len())
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.dups == 0 {
		t.Error("no event was sent again after a 500: the receiver's de-duplication was not exercised")
	}
}

// TestReloadChangesURLAndSecret: events queued for a URL that is down go
// to the URL (and with the secret) of the newer config.
func TestReloadChangesURLAndSecret(t *testing.T) {
	w := events.NewWebhook(nil, nil)
	w.Configure(fast("http://"+freeAddr(t)+"/", secret))
	run(t, w)
	w.Emit(events.Event{Type: events.SigningKeyRotated})
	w.Emit(events.Event{Type: events.UserTokenLoginChanged})
	newSecret := []byte("another-secret-another-secret-another")
	rc := newReceiver(t, newSecret, 0)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	w.Configure(fast(srv.URL, newSecret))
	if got := rc.waitFor(2); got[0].Type != events.SigningKeyRotated || got[1].Type != events.UserTokenLoginChanged {
		t.Errorf("got %+v", got)
	}
}

// TestAttemptsUsedUp: an event the receiver never takes is dropped after
// its attempts, and the next one is delivered.
func TestAttemptsUsedUp(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	rc := newReceiver(t, secret, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get(events.TypeHeader)]++
		mu.Unlock()
		if r.Header.Get(events.TypeHeader) == "poison" {
			w.WriteHeader(500)
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	w := events.NewWebhook(nil, nil)
	cfg := fast(srv.URL, secret)
	cfg.Attempts = 3
	w.Configure(cfg)
	run(t, w)
	w.Emit(events.Event{Type: "poison"})
	w.Emit(events.Event{Type: events.TokenCreated})
	rc.waitFor(1)
	mu.Lock()
	defer mu.Unlock()
	if calls["poison"] != 3 {
		t.Errorf("the failing event was tried %d times, want 3", calls["poison"])
	}
}

// TestHangingReceiverNeverBlocksEmit: with a receiver that never answers,
// Emit still returns at once; past the queue's size events are dropped.
func TestHangingReceiverNeverBlocksEmit(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	w := events.NewWebhook(nil, nil)
	cfg := fast(srv.URL, secret)
	cfg.QueueSize, cfg.Timeout = 10, time.Minute
	w.Configure(cfg)
	run(t, w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10000 {
			w.Emit(events.Event{Type: events.TokenCreated})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Emit waited on a receiver that hangs")
	}
	if n := w.Len(); n > 10 {
		t.Errorf("the queue holds %d events, more than its size 10", n)
	}
}

// TestOffByDefault: without a URL nothing is queued.
func TestOffByDefault(t *testing.T) {
	w := events.NewWebhook(nil, nil)
	w.Emit(events.Event{Type: events.TokenCreated})
	if w.Len() != 0 || w.Enabled() {
		t.Error("an unconfigured webhook queued an event")
	}
	events.Emit(nil, events.Event{}) // a nil Emitter is a no-op
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_700_000_000, 0)
	h := events.Sign(secret, body, now)
	for _, c := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", secret, h, body, now, nil},
		{"second signature", secret, h[:strings.Index(h, "v1=")] + "v1=00," + h[strings.Index(h, "v1="):], body, now, nil},
		{"wrong secret", []byte("x"), h, body, now, events.ErrBadSignature},
		{"changed body", secret, h, []byte(`{"id":"evt_2"}`), now, events.ErrBadSignature},
		{"changed time", secret, strings.Replace(h, "t=1700000000", "t=1700000001", 1), body, now, events.ErrBadSignature},
		{"replayed later", secret, h, body, now.Add(6 * time.Minute), events.ErrStale},
		{"from the future", secret, h, body, now.Add(-6 * time.Minute), events.ErrStale},
		{"no header", secret, "", body, now, events.ErrNoSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := events.Verify(c.secret, c.header, c.body, c.now, events.DefaultTolerance); err != c.want {
				t.Errorf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}
