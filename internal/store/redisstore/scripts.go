package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one call of a Lua script in a batch.
type scriptCall struct {
	keys []string
	args []any
}

// runScripts calls sc once per call in one pipeline and returns the
// commands in order. It sends EVALSHA; if the server does not know the
// script (it was restarted, or this is a cluster node that never ran it)
// it sends the batch again with EVAL, which also caches the script. The
// scripts run this way are idempotent, so running some twice is harmless.
// A nil result of a call is not an error.
func (s *Store) runScripts(ctx context.Context, sc *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds, err := s.pipelineScripts(ctx, calls, func(p redis.Pipeliner, c scriptCall) *redis.Cmd {
		return sc.EvalSha(ctx, p, c.keys, c.args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = s.pipelineScripts(ctx, calls, func(p redis.Pipeliner, c scriptCall) *redis.Cmd {
			return sc.Eval(ctx, p, c.keys, c.args...)
		})
	}
	return cmds, ignoreNil(err)
}

// pipelineScripts sends one command per call, built by send, in a pipeline.
func (s *Store) pipelineScripts(ctx context.Context, calls []scriptCall, send func(redis.Pipeliner, scriptCall) *redis.Cmd) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = send(p, c)
		}
		return nil
	})
	return cmds, err
}
