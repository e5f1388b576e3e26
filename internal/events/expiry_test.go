package events_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

type collected struct {
	mu  sync.Mutex
	got []string
}

func (c *collected) Emit(e events.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := ""
	if s, ok := e.Data["warning_seconds"].(int64); ok {
		w = fmt.Sprintf(" %dd", s/86400)
	}
	if e.HashedToken == "" || e.Actor != "system" {
		panic("an expiry event without hashed_token or actor")
	}
	c.got = append(c.got, e.Type+" "+e.Subject.ID+w)
}

func (c *collected) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	slices.Sort(out)
	return out
}

// TestExpiryScanOnTwoNodes moves a test clock over a token's life: each
// warning (30d, 7d, 1d) and the expiry are sent once, although two nodes
// scan every time, and a token made close to its expiry gets only the
// nearest warning.
func TestExpiryScanOnTwoNodes(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, b := twonodes.Open(t, backend)
			day := 24 * time.Hour
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := a.CreateUser(ctx, store.User{Name: "alice", TokenLogin: true, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			for i, tok := range []struct {
				id      string
				expires time.Time
				enabled bool
			}{
				{"long", t0.Add(40 * day), true},
				{"short", t0.Add(3 * day), true},
				{"never", time.Time{}, true},
				{"off", t0.Add(2 * day), false},
			} {
				st := store.Token{ID: tok.id, Owner: "alice", Kind: store.KindPAT, Enabled: tok.enabled, CreatedAt: t0, ExpiresAt: tok.expires}
				st.Hash[0] = byte(i + 1)
				if err := a.CreateToken(ctx, st, 0); err != nil {
					t.Fatal(err)
				}
			}
			var now atomic.Int64
			clock := func() time.Time { return time.Unix(0, now.Load()) }
			out := &collected{}
			nodes := []*events.ExpiryScanner{events.NewExpiryScanner(a, out, clock), events.NewExpiryScanner(b, out, clock)}
			for _, step := range []struct {
				at   time.Duration
				want []string
			}{
				{0, []string{"token.expiring short 7d"}},
				{day, nil},
				{50 * time.Hour, []string{"token.expiring short 1d"}},
				{60 * time.Hour, nil},
				{3*day + time.Hour, []string{"token.expired short"}},
				{50 * time.Hour, nil}, // time may go back (another node's clock): nothing twice
				{10 * day, []string{"token.expiring long 30d"}},
				{33*day + 12*time.Hour, []string{"token.expiring long 7d"}},
				{39*day + 12*time.Hour, []string{"token.expiring long 1d"}},
				{41 * day, []string{"token.expired long"}},
				{60 * day, nil},
			} {
				now.Store(t0.Add(step.at).UnixNano())
				var wg sync.WaitGroup
				for _, n := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := n.Scan(ctx); err != nil {
							t.Error(err)
						}
					}()
				}
				wg.Wait()
				if got := out.take(); !slices.Equal(got, step.want) {
					t.Errorf("at t0+%v: got %q, want %q", step.at, got, step.want)
				}
			}
		})
	}
}

// TestExpiryScanWaitsForAWebhook: with events off, the scan claims
// nothing (a claim whose event is never sent would be lost).
func TestExpiryScanWaitsForAWebhook(t *testing.T) {
	ctx := context.Background()
	a, _ := twonodes.Open(t, "bolt")
	if err := a.CreateUser(ctx, store.User{Name: "bob", TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "x", Owner: "bob", Kind: store.KindLegacy, Enabled: true, ExpiresAt: time.Now().Add(time.Hour)}
	if err := a.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	w := events.NewWebhook(nil, nil)
	sc := events.NewExpiryScanner(a, w, nil)
	if n, err := sc.Scan(ctx); err != nil || n != 0 {
		t.Fatalf("scan with events off: %d, %v", n, err)
	}
	w.Configure(events.WebhookConfig{URL: "http://127.0.0.1:1/", Secret: secret})
	if n, err := sc.Scan(ctx); err != nil || n != 1 {
		t.Fatalf("scan with events on: %d, %v", n, err)
	}
}
