package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// countFailureScript adds one to a counter and starts its window at the
// first failure. It is the script form of INCR + PEXPIRE NX, which needs
// Redis 7; this works on older servers too.
//
//	KEYS[1] counter, ARGV[1] window in milliseconds
var countFailureScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// CountFailure adds one to the counter named key and returns the count in
// the current window. A window shorter than a millisecond counts as one.
func (s *Store) CountFailure(ctx context.Context, key string, window time.Duration) (int64, error) {
	ms := max(window.Milliseconds(), 1)
	n, err := countFailureScript.Run(ctx, s.client, []string{s.keys.failure(key)}, ms).Int64()
	return n, opErr(err, "count failure")
}

// FailureCount returns the count in the current window without changing
// it; an expired counter is gone, so it reads as 0.
func (s *Store) FailureCount(ctx context.Context, key string) (int64, error) {
	n, err := s.client.Get(ctx, s.keys.failure(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, opErr(err, "read failure count")
}

// ClearFailures deletes the counter named key.
func (s *Store) ClearFailures(ctx context.Context, key string) error {
	return opErr(s.client.Del(ctx, s.keys.failure(key)).Err(), "clear failures")
}
