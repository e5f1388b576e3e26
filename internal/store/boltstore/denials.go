package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

func decodeUntil(v []byte) (time.Time, bool) {
	var until time.Time
	if v == nil || until.UnmarshalBinary(v) != nil {
		return time.Time{}, false
	}
	return until, true
}

// Deny puts d.JTI on the deny-list until d.Until, keeping a later end the
// jti already has, and announces EventDenied with the end that is now in
// force. It first deletes every denial that has ended, so the bucket only
// holds tokens that could still be presented. A d.Until that has already
// passed stores nothing (but is still announced).
func (s *Store) Deny(ctx context.Context, d store.Denial) error {
	if d.JTI == "" {
		return errors.New("deny: empty jti")
	}
	return s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		b := tx.Bucket(bucketDenied)
		now := s.now()
		if err := sweepDenied(b, now); err != nil {
			return err
		}
		until := d.Until
		if old, ok := decodeUntil(b.Get([]byte(d.JTI))); ok && old.After(until) {
			until = old
		}
		emit(store.Event{Kind: store.EventDenied, ID: d.JTI, Until: until})
		if !until.After(now) {
			return nil
		}
		v, err := until.MarshalBinary()
		if err != nil {
			return fmt.Errorf("deny %q: %w", d.JTI, err)
		}
		return b.Put([]byte(d.JTI), v)
	})
}

// ListDenied returns the denials that have not ended, sorted by jti.
func (s *Store) ListDenied(ctx context.Context) ([]store.Denial, error) {
	var denials []store.Denial
	err := s.view(ctx, func(tx *bolt.Tx) error {
		now := s.now()
		return tx.Bucket(bucketDenied).ForEach(func(k, v []byte) error {
			if until, ok := decodeUntil(v); ok && until.After(now) {
				denials = append(denials, store.Denial{JTI: string(k), Until: until})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return denials, nil
}

// sweepDenied deletes denials that have ended (and undecodable entries).
func sweepDenied(b *bolt.Bucket, now time.Time) error {
	var ended [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if until, ok := decodeUntil(v); !ok || !until.After(now) {
			ended = append(ended, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
