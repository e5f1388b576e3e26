package redisstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// Sessions. A user's sessions are one hash in the user's slot (see keys),
// so that DeleteUser removes them in the transaction that removes the
// user, and the user's sessions are counted, capped and removed together.
// GetSession has only the id, so a session index key in a slot of its own
// names the user: it is written first (claiming the id) and expires with
// the session (PEXPIREAT). The hash is the truth: an index that leads to
// no field (the session was deleted, evicted or its user deleted) finds
// nothing, and is replaced when the id is claimed again.
//
// Hash fields do not expire one by one, so the hash expires with its
// latest session and every CreateSession prunes the fields that have
// expired; GetSession, TouchSession and DeleteSession compare ExpiresAt
// with the store's clock, so an expired field is never returned.

// getSessionScript reads a session's index and then its field in the
// user's hash in one round trip.
//
//	KEYS[1] session index key
//	ARGV[1], ARGV[2] head and tail of the sessions key (see template)
//	ARGV[3] the session id in hex
//
// It returns nil without an index, else {user, record or nil}. Like
// lookupScript it builds a key it was not given, so it is not used on a
// cluster.
var getSessionScript = redis.NewScript(`
local user = redis.call('GET', KEYS[1])
if not user then return false end
return {user, redis.call('HGET', ARGV[1] .. user .. ARGV[2], ARGV[3])}
`)

// live reports whether s has not reached its ExpiresAt at now.
func live(s store.Session, now time.Time) bool { return now.Before(s.ExpiresAt) }

// casSessionIndex sets the session index of id to next (expiring at
// until) if it holds expected ("" for absent; next "" deletes it). It
// reports whether it changed and the value it found.
func (s *Store) casSessionIndex(ctx context.Context, id store.TokenHash, expected, next string, until time.Time) (bool, string, error) {
	reply, err := casIndexScript.Run(ctx, s.client, []string{s.keys.sessionIndex(id)},
		expected, next, "", "", until.UnixMilli()).Slice()
	if err != nil {
		return false, "", err
	}
	if len(reply) != 2 {
		return false, "", errors.New("redisstore: unexpected reply from the session index script")
	}
	changed, _ := reply[0].(int64)
	current, _ := reply[1].(string)
	return changed == 1, current, nil
}

// sessionUser returns the user the index of id names, "" if none.
func (s *Store) sessionUser(ctx context.Context, id store.TokenHash) (string, error) {
	user, err := optional(s.client.Get(ctx, s.keys.sessionIndex(id)))
	return user, opErr(err, "read session index")
}

// readSession reads the live session id of user through c (the client or a
// transaction); store.ErrNotFound if it is absent or has expired.
func (s *Store) readSession(ctx context.Context, c redis.Cmdable, user string, id store.TokenHash) (store.Session, error) {
	data, err := optional(c.HGet(ctx, s.keys.sessions(user), id.String()))
	if err != nil {
		return store.Session{}, opErr(err, "read session")
	}
	return s.liveSession(data, user, id)
}

// liveSession decodes a stored session of user with id ("" for none) and
// returns it if it is live, else store.ErrNotFound.
func (s *Store) liveSession(data, user string, id store.TokenHash) (store.Session, error) {
	if data == "" {
		return store.Session{}, store.ErrNotFound
	}
	sess, err := decodeSession(data)
	if err != nil {
		return store.Session{}, err
	}
	if sess.ID != id || sess.User != user || !live(sess, s.now()) {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

// createSession claims the id in the session index (ErrExists if it leads
// to a live session), then writes the session into the user's hash in a
// WATCH transaction that checks that the user exists, prunes the user's
// expired sessions and, at store.MaxSessionsPerUser live ones, removes the
// oldest. If that fails the claim is undone. The index keys of pruned and
// evicted sessions are left to expire: they lead nowhere.
func (s *Store) createSession(ctx context.Context, sess store.Session) error {
	if strings.Contains(sess.User, refSep) {
		return store.ErrNotFound // no user has such a name
	}
	data, err := encodeSession(sess)
	if err != nil {
		return err
	}
	keep := live(sess, s.now())
	if keep {
		if err := s.claimSession(ctx, sess); err != nil {
			return err
		}
	}
	err = s.watch(ctx, func(tx *redis.Tx) error {
		return s.writeSession(ctx, tx, sess, data, keep)
	}, s.keys.user(sess.User), s.keys.sessions(sess.User))
	if err != nil && keep {
		return undone(ctx, err, func(uctx context.Context) error {
			_, _, err := s.casSessionIndex(uctx, sess.ID, sess.User, "", time.Time{})
			return err
		})
	}
	return err
}

// claimSession points the session index of sess.ID at sess.User, unless
// it leads to a live session (store.ErrExists). An index that leads
// nowhere is replaced.
func (s *Store) claimSession(ctx context.Context, sess store.Session) error {
	expected := ""
	for range maxTxAttempts {
		changed, current, err := s.casSessionIndex(ctx, sess.ID, expected, sess.User, sess.ExpiresAt)
		if err != nil {
			return opErr(err, "create session: index")
		}
		if changed {
			return nil
		}
		if _, err := s.readSession(ctx, s.client, current, sess.ID); err == nil {
			return store.ErrExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		expected = current
	}
	return errContention
}

// writeSession is CreateSession's transaction: it checks the user, prunes
// and caps the user's sessions and, if keep, adds sess (as data).
func (s *Store) writeSession(ctx context.Context, tx *redis.Tx, sess store.Session, data string, keep bool) error {
	key := s.keys.sessions(sess.User)
	var exists *redis.IntCmd
	var all *redis.MapStringStringCmd
	_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, s.keys.user(sess.User))
		all = p.HGetAll(ctx, key)
		return nil
	})
	if err != nil {
		return opErr(err, "create session: read the user's sessions")
	}
	if exists.Val() == 0 {
		return store.ErrNotFound
	}
	now := s.now()
	var drop []string
	var alive []store.Session
	for field, v := range all.Val() {
		o, err := decodeSession(v)
		switch {
		case err != nil || !live(o, now):
			drop = append(drop, field) // an unreadable one can never be used
		case o.ID == sess.ID:
			return store.ErrExists
		default:
			alive = append(alive, o)
		}
	}
	if keep {
		slices.SortFunc(alive, oldestFirst)
		for len(alive) >= store.MaxSessionsPerUser {
			drop = append(drop, alive[0].ID.String())
			alive = alive[1:]
		}
		alive = append(alive, sess)
	}
	if len(drop) == 0 && !keep {
		return nil
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(drop) > 0 {
			p.HDel(ctx, key, drop...)
		}
		if keep {
			p.HSet(ctx, key, sess.ID.String(), data)
		}
		if len(alive) > 0 {
			latest := slices.MaxFunc(alive, func(a, b store.Session) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
			p.PExpireAt(ctx, key, latest.ExpiresAt)
		}
		return nil
	})
	return opErr(err, "create session")
}

