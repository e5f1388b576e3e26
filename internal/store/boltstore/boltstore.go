// Package boltstore is the embedded store.Store backend: one bbolt file
// used by a single process.
//
// Layout (top-level buckets):
//
//	users        name -> JSON store.User
//	tokens       owner -> nested bucket: id -> JSON store.Token
//	token_index  32-byte hash -> owner + "\x00" + id
//	failures     key -> 8-byte count + 8-byte window end (Unix ns), big endian
//	clients      client id -> JSON store.Client
//	documents    name -> a document (the keyring, the ACL), as the caller wrote it
//	denied       jti -> end of the denial (time.Time.MarshalBinary)
//	sessions       32-byte session id -> JSON store.Session
//	user_sessions  user -> nested bucket: session id -> nothing
//
// Every write is one bbolt read-write transaction, so a write that fails
// leaves the file exactly as it was, and checks such as label uniqueness
// and the token limit see the same data as the insert they guard.
package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tokengate/tokengate/internal/store"
)

var _ store.Store = (*Store)(nil)

var (
	bucketUsers     = []byte("users")
	bucketTokens    = []byte("tokens")
	bucketIndex     = []byte("token_index")
	bucketFailures  = []byte("failures")
	bucketClients   = []byte("clients")
	bucketDocuments = []byte("documents")
	bucketDenied    = []byte("denied")
	bucketSessions  = []byte("sessions")
	// bucketUserSessions lists each user's sessions (see sessions.go).
	bucketUserSessions = []byte("user_sessions")
)

const (
	// defaultTimeout is how long Open waits for another process's lock.
	defaultTimeout = 5 * time.Second
	// sweepEvery is how many CountFailure calls pass between sweeps of
	// expired counters. Counters are keyed by client address or user name,
	// so without a sweep an attack from many addresses would grow the file
	// for ever; sweeping on every call would make each call scan them all.
	sweepEvery = 1024
)

// Options configure Open.
type Options struct {
	// Timeout is how long Open waits for the file lock when another
	// process has the file open. Zero or negative means 5 seconds.
	Timeout time.Duration
	// NoSync skips fsync after each write: only for bulk loading (the load
	// harness fills a store with many tokens before the gateway starts);
	// a crash may lose recent writes.
	NoSync bool
	// Now is the clock that failure windows and denials are measured by
	// (nil: time.Now); tests inject one they can move.
	Now func() time.Time
}

// Store is a store.Store kept in one bbolt file. It is safe for concurrent
// use; bbolt serialises writers and lets readers run alongside them.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	ops      atomic.Uint64 // Store method calls that ran a transaction
	failures atomic.Uint64 // CountFailure calls, to pace sweeps

	mu   sync.RWMutex
	subs map[*subscriber]struct{}
}

// subscriber is one Subscribe call; it is live until ctx is done.
type subscriber struct {
	ctx context.Context
	fn  func(store.Event)
}

// Open opens (creating if needed) the store file at path. The parent
// directory is created with mode 0700 and the file with 0600, since it
// holds password and token hashes. bbolt locks the file, so a second
// process opening the same path waits up to opts.Timeout and then fails.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("embedded store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: opts.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store %s is locked by another process (waited %s)", path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := db.Update(func(tx *bolt.Tx) error { return initialize(tx, now()) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize embedded store %s: %w", path, err)
	}
	return &Store{db: db, now: now, subs: make(map[*subscriber]struct{})}, nil
}

// initialize creates the top-level buckets (so a file written by an older
// version gains the new ones) and drops failure counters, denials and
// sessions that ended while the process was down (before now).
func initialize(tx *bolt.Tx, now time.Time) error {
	buckets := [][]byte{bucketUsers, bucketTokens, bucketIndex, bucketFailures, bucketClients, bucketDocuments, bucketDenied,
		bucketSessions, bucketUserSessions}
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if err := sweepFailures(tx.Bucket(bucketFailures), now); err != nil {
		return err
	}
	if err := sweepDenied(tx.Bucket(bucketDenied), now); err != nil {
		return err
	}
	return sweepSessions(tx, now)
}

// Ops returns how many Store method calls have run a transaction on the
// file since Open, for reporting store calls per request.
func (s *Store) Ops() uint64 { return s.ops.Load() }

// RoundTrips equals Ops: every operation is one transaction on the file.
func (s *Store) RoundTrips() uint64 { return s.ops.Load() }

// Close closes the file. Later calls fail with bbolt's "database not open".
func (s *Store) Close() error { return s.db.Close() }

// view runs fn in one read-only transaction.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.ops.Add(1)
	return s.db.View(fn)
}

// update runs fn in one read-write transaction. The events fn emits are
// delivered only once the transaction has committed, so a failed write
// never announces anything, and before update returns, so a caller that
// drops a cache entry on an event cannot see the old value afterwards.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx, emit func(store.Event)) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.ops.Add(1)
	var events []store.Event
	emit := func(e store.Event) { events = append(events, e) }
	if err := s.db.Update(func(tx *bolt.Tx) error { return fn(tx, emit) }); err != nil {
		return err
	}
	s.publish(events)
	return nil
}

// getJSON decodes the value under key into v, or returns ErrNotFound
// (wrapped with what) when b is nil or has no such key.
func getJSON(b *bolt.Bucket, key []byte, v any, what string) error {
	var data []byte
	if b != nil {
		data = b.Get(key)
	}
	if data == nil {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return decodeJSON(data, v, what)
}

func decodeJSON(data []byte, v any, what string) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: decode: %w", what, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// indexValue is what the hash index holds for a token: enough to find its
// record. User names and token IDs never contain NUL.
func indexValue(owner, id string) []byte { return []byte(owner + "\x00" + id) }

func parseIndexValue(v []byte) (owner, id string, ok bool) {
	return strings.Cut(string(v), "\x00")
}
