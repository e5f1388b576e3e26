package oauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

// pausingStore is the real store whose GetClient and ListDenied, once
// armed, read and then wait, so that a change can land between the read
// and its use.
type pausingStore struct {
	*boltstore.Store
	*pausetest.Gate
}

func (p *pausingStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	c, err := p.Store.GetClient(ctx, id)
	p.Hold()
	return c, err
}

func (p *pausingStore) ListDenied(ctx context.Context) ([]store.Denial, error) {
	l, err := p.Store.ListDenied(ctx)
	p.Hold()
	return l, err
}

// A Get begun after a client's invalidation must not share the read begun
// before it (which may predate the change the invalidation announced),
// and that read must not be kept.
func TestClientTableInvalidateDuringLoad(t *testing.T) {
	e := newEnv(t)
	id := e.newClient(t, oauthclient.NewClient{}).ClientID
	ps := &pausingStore{Store: e.st, Gate: pausetest.New()}
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
	if _, err := e.clients.Update(ctx, id, oauthclient.ClientChanges{Enabled: &off}); err != nil {
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

// A check begun after a Reset must not share the read of the list begun
// before it.
func TestDenyListResetDuringLoad(t *testing.T) {
	e := newEnv(t)
	ps := &pausingStore{Store: e.st, Gate: pausetest.New()}
	d := accesstoken.NewDenyList(ps)
	ctx, now := context.Background(), time.Now()
	denied := func() (bool, error) { return d.Denied(ctx, "jti-1", now) }

	ps.Arm()
	first := pausetest.Go(t, denied)
	ps.Read() // the list has been read without jti-1
	if err := e.st.Deny(ctx, store.Denial{JTI: "jti-1", Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d.Reset() // say the EventDenied was missed and an EventReset came
	later := pausetest.Within(t, ps.Gate, pausetest.Go(t, denied),
		"a check after the Reset waited for the read begun before it")
	ps.Release()
	<-first
	if !later {
		t.Error("a check after the Reset did not see the denial")
	}
}