// oldestFirst orders sessions by CreatedAt, then ID.
func oldestFirst(a, b store.Session) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID.String(), b.ID.String()))
}

// GetSession returns a live session: one round trip (getSessionScript) on
// a single server, two on a cluster.
func (s *Store) GetSession(ctx context.Context, id store.TokenHash) (store.Session, error) {
	var user, data string
	if s.cluster {
		var err error
		if user, err = s.sessionUser(ctx, id); err != nil {
			return store.Session{}, err
		}
		if user == "" {
			return store.Session{}, store.ErrNotFound
		}
		return s.readSession(ctx, s.client, user, id)
	}
	head, tail := template(s.keys.sessions)
	reply, err := getSessionScript.Run(ctx, s.client, []string{s.keys.sessionIndex(id)}, head, tail, id.String()).Slice()
	if errors.Is(err, redis.Nil) {
		return store.Session{}, store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, opErr(err, "get session")
	}
	if len(reply) > 0 {
		user, _ = reply[0].(string)
	}
	if len(reply) > 1 {
		data, _ = reply[1].(string)
	}
	return s.liveSession(data, user, id)
}

// TouchSession moves SeenAt forward in a WATCH transaction on the user's
// sessions.
func (s *Store) TouchSession(ctx context.Context, id store.TokenHash, at time.Time) error {
	user, err := s.sessionUser(ctx, id)
	if err != nil {
		return err
	}
	if user == "" {
		return store.ErrNotFound
	}
	return s.watch(ctx, func(tx *redis.Tx) error {
		sess, err := s.readSession(ctx, tx, user, id)
		if err != nil || !at.After(sess.SeenAt) {
			return err
		}
		sess.SeenAt = at
		data, err := encodeSession(sess)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.sessions(user), id.String(), data)
			return nil
		})
		return opErr(err, "touch session")
	}, s.keys.sessions(user))
}

// deleteSession removes the session from its user's hash, which ends it,
// then its index. An expired session is removed too but reported as
// store.ErrNotFound.
func (s *Store) deleteSession(ctx context.Context, id store.TokenHash) error {
	user, err := s.sessionUser(ctx, id)
	if err != nil {
		return err
	}
	if user == "" {
		return store.ErrNotFound
	}
	key, field := s.keys.sessions(user), id.String()
	found := false
	err = s.watch(ctx, func(tx *redis.Tx) error {
		found = false
		data, err := optional(tx.HGet(ctx, key, field))
		if err != nil || data == "" {
			return opErr(err, "delete session")
		}
		// An expired or unreadable record is removed all the same.
		_, err = s.liveSession(data, user, id)
		found = err == nil
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, key, field)
			return nil
		})
		return opErr(err, "delete session")
	}, key)
	if err != nil {
		return err
	}
	if _, _, err := s.casSessionIndex(ctx, id, user, "", time.Time{}); err != nil {
		return opErr(err, "delete session: the session has ended, but removing its index failed")
	}
	if !found {
		return store.ErrNotFound
	}
	return nil
}

// deleteUserSessions removes the user's hash of sessions in a WATCH
// transaction, then their index keys, and returns how many were live.
func (s *Store) deleteUserSessions(ctx context.Context, user string) (int, error) {
	key := s.keys.sessions(user)
	var ids []store.TokenHash
	n := 0
	err := s.watch(ctx, func(tx *redis.Tx) error {
		ids, n = nil, 0
		all, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return opErr(err, "delete sessions of %q", user)
		}
		if len(all) == 0 {
			return nil
		}
		now := s.now()
		for _, v := range all {
			sess, err := decodeSession(v)
			if err != nil {
				continue // unreadable: never usable, and removed below
			}
			ids = append(ids, sess.ID)
			if live(sess, now) {
				n++
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			return nil
		})
		return opErr(err, "delete sessions of %q", user)
	}, key)
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		calls := make([]scriptCall, len(ids))
		for i, id := range ids {
			calls[i] = scriptCall{keys: []string{s.keys.sessionIndex(id)}, args: []any{user, "", "", "", ""}}
		}
		if _, err := s.runScripts(ctx, casIndexScript, calls); err != nil {
			return n, opErr(err, "delete sessions of %q: the sessions have ended, but removing their index failed", user)
		}
	}
	return n, nil
}
