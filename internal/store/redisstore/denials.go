package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// The deny-list is one sorted set: member the jti, score the end of the
// denial in Unix microseconds, which a float64 score holds exactly for
// any time between the years 1685 and 2255. Ends are rounded up to the
// microsecond, so that a denial never ends before the time it was asked
// for.

// pruneGrace is how long an ended denial is kept before Deny prunes it
// (and the key outlives its last denial): pruning goes by the clock of
// the node that writes, and must not drop a denial that a node whose
// clock is behind still holds to be in force.
const pruneGrace = time.Minute

// denyScript denies a jti until a time unless it is denied until later
// already, prunes the denials that ended before a bound, lets the key
// expire when its last denial has ended, and publishes the event, which
// carries the end of the denial as stored (the later of the two).
//
//	KEYS[1] the deny-list
//	ARGV[1] jti, ARGV[2] Until in Unix microseconds
//	ARGV[3] prune denials that ended before this, in Unix microseconds
//	ARGV[4] grace in milliseconds (see pruneGrace)
//	ARGV[5] channel, ARGV[6] message head ("NODE d:"; the script appends
//	        "MICROS JTI")
//
// It returns the end of the denial as stored, as a decimal string.
// Without ZADD's GT (Redis 6.2) and with '%.0f' (scores are integers
// within a float64's exact range), so that it runs on older servers too.
var denyScript = redis.NewScript(`
local untilv = tonumber(ARGV[2])
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= untilv then
  untilv = tonumber(cur)
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.floor(tonumber(last[2]) / 1000) + 1 + tonumber(ARGV[4])))
end
local stored = string.format('%.0f', untilv)
redis.call('PUBLISH', ARGV[5], ARGV[6] .. stored .. ' ' .. ARGV[1])
return stored
`)

// deny puts d.JTI on the deny-list until d.Until, or leaves it there until
// a later time it is denied until already; the event carries the end as
// stored. Subscribers of this process get d.Until itself when that is
// what was stored (to the microsecond), and the stored end otherwise.
func (s *Store) deny(ctx context.Context, d store.Denial) error {
	until := ceilMicros(d.Until)
	bound := s.now().Add(-pruneGrace).UnixMicro()
	// The message head: encodeEvent's form with the time and jti left to
	// the script.
	head := s.node + " " + deniedTag
	reply, err := denyScript.Run(ctx, s.client, []string{s.keys.denied()},
		d.JTI, until, bound, pruneGrace.Milliseconds(), s.channel, head).Text()
	if err != nil {
		return opErr(err, "deny %q", d.JTI)
	}
	stored, err := strconv.ParseInt(reply, 10, 64)
	if err != nil {
		return opErr(err, "deny %q: reply %q", d.JTI, reply)
	}
	ev := deniedEvent(d.JTI, d.Until)
	if stored != until {
		ev.Until = fromMicros(stored)
	}
	s.subs.deliver(ev)
	return nil
}

// ListDenied returns the denials that end after now, in the order of
// their ends.
func (s *Store) ListDenied(ctx context.Context) ([]store.Denial, error) {
	after := "(" + strconv.FormatInt(s.now().UnixMicro(), 10)
	zs, err := s.client.ZRangeByScoreWithScores(ctx, s.keys.denied(), &redis.ZRangeBy{Min: after, Max: "+inf"}).Result()
	if err != nil {
		return nil, opErr(err, "list denied")
	}
	out := make([]store.Denial, 0, len(zs))
	for _, z := range zs {
		jti, _ := z.Member.(string)
		out = append(out, store.Denial{JTI: jti, Until: fromMicros(int64(z.Score))})
	}
	return out, nil
}

// ceilMicros returns t in Unix microseconds, rounded up.
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if fromMicros(us).Before(t) {
		us++
	}
	return us
}

// fromMicros returns the time of Unix microseconds us, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
