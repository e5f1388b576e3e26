package boltstore

import (
	"context"

	"github.com/tokengate/tokengate/internal/store"
)

// Subscribe calls fn for every event of this process until ctx is done.
// An embedded store has no other processes, so it never sends EventReset.
func (s *Store) Subscribe(ctx context.Context, fn func(store.Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sub := &subscriber{ctx: ctx, fn: fn}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	})
	return nil
}

// publish delivers events to the current subscribers. It calls them on a
// copy of the list so that a slow fn does not hold the lock, and skips a
// subscriber whose ctx is done but whose removal (which runs in its own
// goroutine) has not happened yet: once cancel returns, nothing more is
// delivered.
func (s *Store) publish(events []store.Event) {
	if len(events) == 0 {
		return
	}
	s.mu.RLock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.RUnlock()
	for _, sub := range subs {
		for _, e := range events {
			if sub.ctx.Err() != nil {
				break
			}
			sub.fn(e)
		}
	}
}
