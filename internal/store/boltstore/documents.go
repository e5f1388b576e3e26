package boltstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

// getDocument returns a copy of the named document (bbolt's slice is only
// valid during the transaction, and points into a read-only map), or nil
// when there is none. An empty document comes back empty but not nil.
func getDocument(tx *bolt.Tx, name string) []byte {
	v := tx.Bucket(bucketDocuments).Get([]byte(name))
	if v == nil {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}

// GetDocument returns a copy of the named document, or ErrNotFound before
// its first UpdateDocument.
func (s *Store) GetDocument(ctx context.Context, name string) ([]byte, error) {
	var doc []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if doc = getDocument(tx, name); doc == nil {
			return fmt.Errorf("document %q: %w", name, store.ErrNotFound)
		}
		return nil
	})
	return doc, err
}

// UpdateDocument replaces the named document with fn(current) in one
// transaction and announces EventDocument. fn runs once, on a copy it may
// modify. If fn fails its error is returned unwrapped and nothing is
// written. It never returns ErrConflict: bbolt serialises writers.
func (s *Store) UpdateDocument(ctx context.Context, name string, fn func(current []byte) ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, errors.New("document name must not be empty")
	}
	var doc []byte
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if doc, err = fn(getDocument(tx, name)); err != nil {
			return err
		}
		if doc == nil {
			doc = []byte{} // stored, so no longer "none"
		}
		emit(store.Event{Kind: store.EventDocument, ID: name})
		return tx.Bucket(bucketDocuments).Put([]byte(name), doc)
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}
