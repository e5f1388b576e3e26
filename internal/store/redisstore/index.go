package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// casIndexScript changes an index key only if it holds what the caller
// expects, so that no step ever clobbers the index of another token.
//
//	KEYS[1] index key
//	ARGV[1] expected value, "" for "absent"
//	ARGV[2] new value, "" to delete the key
//	ARGV[3] channel to publish ARGV[4] on after a change, "" for none
//	ARGV[5] expiry of the new value, Unix milliseconds (PEXPIREAT); ""
//	        or absent for none (the session index expires, token indexes
//	        do not)
//
// It returns {1, old value} after a change and {0, current value} when
// the key did not hold the expected value ("" stands for absent). SET and
// PEXPIREAT rather than SET's PXAT, which needs Redis 6.2.
var casIndexScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {0, cur} end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  if ARGV[5] and ARGV[5] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[5]) end
end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return {1, cur}
`)

// indexChange is one compare-and-set of an index key.
type indexChange struct {
	hash           store.TokenHash
	expected, next string
	// publish announces a token event: when an index appears a node may
	// have refused and cached the lookup of its hash.
	publish bool
	// expireAt, when not zero, makes the new value expire then (a
	// previous secret's index).
	expireAt time.Time
}

// call is the casIndexScript call that makes the change.
func (c indexChange) call(s *Store) scriptCall {
	channel, msg := "", ""
	if c.publish {
		channel, msg = s.channel, s.encodeEvent(store.TokenEvent(c.hash))
	}
	args := []any{c.expected, c.next, channel, msg}
	if !c.expireAt.IsZero() {
		args = append(args, c.expireAt.UnixMilli())
	}
	return scriptCall{keys: []string{s.keys.index(c.hash)}, args: args}
}

// casResult is the outcome of one indexChange.
type casResult struct {
	changed bool
	current string // the value before the change, or the unexpected one
}

// casIndexes applies changes in one pipeline.
func (s *Store) casIndexes(ctx context.Context, changes []indexChange) ([]casResult, error) {
	calls := make([]scriptCall, len(changes))
	for i, c := range changes {
		calls[i] = c.call(s)
	}
	cmds, err := s.runScripts(ctx, casIndexScript, calls)
	if err != nil {
		return nil, err
	}
	results := make([]casResult, len(cmds))
	for i, cmd := range cmds {
		v, err := cmd.Slice()
		if err != nil {
			return nil, err
		}
		if len(v) != 2 {
			return nil, fmt.Errorf("unexpected reply %v from index script", v)
		}
		changed, _ := v[0].(int64)
		current, _ := v[1].(string)
		results[i] = casResult{changed: changed == 1, current: current}
	}
	return results, nil
}

// setIndexes creates (link) or removes the hash indexes of toks (every
// hash of each: current and previous), leaving alone any index that
// points elsewhere. Creating publishes token events. A previous secret's
// index made again has no expiry: LookupToken still refuses it after its
// end.
func (s *Store) setIndexes(ctx context.Context, toks []store.Token, link bool) error {
	var changes []indexChange
	for _, t := range toks {
		r := ref(t.Owner, t.ID)
		for _, h := range t.Hashes() {
			if link {
				changes = append(changes, indexChange{hash: h, next: r, publish: true})
			} else {
				changes = append(changes, indexChange{hash: h, expected: r})
			}
		}
	}
	_, err := s.casIndexes(ctx, changes)
	return err
}

// errHashInUse means that a live token already has the hash of a new one.
var errHashInUse = errors.New("another token has the same hash")

// linkToken creates the index of a new token. An index left behind by a
// token that no longer exists (a crash, see Check) is replaced; one of a
// live token is not.
func (s *Store) linkToken(ctx context.Context, t store.Token) error {
	change := indexChange{hash: t.Hash, next: ref(t.Owner, t.ID), publish: true}
	for range maxTxAttempts {
		res, err := s.casIndexes(ctx, []indexChange{change})
		if err != nil || res[0].changed {
			return err
		}
		if _, err := s.resolve(ctx, t.Hash, res[0].current); err == nil {
			return errHashInUse
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		change.expected = res[0].current
	}
	return errContention
}

// resolve returns the token an index value points to if it exists and has
// hash h (current or previous, ended or not), and store.ErrNotFound if
// not: the index is dangling.
func (s *Store) resolve(ctx context.Context, h store.TokenHash, indexValue string) (store.Token, error) {
	owner, id, ok := parseRef(indexValue)
	if !ok {
		return store.Token{}, store.ErrNotFound
	}
	t, err := s.readToken(ctx, s.client, owner, id)
	if err != nil {
		return store.Token{}, err
	}
	if !t.HasHash(h) {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}
