package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

// Sessions live in two buckets:
//
//	sessions       32-byte id -> JSON store.Session
//	user_sessions  user -> nested bucket: 32-byte id -> nothing
//
// A record that has reached its ExpiresAt is treated as absent and removed
// lazily: CreateSession sweeps the user's expired sessions (and, past
// store.MaxSessionsPerUser live ones, the oldest), DeleteSession,
// TouchSession and DeleteUserSessions remove what they find expired, and
// Open sweeps every expired session. A user's sessions are thus bounded by
// the cap plus those that expired since the user last signed in.

func sessionDesc(id store.TokenHash) string { return "session " + id.String()[:12] }

// getSession returns the session's record, whether or not it has expired.
func getSession(tx *bolt.Tx, id store.TokenHash) (store.Session, error) {
	var s store.Session
	err := getJSON(tx.Bucket(bucketSessions), id[:], &s, sessionDesc(id))
	return s, err
}

// live reports whether s has not reached its ExpiresAt at now.
func live(s store.Session, now time.Time) bool { return now.Before(s.ExpiresAt) }

// userSessions returns user's bucket of session ids, or nil if there is none.
func userSessions(tx *bolt.Tx, user string) *bolt.Bucket {
	return tx.Bucket(bucketUserSessions).Bucket([]byte(user))
}

// removeSession deletes a session's record and its entry in its user's
// bucket.
func removeSession(tx *bolt.Tx, s store.Session) error {
	if err := tx.Bucket(bucketSessions).Delete(s.ID[:]); err != nil {
		return err
	}
	if b := userSessions(tx, s.User); b != nil {
		return b.Delete(s.ID[:])
	}
	return nil
}

// sessionsOf returns the records of user's sessions, live or not. An entry
// of the user's bucket without its record is dropped from the bucket.
func sessionsOf(tx *bolt.Tx, user string) ([]store.Session, error) {
	b := userSessions(tx, user)
	if b == nil {
		return nil, nil
	}
	var out []store.Session
	var dangling [][]byte
	err := b.ForEach(func(k, _ []byte) error {
		var id store.TokenHash
		if len(k) != len(id) {
			dangling = append(dangling, bytes.Clone(k))
			return nil
		}
		copy(id[:], k)
		s, err := getSession(tx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			dangling = append(dangling, bytes.Clone(k))
			return nil
		case err != nil:
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if tx.Writable() {
		for _, k := range dangling {
			if err := b.Delete(k); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// CreateSession stores s in one transaction that first removes the user's
// expired sessions and, when the user has store.MaxSessionsPerUser live
// ones, the oldest of them. A session that has already expired is not
// stored.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	return s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		if err := userExists(tx, sess.User); err != nil {
			return err
		}
		now := s.now()
		if old, err := getSession(tx, sess.ID); err == nil {
			if live(old, now) {
				return fmt.Errorf("%s: %w", sessionDesc(sess.ID), store.ErrExists)
			}
			if err := removeSession(tx, old); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		all, err := sessionsOf(tx, sess.User)
		if err != nil {
			return err
		}
		var alive []store.Session
		for _, o := range all {
			if live(o, now) {
				alive = append(alive, o)
			} else if err := removeSession(tx, o); err != nil {
				return err
			}
		}
		if !live(sess, now) {
			return nil
		}
		slices.SortFunc(alive, oldestFirst)
		for len(alive) >= store.MaxSessionsPerUser {
			if err := removeSession(tx, alive[0]); err != nil {
				return err
			}
			alive = alive[1:]
		}
		b, err := tx.Bucket(bucketUserSessions).CreateBucketIfNotExists([]byte(sess.User))
		if err != nil {
			return err
		}
		if err := b.Put(sess.ID[:], nil); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketSessions), sess.ID[:], sess)
	})
}

// oldestFirst orders sessions by CreatedAt, then ID.
func oldestFirst(a, b store.Session) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), bytes.Compare(a.ID[:], b.ID[:]))
}

// GetSession returns a live session; an expired record counts as absent
// (it is removed by the next write that meets it).
func (s *Store) GetSession(ctx context.Context, id store.TokenHash) (store.Session, error) {
	var sess store.Session
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		sess, err = getSession(tx, id)
		if err == nil && !live(sess, s.now()) {
			err = fmt.Errorf("%s has expired: %w", sessionDesc(id), store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.Session{}, err
	}
	return sess, nil
}

// errSessionExpired aborts a write that met an expired session after it
// removed it: the removal is committed and the caller told ErrNotFound.
var errSessionExpired = fmt.Errorf("session has expired: %w", store.ErrNotFound)

// liveSession runs fn on a live session in a write transaction. An expired
// one is removed and reported as ErrNotFound.
func (s *Store) liveSession(ctx context.Context, id store.TokenHash, fn func(tx *bolt.Tx, sess store.Session) error) error {
	expired := false
	err := s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		sess, err := getSession(tx, id)
		if err != nil {
			return err
		}
		if !live(sess, s.now()) {
			expired = true
			return removeSession(tx, sess)
		}
		return fn(tx, sess)
	})
	if err == nil && expired {
		return errSessionExpired
	}
	return err
}

// TouchSession moves SeenAt forward to at.
func (s *Store) TouchSession(ctx context.Context, id store.TokenHash, at time.Time) error {
	return s.liveSession(ctx, id, func(tx *bolt.Tx, sess store.Session) error {
		if !at.After(sess.SeenAt) {
			return nil
		}
		sess.SeenAt = at
		return putJSON(tx.Bucket(bucketSessions), id[:], sess)
	})
}

// DeleteSession removes one live session (an expired one is removed too,
// but reported as ErrNotFound).
func (s *Store) DeleteSession(ctx context.Context, id store.TokenHash) error {
	return s.liveSession(ctx, id, removeSession)
}

// DeleteUserSessions removes every session of user and returns how many
// were live.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) (err error) {
		n, err = deleteUserSessions(tx, user, s.now())
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteUserSessions removes user's sessions and their bucket and returns
// how many were live at now.
func deleteUserSessions(tx *bolt.Tx, user string, now time.Time) (int, error) {
	all, err := sessionsOf(tx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	records := tx.Bucket(bucketSessions)
	for _, sess := range all {
		if live(sess, now) {
			n++
		}
		if err := records.Delete(sess.ID[:]); err != nil {
			return 0, err
		}
	}
	if userSessions(tx, user) != nil {
		if err := tx.Bucket(bucketUserSessions).DeleteBucket([]byte(user)); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// sweepSessions deletes every session that has expired at now (at Open:
// users who never sign in again would otherwise keep theirs).
func sweepSessions(tx *bolt.Tx, now time.Time) error {
	var ended []store.Session
	var broken [][]byte
	records := tx.Bucket(bucketSessions)
	err := records.ForEach(func(k, v []byte) error {
		var sess store.Session
		switch {
		case decodeJSON(v, &sess, "session") != nil:
			// Unreadable: it can never be used. Its user's entry, if
			// any, is dropped as dangling by the next sessionsOf.
			broken = append(broken, bytes.Clone(k))
		case !live(sess, now):
			ended = append(ended, sess)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range broken {
		if err := records.Delete(k); err != nil {
			return err
		}
	}
	for _, sess := range ended {
		if err := removeSession(tx, sess); err != nil {
			return err
		}
	}
	return nil
}
