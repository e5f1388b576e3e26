package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

// TestReshardingUnderWrites moves the slots of users being written (their
// records, their tokens' and sessions' index keys, their failure counters
// and the set of user names) to another node of the three-primary cluster
// and back, twice, while one writer per user creates, reads, changes and
// deletes tokens and sessions and counts failures: no operation may fail,
// and every read must see what the writer wrote (see moves.go).
func TestReshardingUnderWrites(t *testing.T) {
	const (
		users    = 4
		pool     = 6 // tokens (and sessions) per user, reused in turn
		rounds   = 2
		minIters = 20 // per writer, even if the moves end first
	)
	s := open(t, sharded, Options{})
	ctx := t.Context()

	type plan struct {
		name     string
		tokens   []store.Token
		sessions []store.TokenHash
	}
	plans := make([]plan, users)
	slotSet := map[int]bool{sharded.KeySlot(t, s.keys.users()): true}
	for i := range plans {
		p := plan{name: fmt.Sprintf("mover%d", i)}
		if err := s.CreateUser(ctx, newUser(p.name)); err != nil {
			t.Fatal(err)
		}
		slotSet[sharded.KeySlot(t, s.keys.user(p.name))] = true
		slotSet[sharded.KeySlot(t, s.keys.failure(p.name))] = true
		for range pool {
			tok := newToken(p.name)
			p.tokens = append(p.tokens, tok)
			slotSet[sharded.KeySlot(t, s.keys.index(tok.Hash))] = true
			id := newToken(p.name).Hash
			p.sessions = append(p.sessions, id)
			slotSet[sharded.KeySlot(t, s.keys.sessionIndex(id))] = true
		}
		plans[i] = p
	}
	slots := make([]int, 0, len(slotSet))
	for sl := range slotSet {
		slots = append(slots, sl)
	}
	slices.Sort(slots)

	var (
		mu       sync.Mutex
		failures []error
		ops      atomic.Int64
		moving   atomic.Bool
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, err)
	}
	moving.Store(true)
	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Go(func() {
			for i := 0; moving.Load() || i < minIters; i++ {
				if err := writeRound(ctx, s, p.name, p.tokens[i%pool], p.sessions[i%pool], i); err != nil {
					fail(err)
				}
				ops.Add(1)
			}
		})
	}

	start := time.Now()
	nodes := sharded.Nodes()
	home := make(map[int]*redistest.Server, len(slots))
	for _, sl := range slots {
		home[sl] = sharded.Owner(t, sl)
	}
	moves := 0
	for range rounds {
		for _, sl := range slots { // away to the next node
			away := nodes[(slices.Index(nodes, home[sl])+1)%len(nodes)]
			sharded.MoveSlots(t, away, sl)
			moves++
		}
		for _, sl := range slots { // and home again
			sharded.MoveSlots(t, home[sl], sl)
			moves++
		}
	}
	moving.Store(false)
	wg.Wait()
	elapsed := time.Since(start)

	t.Logf("resharding under writes: %d slot moves of %d slots, %d write rounds by %d writers (about 12 store operations each) in %v, %d failed",
		moves, len(slots), ops.Load(), users, elapsed.Round(time.Millisecond), len(failures))
	for i, err := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("failed during the moves: %v", err)
	}
}

// writeRound is one writer's round of store operations on user name's
// keys, checking that each read sees the write before it.
func writeRound(ctx context.Context, s *Store, name string, tok store.Token, session store.TokenHash, i int) error {
	tok.Label = fmt.Sprintf("round %d", i)
	tok.LabelKey = tok.Label
	if err := s.CreateToken(ctx, tok, 0); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	g, err := s.LookupToken(ctx, tok.Hash)
	if err != nil || g.Token.ID != tok.ID || g.Owner.Name != name {
		return fmt.Errorf("look up the new token: %+v, %v", g.Token, err)
	}
	if _, err := s.UpdateToken(ctx, name, tok.ID, func(t *store.Token) error { t.Enabled = false; return nil }); err != nil {
		return fmt.Errorf("update token: %w", err)
	}
	if got, err := s.GetToken(ctx, name, tok.ID); err != nil || got.Enabled {
		return fmt.Errorf("read the disabled token: enabled %v, %v", got.Enabled, err)
	}
	if _, err := s.UpdateUser(ctx, name, func(u *store.User) error { u.Roles = []string{fmt.Sprint(i)}; return nil }); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	if _, err := s.CountFailure(ctx, name, time.Minute); err != nil {
		return fmt.Errorf("count failure: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	sess := store.Session{ID: session, User: name, CSRF: "csrf", CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if got, err := s.GetSession(ctx, session); err != nil || got.User != name {
		return fmt.Errorf("read the session: %+v, %v", got, err)
	}
	if err := s.DeleteSession(ctx, session); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if _, err := s.DeleteToken(ctx, name, tok.ID); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if _, err := s.LookupToken(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("look up the deleted token: %v, want not found", err)
	}
	if err := s.ClearFailures(ctx, name); err != nil {
		return fmt.Errorf("clear failures: %w", err)
	}
	return nil
}

// slotMoving tells a redirection (also wrapped, as opErr wraps it) from
// other errors, which must not be retried.
func TestSlotMoving(t *testing.T) {
	redisErr := func(msg string) error { return serverErr(msg) }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redisErr("MOVED 3999 127.0.0.1:6381"), true},
		{redisErr("ASK 3999 127.0.0.1:6381"), true},
		{redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{redisErr("CLUSTERDOWN The cluster is down"), true},
		{redisErr("EXECABORT Transaction discarded because of previous errors."), true},
		{opErr(redisErr("MOVED 1 127.0.0.1:1"), "create token"), true},
		{redisErr("ERR wrong number of arguments"), false},
		{errors.New("MOVED 1 127.0.0.1:1"), false}, // not from the server
		{context.DeadlineExceeded, false},
	} {
		if got := slotMoving(tc.err); got != tc.want {
			t.Errorf("slotMoving(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// serverErr is an error reply of a server, as go-redis gives it: a
// redis.Error.
type serverErr string

func (e serverErr) Error() string { return string(e) }
func (serverErr) RedisError()     {}
