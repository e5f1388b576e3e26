package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Ping implements store.Pinger: PING, on every master of a cluster (one
// that does not answer makes a part of the users unreachable). It is not
// counted in Ops and RoundTrips (the breaker's probe would blur them). It returns
// when ctx ends even if the client does not (go-redis bounds a read by its
// own read timeout, not by the context): the PING then finishes in the
// background.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx = context.WithValue(ctx, uncounted{}, true) // Ops and RoundTrips count the work of requests
	done := make(chan error, 1)
	go func() {
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			done <- cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
			return
		}
		done <- s.client.Ping(ctx).Err()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// uncounted marks the context of a command that opsHook does not count.
type uncounted struct{}

// counted reports whether opsHook counts a command sent with ctx.
func counted(ctx context.Context) bool { return ctx.Value(uncounted{}) == nil }

// Unreachable implements store.UnreachableTeller: besides timeouts and
// connection errors (which the store recognises itself), a pool with no
// free connection in time and a server that cannot serve yet (LOADING,
// MASTERDOWN, CLUSTERDOWN) mean Redis cannot be reached.
func (s *Store) Unreachable(err error) bool {
	return errors.Is(err, redis.ErrPoolTimeout) || redis.IsLoadingError(err) ||
		redis.IsMasterDownError(err) || redis.IsClusterDownError(err)
}
