package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// createClient adds c as CreateUser adds a user: the record first, then
// the ID in the client set, in a transaction that also publishes the
// event, so that the event goes out with the last step. If the set cannot
// be written the record is removed again.
func (s *Store) createClient(ctx context.Context, c store.Client) error {
	data, err := encodeClient(c)
	if err != nil {
		return err
	}
	ev := store.ClientEvent(c.ID)
	return s.createListed(ctx, s.keys.client(c.ID), data, s.keys.clients(), c.ID, &ev, store.ErrClientExists, "client")
}

// GetClient returns the client or store.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	return s.readClient(ctx, s.client, id)
}

// readClient reads a client record through c (the client or a
// transaction).
func (s *Store) readClient(ctx context.Context, c redis.Cmdable, id string) (store.Client, error) {
	return readRecord(ctx, c, s.keys.client(id), decodeClient, "get client "+strconv.Quote(id))
}

// ListClients returns the clients of the client set sorted by CreatedAt
// then ID. An ID whose record is missing (a deletion interrupted by a
// crash, see Check) is skipped.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	clients, err := readListed(ctx, s, s.keys.clients(), s.keys.client, decodeClient, "list clients")
	slices.SortFunc(clients, func(a, b store.Client) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return clients, err
}

// updateClient applies fn to the client in a WATCH transaction; fn runs
// again if another client of Redis changes the record meanwhile.
func (s *Store) updateClient(ctx context.Context, id string, fn func(*store.Client) error) (store.Client, error) {
	read := func(c redis.Cmdable) (store.Client, error) { return s.readClient(ctx, c, id) }
	sameKey := func(c store.Client) error {
		if c.ID != id {
			return fmt.Errorf("redisstore: update client %q: the update changed the ID to %q", id, c.ID)
		}
		return nil
	}
	return updateRecord(ctx, s, s.keys.client(id), store.ClientEvent(id), read, encodeClient, fn, sameKey, fmt.Sprintf("update client %q", id))
}

// updateRecord is the read-modify-write of one JSON record at key: read
// it, apply fn, refuse a changed key (sameKey), write it and publish ev in
// one MULTI under WATCH (retried if another writer got in first), then
// deliver ev to this process's subscribers.
func updateRecord[T any](ctx context.Context, s *Store, key string, ev store.Event,
	read func(redis.Cmdable) (T, error), encode func(T) (string, error),
	fn func(*T) error, sameKey func(T) error, what string) (T, error) {
	var out T
	err := s.watch(ctx, func(tx *redis.Tx) error {
		v, err := read(tx)
		if err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
		if err := sameKey(v); err != nil {
			return err
		}
		data, err := encode(v)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, data, 0)
			s.publishIn(ctx, p, ev)
			return nil
		})
		out = v
		return opErr(err, "%s", what)
	}, key)
	if err != nil {
		var zero T
		return zero, err
	}
	s.subs.deliver(ev)
	return out, nil
}

// deleteClient removes the ID from the client set, then, in a WATCH
// transaction that publishes the event, the record. If that fails the ID
// is put back in the set.
func (s *Store) deleteClient(ctx context.Context, id string) (store.Client, error) {
	var (
		removed store.Client
		undo    func(context.Context) error // of the first step, while the record is known to exist
	)
	ev := store.ClientEvent(id)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		c, err := s.readClient(ctx, tx, id)
		if errors.Is(err, store.ErrNotFound) {
			undo = nil // gone meanwhile: the ID must stay out of the set
		}
		if err != nil {
			return err
		}
		undo = func(uctx context.Context) error { return s.client.SAdd(uctx, s.keys.clients(), id).Err() }
		if err := s.client.SRem(ctx, s.keys.clients(), id).Err(); err != nil {
			return opErr(err, "delete client %q: client set", id)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.keys.client(id))
			s.publishIn(ctx, p, ev)
			return nil
		})
		removed = c
		return opErr(err, "delete client %q", id)
	}, s.keys.client(id))
	if err != nil {
		return store.Client{}, undone(ctx, err, undo)
	}
	s.subs.deliver(ev)
	return removed, nil
}
