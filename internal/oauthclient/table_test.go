package oauthclient_test

import (
	"context"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

// A Get begun after a client's invalidation must not share the read begun
// before it (which may predate the change the invalidation announced),
// and that read must not be kept.
func TestClientTableInvalidateDuringLoad(t *testing.T) {
	e := newEnv(t)
	id := e.NewClient(t, oauthclient.NewClient{}).ClientID
	ps := &oauthtest.PausingStore{Store: e.St, Gate: pausetest.New()}
	table := oauthclient.NewTable(ps)
	ctx := context.Background()
	enabled := func() (bool, error) {
		c, err := table.Get(ctx, id)
		return c != nil && c.Enabled, err
	}

	ps.Arm()
	first := pausetest.Go(t, enabled)
	ps.Read() // the table has read the client while it was enabled
	off := false
	if _, err := e.Clients.Update(ctx, id, oauthclient.ClientChanges{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	table.Invalidate(id) // the update's EventClient
	later := pausetest.Within(t, ps.Gate, pausetest.Go(t, enabled),
		"a Get after the invalidation waited for the read begun before it")
	ps.Release()
	if !<-first {
		t.Fatal("the first Get did not get the client it read")
	}
	if later {
		t.Error("a Get after the invalidation got the client before its change")
	}
	if c, err := table.Get(ctx, id); err != nil || c == nil || c.Enabled {
		t.Errorf("the read begun before the invalidation was kept: %+v, %v", c, err)
	}
}
