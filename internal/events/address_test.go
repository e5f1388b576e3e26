package events_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/twonodes"
)

type addrCollector struct{ collected }

func (c *addrCollector) Emit(e events.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Type != events.TokenNewAddress || e.HashedToken == "" {
		panic("unexpected event")
	}
	c.got = append(c.got, e.Subject.ID+" "+e.Data["address"].(string))
}

// TestNewAddressOnTwoNodes: a token's first use from an address is
// announced once, whichever node sees it and however often.
func TestNewAddressOnTwoNodes(t *testing.T) {
	for _, backend := range twonodes.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			a, b := twonodes.Open(t, backend)
			out := &addrCollector{}
			nodes := []*events.Addresses{events.NewAddresses(a, out, 0), events.NewAddresses(b, out, 0)}
			at := time.Now()
			use := func(id string, h byte, ip string) store.LastUse {
				u := store.LastUse{Owner: "alice", TokenID: id, At: at, IP: ip, Host: "api.example.com"}
				u.Hash[0] = h
				return u
			}
			for _, step := range []struct {
				node  int
				batch []store.LastUse
				want  []string
			}{
				{0, []store.LastUse{use("t1", 1, "192.0.2.1"), use("t2", 2, "192.0.2.1")}, []string{"t1 192.0.2.1", "t2 192.0.2.1"}},
				{1, []store.LastUse{use("t1", 1, "192.0.2.1")}, nil}, // the other node: claimed already
				{0, []store.LastUse{use("t1", 1, "192.0.2.1")}, nil}, // this node: remembered
				{1, []store.LastUse{use("t1", 1, "2001:db8::7")}, []string{"t1 2001:db8::7"}},
				{0, []store.LastUse{use("t1", 1, "2001:db8::7"), use("t3", 3, "")}, nil}, // no address: nothing
			} {
				if err := nodes[step.node].Written(ctx, step.batch); err != nil {
					t.Fatal(err)
				}
				got := out.take()
				slices.Sort(step.want)
				if !slices.Equal(got, step.want) {
					t.Errorf("got %q, want %q", got, step.want)
				}
			}
		})
	}
}
