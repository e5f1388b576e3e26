package pat_test

import (
	"context"
	"testing"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// TestEventsOncePerChange: a create and a revoke each emit one event with
// the token's hash; a refused create and a revoke of a token already gone
// emit nothing.
func TestEventsOncePerChange(t *testing.T) {
	e := newEnv(t, 0)
	var got []events.Event
	e.svc.SetEvents(events.Func(func(ev events.Event) { got = append(got, ev) }))
	ctx := events.WithActor(context.Background(), "alice")
	c, err := e.svc.Create(ctx, "alice", pat.CreateRequest{Label: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, "alice", pat.CreateRequest{Label: "CI"}); err == nil {
		t.Fatal("a second token labelled ci was made")
	}
	if err := e.svc.Delete(ctx, "alice", c.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delete(ctx, "alice", c.ID); err == nil {
		t.Fatal("a token was revoked twice")
	}
	hash := store.TokenHash(token.Hash(c.Token)).String()
	if len(got) != 2 || got[0].Type != events.TokenCreated || got[1].Type != events.TokenRevoked {
		t.Fatalf("events %+v", got)
	}
	for _, ev := range got {
		if ev.HashedToken != hash || ev.Subject.ID != c.ID || ev.Actor != "alice" || ev.Subject.Label != "ci" {
			t.Errorf("event %+v", ev)
		}
	}
}
