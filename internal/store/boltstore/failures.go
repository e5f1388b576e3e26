package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

// counter is a failure count and the end of its window.
type counter struct {
	count int64
	end   time.Time
}

func decodeCounter(v []byte) (counter, bool) {
	if len(v) != 16 {
		return counter{}, false
	}
	return counter{
		count: int64(binary.BigEndian.Uint64(v)),
		end:   time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))),
	}, true
}

func (c counter) encode() []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(c.count))
	return binary.BigEndian.AppendUint64(v, uint64(c.end.UnixNano()))
}

// CountFailure adds one to the counter named key and returns the count in
// the current window, which starts at the first failure and lasts window.
func (s *Store) CountFailure(ctx context.Context, key string, window time.Duration) (int64, error) {
	var n int64
	sweep := s.failures.Add(1)%sweepEvery == 0
	err := s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		b := tx.Bucket(bucketFailures)
		now := s.now()
		if sweep {
			if err := sweepFailures(b, now); err != nil {
				return err
			}
		}
		c, ok := decodeCounter(b.Get([]byte(key)))
		if !ok || !now.Before(c.end) {
			c = counter{end: now.Add(window)}
		}
		c.count++
		n = c.count
		return b.Put([]byte(key), c.encode())
	})
	return n, err
}

// FailureCount returns the count in the current window without changing it.
func (s *Store) FailureCount(ctx context.Context, key string) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if c, ok := decodeCounter(tx.Bucket(bucketFailures).Get([]byte(key))); ok && s.now().Before(c.end) {
			n = c.count
		}
		return nil
	})
	return n, err
}

// ClearFailures resets the counter named key.
func (s *Store) ClearFailures(ctx context.Context, key string) error {
	return s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		return tx.Bucket(bucketFailures).Delete([]byte(key))
	})
}

// sweepFailures deletes counters whose window has ended. Keys are
// collected first because deleting under a bbolt cursor can skip entries.
func sweepFailures(b *bolt.Bucket, now time.Time) error {
	var expired [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if c, ok := decodeCounter(v); !ok || !now.Before(c.end) {
			expired = append(expired, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
