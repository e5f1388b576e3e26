package boltstore

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// Ping implements store.Pinger: an empty read transaction (it fails once
// the file is closed).
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(*bolt.Tx) error { return nil })
}
