package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// createUser adds u: the record first, then the name in the user set.
func (s *Store) createUser(ctx context.Context, u store.User) error {
	if strings.Contains(u.Name, refSep) {
		return fmt.Errorf("redisstore: user name %q contains a NUL byte", u.Name)
	}
	data, err := encodeUser(u)
	if err != nil {
		return err
	}
	return s.createListed(ctx, s.keys.user(u.Name), data, s.keys.users(), u.Name, nil, store.ErrUserExists, "user")
}

// GetUser returns the user or store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	return s.readUser(ctx, s.client, name)
}

// readUser reads a user record through c (the client or a transaction).
func (s *Store) readUser(ctx context.Context, c redis.Cmdable, name string) (store.User, error) {
	return readRecord(ctx, c, s.keys.user(name), decodeUser, "get user "+strconv.Quote(name))
}

// ListUsers returns the users of the user set, sorted by name. A name
// whose record is missing (a deletion interrupted by a crash, see Check)
// is skipped.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	users, err := readListed(ctx, s, s.keys.users(), s.keys.user, decodeUser, "list users")
	slices.SortFunc(users, func(a, b store.User) int { return strings.Compare(a.Name, b.Name) })
	return users, err
}

// updateUser applies fn to the user in a WATCH transaction; fn runs again
// if another client changes the user meanwhile.
func (s *Store) updateUser(ctx context.Context, name string, fn func(*store.User) error) (store.User, error) {
	read := func(c redis.Cmdable) (store.User, error) { return s.readUser(ctx, c, name) }
	sameKey := func(u store.User) error {
		if u.Name != name {
			return fmt.Errorf("redisstore: update user %q: the update changed the name to %q", name, u.Name)
		}
		return nil
	}
	return updateRecord(ctx, s, s.keys.user(name), store.UserEvent(name), read, encodeUser, fn, sameKey, fmt.Sprintf("update user %q", name))
}

// deleteUser removes the user and its tokens: first the name from the user
// set and the tokens' hash indexes, then, in one transaction, the user's
// record, tokens, last uses, recent addresses and sessions. If that fails the first steps
// are undone. The session index keys are left to expire with their
// sessions: they lead to no session any more.
func (s *Store) deleteUser(ctx context.Context, name string) error {
	var undo func(context.Context) error // of the latest attempt's first steps
	ev := store.UserEvent(name)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		undo = nil
		toks, err := s.readUserTokens(ctx, tx, name)
		if err != nil {
			return err
		}
		undo = func(uctx context.Context) error { return s.relinkUser(uctx, name, toks) }
		if err := s.unlinkUser(ctx, name, toks); err != nil {
			return opErr(err, "delete user %q", name)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.keys.user(name), s.keys.tokens(name), s.keys.used(name), s.keys.addrs(name), s.keys.sessions(name))
			s.publishIn(ctx, p, ev)
			return nil
		})
		return opErr(err, "delete user %q", name)
	}, s.keys.user(name), s.keys.tokens(name), s.keys.sessions(name))
	if err != nil {
		return undone(ctx, err, undo)
	}
	s.subs.deliver(ev)
	return nil
}

// unlinkUser removes the name from the user set and the tokens' indexes.
func (s *Store) unlinkUser(ctx context.Context, name string, toks []store.Token) error {
	if err := s.client.SRem(ctx, s.keys.users(), name).Err(); err != nil {
		return err
	}
	return s.setIndexes(ctx, toks, false)
}

// relinkUser undoes unlinkUser after a failed deletion.
func (s *Store) relinkUser(ctx context.Context, name string, toks []store.Token) error {
	return errors.Join(s.client.SAdd(ctx, s.keys.users(), name).Err(), s.setIndexes(ctx, toks, true))
}
