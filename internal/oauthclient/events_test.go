package oauthclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// TestClientEvents: created, switched off, renamed (no event), switched
// on, deleted; each event names the key and carries its secret's hash.
func TestClientEvents(t *testing.T) {
	e := newEnv(t)
	var got []events.Event
	e.Clients.SetEvents(events.Func(func(ev events.Event) { got = append(got, ev) }))
	ctx := context.Background()
	c, err := e.Clients.Create(ctx, oauthclient.NewClient{Name: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	off, on, name := false, true, "billing-2"
	for _, ch := range []oauthclient.ClientChanges{{Enabled: &off}, {Enabled: &off}, {Name: &name}, {Enabled: &on}} {
		if _, err := e.Clients.Update(ctx, c.ClientID, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Clients.Delete(ctx, c.ClientID); err != nil {
		t.Fatal(err)
	}
	if err := e.Clients.Delete(ctx, c.ClientID); err == nil {
		t.Fatal("deleted twice")
	}
	var types []string
	sum := sha256.Sum256([]byte(c.ClientSecret))
	for _, ev := range got {
		types = append(types, ev.Type)
		if ev.Subject.ID != c.ClientID || ev.HashedToken != hex.EncodeToString(sum[:]) {
			t.Errorf("event %+v", ev)
		}
	}
	want := []string{events.OAuthKeyCreated, events.OAuthKeyDisabled, events.OAuthKeyEnabled, events.OAuthKeyDeleted}
	if !slices.Equal(types, want) {
		t.Errorf("events %q, want %q", types, want)
	}
}
