package accesstoken_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
)

// A check begun after a Reset must not share the read of the list begun
// before it.
func TestDenyListResetDuringLoad(t *testing.T) {
	e := newEnv(t)
	ps := &oauthtest.PausingStore{Store: e.St, Gate: pausetest.New()}
	d := accesstoken.NewDenyList(ps)
	ctx, now := context.Background(), time.Now()
	denied := func() (bool, error) { return d.Denied(ctx, "jti-1", now) }

	ps.Arm()
	first := pausetest.Go(t, denied)
	ps.Read() // the list has been read without jti-1
	if err := e.St.Deny(ctx, store.Denial{JTI: "jti-1", Until: now.Add(time.Hour)}); err != nil {
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
