package gate_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/pausetest"
	"github.com/tokengate/tokengate/internal/token"
)

// pausingStore is the real store whose LookupToken, once armed, reads the
// token and then waits, so that a revocation can land between the read
// and its use.
type pausingStore struct {
	*boltstore.Store
	*pausetest.Gate
}

func (p *pausingStore) LookupToken(ctx context.Context, h store.TokenHash) (store.Grant, error) {
	g, err := p.Store.LookupToken(ctx, h)
	p.Hold()
	return g, err
}

// A check begun after a token's invalidation must not share the look-up
// begun before it: that look-up read the token before it was revoked.
func TestCheckAfterInvalidationDoesNotShareEarlierLookup(t *testing.T) {
	e := newEnv(t)
	tok := e.newToken(t, pat.CreateRequest{})
	ps := &pausingStore{Store: e.st, Gate: pausetest.New()}
	c := cache.New(cache.Options{Now: e.clk.Now})
	checker := gate.New(ps, c, lastuse.New(ps), gate.Options{LastUseEvery: lastUseEvery, Now: e.clk.Now})
	// check answers the check's refusal as its value (pausetest.Go fails
	// the test on an error).
	check := func() (refusal, error) {
		_, err := checker.Check(context.Background(), gate.Request{Token: tok.Token, ClientIP: clientIP})
		return refusal{err}, nil
	}

	ps.Arm()
	first := pausetest.Go(t, check)
	ps.Read() // the look-up has read the token before its revocation
	if _, err := e.st.DeleteToken(context.Background(), "alice", tok.ID); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(token.Hash(tok.Token)) // the revocation's EventToken
	later := pausetest.Within(t, ps.Gate, pausetest.Go(t, check),
		"a check after the invalidation waited for the look-up begun before it")
	ps.Release()
	if r := <-first; r.err != nil {
		t.Fatalf("the check that read the token before its revocation: %v", r.err)
	}
	wantRefused(t, later.err, apierr.ErrInvalidToken, http.StatusUnauthorized)
	again, _ := check() // the look-up begun before the invalidation was not cached
	wantRefused(t, again.err, apierr.ErrInvalidToken, http.StatusUnauthorized)
}

type refusal struct{ err error }
