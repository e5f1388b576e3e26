package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// GetDocument returns the named document, or store.ErrNotFound before its
// first UpdateDocument.
func (s *Store) GetDocument(ctx context.Context, name string) ([]byte, error) {
	return s.readDocument(ctx, s.client, name)
}

// readDocument reads a document through c (the client or a transaction).
func (s *Store) readDocument(ctx context.Context, c redis.Cmdable, name string) ([]byte, error) {
	data, err := c.Get(ctx, s.keys.document(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, opErr(err, "get document "+name)
	}
	return data, nil
}

// updateDocument replaces the named document with fn(current) in a WATCH
// transaction that also publishes the event; fn runs again if another
// writer changes the document meanwhile, and after maxTxAttempts lost
// races UpdateDocument gives up with store.ErrConflict.
func (s *Store) updateDocument(ctx context.Context, name string, fn func(current []byte) ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, errors.New("document name must not be empty")
	}
	var out []byte
	ev := documentEvent(name)
	key := s.keys.document(name)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		cur, err := s.readDocument(ctx, tx, name)
		if errors.Is(err, store.ErrNotFound) {
			cur, err = nil, nil
		}
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if next == nil {
			next = []byte{}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, next, 0)
			s.publishIn(ctx, p, ev)
			return nil
		})
		out = next
		return opErr(err, "update document "+name)
	}, key)
	if errors.Is(err, errContention) {
		return nil, store.ErrConflict
	}
	if err != nil {
		return nil, err
	}
	s.subs.deliver(ev)
	return out, nil
}
