package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// GetKeyring returns the signing keyring, or store.ErrNotFound before the
// first UpdateKeyring.
func (s *Store) GetKeyring(ctx context.Context) ([]byte, error) {
	return s.readKeyring(ctx, s.client)
}

// readKeyring reads the keyring through c (the client or a transaction).
func (s *Store) readKeyring(ctx context.Context, c redis.Cmdable) ([]byte, error) {
	data, err := c.Get(ctx, s.keys.keyring()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, opErr(err, "get keyring")
	}
	return data, nil
}

// UpdateKeyring replaces the keyring with fn(current) in a WATCH
// transaction that also publishes the event; fn runs again if another
// writer changes the keyring meanwhile, and after maxTxAttempts lost races
// UpdateKeyring gives up with store.ErrConflict.
func (s *Store) UpdateKeyring(ctx context.Context, fn func(current []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	ev := keyringEvent()
	err := s.watch(ctx, func(tx *redis.Tx) error {
		cur, err := s.readKeyring(ctx, tx)
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
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, s.keys.keyring(), next, 0)
			s.publishIn(ctx, p, ev)
			return nil
		})
		out = next
		return opErr(err, "update keyring")
	}, s.keys.keyring())
	if errors.Is(err, errContention) {
		return nil, store.ErrConflict
	}
	if err != nil {
		return nil, err
	}
	s.subs.deliver(ev)
	return out, nil
}
