package boltstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

func clientDesc(id string) string { return fmt.Sprintf("client %q", id) }

func getClient(tx *bolt.Tx, id string) (store.Client, error) {
	var c store.Client
	err := getJSON(tx.Bucket(bucketClients), []byte(id), &c, clientDesc(id))
	return c, err
}

// CreateClient stores c and announces EventClient; ErrClientExists if the
// id is taken.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		b := tx.Bucket(bucketClients)
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("%s: %w", clientDesc(c.ID), store.ErrClientExists)
		}
		emit(store.ClientEvent(c.ID))
		return putJSON(b, []byte(c.ID), c)
	})
}

// GetClient returns a client or ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	var c store.Client
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		c, err = getClient(tx, id)
		return err
	})
	return c, err
}

// ListClients returns all clients sorted by CreatedAt then ID.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	var clients []store.Client
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			var c store.Client
			err := decodeJSON(v, &c, clientDesc(string(k)))
			clients = append(clients, c)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(clients, func(a, b store.Client) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return clients, nil
}

// UpdateClient applies fn to the client in one transaction and announces
// EventClient. If fn fails its error is returned unwrapped; if fn changes
// the ID nothing is written.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) (store.Client, error) {
	var c store.Client
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if c, err = getClient(tx, id); err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("%s: update may not change its ID to %q", clientDesc(id), c.ID)
		}
		emit(store.ClientEvent(id))
		return putJSON(tx.Bucket(bucketClients), []byte(id), c)
	})
	if err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// DeleteClient removes a client, announces EventClient and returns what
// was removed.
func (s *Store) DeleteClient(ctx context.Context, id string) (store.Client, error) {
	var c store.Client
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if c, err = getClient(tx, id); err != nil {
			return err
		}
		emit(store.ClientEvent(id))
		return tx.Bucket(bucketClients).Delete([]byte(id))
	})
	if err != nil {
		return store.Client{}, err
	}
	return c, nil
}
