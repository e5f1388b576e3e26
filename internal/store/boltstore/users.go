package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

func userDesc(name string) string { return fmt.Sprintf("user %q", name) }

func getUser(tx *bolt.Tx, name string) (store.User, error) {
	var u store.User
	err := getJSON(tx.Bucket(bucketUsers), []byte(name), &u, userDesc(name))
	return u, err
}

func userExists(tx *bolt.Tx, name string) error {
	if tx.Bucket(bucketUsers).Get([]byte(name)) == nil {
		return fmt.Errorf("%s: %w", userDesc(name), store.ErrNotFound)
	}
	return nil
}

// CreateUser adds u; ErrUserExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		if userExists(tx, u.Name) == nil {
			return fmt.Errorf("%s: %w", userDesc(u.Name), store.ErrUserExists)
		}
		return putJSON(tx.Bucket(bucketUsers), []byte(u.Name), u)
	})
}

// GetUser returns the user or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	var u store.User
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		u, err = getUser(tx, name)
		return err
	})
	return u, err
}

// ListUsers returns all users sorted by name: bbolt keeps keys in byte
// order, which is Go's string order.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	var users []store.User
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u store.User
			err := decodeJSON(v, &u, userDesc(string(k)))
			users = append(users, u)
			return err
		})
	})
	return users, err
}

// UpdateUser applies fn to the user in one transaction and announces
// EventUser. If fn fails its error is returned unwrapped.
func (s *Store) UpdateUser(ctx context.Context, name string, fn func(*store.User) error) (store.User, error) {
	var u store.User
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if u, err = getUser(tx, name); err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		if u.Name != name {
			return fmt.Errorf("%s: update may not rename it to %q", userDesc(name), u.Name)
		}
		emit(store.UserEvent(name))
		return putJSON(tx.Bucket(bucketUsers), []byte(name), u)
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// DeleteUser removes the user, its tokens and their index entries and its
// sessions in one transaction, and announces EventUser, which covers every
// token the user owned.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		if err := userExists(tx, name); err != nil {
			return err
		}
		if err := deleteOwnerTokens(tx, name); err != nil {
			return err
		}
		if _, err := deleteUserSessions(tx, name, s.now()); err != nil {
			return err
		}
		emit(store.UserEvent(name))
		return tx.Bucket(bucketUsers).Delete([]byte(name))
	})
}

// deleteOwnerTokens removes owner's token bucket and the index entries of
// its tokens.
func deleteOwnerTokens(tx *bolt.Tx, owner string) error {
	owned := ownedBucket(tx, owner)
	if owned == nil {
		return nil
	}
	var tokens []store.Token
	err := forEachToken(owned, func(t store.Token) error {
		tokens = append(tokens, t)
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if err := unindex(tx, t); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketTokens).DeleteBucket([]byte(owner))
}
