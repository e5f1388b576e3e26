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
//
// Every write is one bbolt read-write transaction, so a write that fails
// leaves the file exactly as it was, and checks such as label uniqueness
// and the token limit see the same data as the insert they guard.
package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
}

// Store is a store.Store kept in one bbolt file. It is safe for concurrent
// use; bbolt serialises writers and lets readers run alongside them.
type Store struct {
	db *bolt.DB

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
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize embedded store %s: %w", path, err)
	}
	return &Store{db: db, subs: make(map[*subscriber]struct{})}, nil
}

// initialize creates the top-level buckets (so a file written by an older
// version gains the new ones) and drops failure counters and denials that
// ended while the process was down.
func initialize(tx *bolt.Tx) error {
	buckets := [][]byte{bucketUsers, bucketTokens, bucketIndex, bucketFailures, bucketClients, bucketDocuments, bucketDenied}
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	now := time.Now()
	if err := sweepFailures(tx.Bucket(bucketFailures), now); err != nil {
		return err
	}
	return sweepDenied(tx.Bucket(bucketDenied), now)
}

// Ops returns how many Store method calls have run a transaction on the
// file since Open, for reporting store calls per request.
func (s *Store) Ops() uint64 { return s.ops.Load() }

// RoundTrips equals Ops: every operation is one transaction on the file.
func (s *Store) RoundTrips() uint64 { return s.ops.Load() }

// Close closes the file. Later calls fail with bbolt's "database not open".
func (s *Store) Close() error { return s.db.Close() }

// ---- transactions and events ----

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

// Subscribe calls fn for every event of this process until ctx is done.
// An embedded store has no other processes, so it never sends EventReset.
func (s *Store) Subscribe(ctx context.Context, fn func(store.Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sub := &subscriber{ctx: ctx, fn: fn}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	})
	return nil
}

// publish delivers events to the current subscribers. It calls them on a
// copy of the list so that a slow fn does not hold the lock, and skips a
// subscriber whose ctx is done but whose removal (which runs in its own
// goroutine) has not happened yet: once cancel returns, nothing more is
// delivered.
func (s *Store) publish(events []store.Event) {
	if len(events) == 0 {
		return
	}
	s.mu.RLock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.RUnlock()
	for _, sub := range subs {
		for _, e := range events {
			if sub.ctx.Err() != nil {
				break
			}
			sub.fn(e)
		}
	}
}

func tokenEvent(h store.TokenHash) store.Event {
	return store.Event{Kind: store.EventToken, Hash: h}
}

func userEvent(name string) store.Event {
	return store.Event{Kind: store.EventUser, Owner: name}
}

func clientEvent(id string) store.Event {
	return store.Event{Kind: store.EventClient, ID: id}
}

// ---- encoding helpers ----

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

// ---- users ----

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
		emit(userEvent(name))
		return putJSON(tx.Bucket(bucketUsers), []byte(name), u)
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// DeleteUser removes the user, its tokens and their index entries, and
// announces EventUser, which covers every token the user owned.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		if err := userExists(tx, name); err != nil {
			return err
		}
		if err := deleteOwnerTokens(tx, name); err != nil {
			return err
		}
		emit(userEvent(name))
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

// ---- tokens ----

func tokenDesc(owner, id string) string { return fmt.Sprintf("token %s/%s", owner, id) }

// ownedBucket is owner's token bucket, or nil if owner never had a token.
func ownedBucket(tx *bolt.Tx, owner string) *bolt.Bucket {
	return tx.Bucket(bucketTokens).Bucket([]byte(owner))
}

func getToken(tx *bolt.Tx, owner, id string) (store.Token, error) {
	var t store.Token
	err := getJSON(ownedBucket(tx, owner), []byte(id), &t, tokenDesc(owner, id))
	return t, err
}

// forEachToken decodes every token in an owner's bucket. fn must not
// modify the bucket.
func forEachToken(owned *bolt.Bucket, fn func(store.Token) error) error {
	return owned.ForEach(func(k, v []byte) error {
		var t store.Token
		if err := decodeJSON(v, &t, fmt.Sprintf("token %s", k)); err != nil {
			return err
		}
		return fn(t)
	})
}

// putToken writes t's record and its index entry.
func putToken(tx *bolt.Tx, owned *bolt.Bucket, t store.Token) error {
	if err := putJSON(owned, []byte(t.ID), t); err != nil {
		return err
	}
	return indexToken(tx, t)
}

func indexToken(tx *bolt.Tx, t store.Token) error {
	return tx.Bucket(bucketIndex).Put(t.Hash[:], indexValue(t.Owner, t.ID))
}

// unindex removes t's index entry if it points to t.
func unindex(tx *bolt.Tx, t store.Token) error {
	index := tx.Bucket(bucketIndex)
	if !bytes.Equal(index.Get(t.Hash[:]), indexValue(t.Owner, t.ID)) {
		return nil
	}
	return index.Delete(t.Hash[:])
}

// checkLabel fails with ErrLabelTaken if a token other than id in owned
// has the non-empty label key. It scans the owner's tokens, which the
// token limit keeps few.
func checkLabel(owned *bolt.Bucket, key, id string) error {
	if key == "" {
		return nil
	}
	return forEachToken(owned, func(t store.Token) error {
		if t.ID != id && t.LabelKey == key {
			return fmt.Errorf("label %q: %w", key, store.ErrLabelTaken)
		}
		return nil
	})
}

// checkLimit fails with ErrTokenLimit if owned already holds limit tokens
// of kind or more (limit <= 0: no limit).
func checkLimit(owned *bolt.Bucket, kind string, limit int) error {
	if limit <= 0 {
		return nil
	}
	n := 0
	return forEachToken(owned, func(t store.Token) error {
		if t.Kind != kind {
			return nil
		}
		if n++; n >= limit {
			return fmt.Errorf("limit of %d %s tokens: %w", limit, kind, store.ErrTokenLimit)
		}
		return nil
	})
}

// CreateToken stores t and its index entry and announces EventToken. The
// owner, label and limit checks run in the same transaction as the insert.
// An ID or hash already in use is refused with a non-sentinel error.
func (s *Store) CreateToken(ctx context.Context, t store.Token, limit int) error {
	return s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		if err := userExists(tx, t.Owner); err != nil {
			return err
		}
		owned, err := tx.Bucket(bucketTokens).CreateBucketIfNotExists([]byte(t.Owner))
		if err != nil {
			return err
		}
		if err := checkLabel(owned, t.LabelKey, t.ID); err != nil {
			return err
		}
		if err := checkLimit(owned, t.Kind, limit); err != nil {
			return err
		}
		if owned.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("%s already exists", tokenDesc(t.Owner, t.ID))
		}
		if tx.Bucket(bucketIndex).Get(t.Hash[:]) != nil {
			return fmt.Errorf("%s: another token has the same hash", tokenDesc(t.Owner, t.ID))
		}
		emit(tokenEvent(t.Hash))
		return putToken(tx, owned, t)
	})
}

// GetToken returns one token of owner, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, owner, id string) (store.Token, error) {
	var t store.Token
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		t, err = getToken(tx, owner, id)
		return err
	})
	return t, err
}

// ListTokens returns owner's tokens sorted by CreatedAt then ID.
func (s *Store) ListTokens(ctx context.Context, owner string) ([]store.Token, error) {
	var tokens []store.Token
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if err := userExists(tx, owner); err != nil {
			return err
		}
		owned := ownedBucket(tx, owner)
		if owned == nil {
			return nil
		}
		return forEachToken(owned, func(t store.Token) error {
			tokens = append(tokens, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(tokens, func(a, b store.Token) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return tokens, nil
}

// UpdateToken applies fn to the token in one transaction and announces
// EventToken. If fn fails its error is returned unwrapped.
func (s *Store) UpdateToken(ctx context.Context, owner, id string, fn func(*store.Token) error) (store.Token, error) {
	var t store.Token
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if t, err = getToken(tx, owner, id); err != nil {
			return err
		}
		before := t
		if err := fn(&t); err != nil {
			return err
		}
		if t.ID != before.ID || t.Owner != before.Owner || t.Kind != before.Kind || t.Hash != before.Hash {
			return fmt.Errorf("%s: update may not change ID, Owner, Kind or Hash", tokenDesc(owner, id))
		}
		owned := ownedBucket(tx, owner)
		if t.LabelKey != before.LabelKey {
			if err := checkLabel(owned, t.LabelKey, id); err != nil {
				return err
			}
		}
		emit(tokenEvent(t.Hash))
		return putJSON(owned, []byte(id), t)
	})
	if err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// DeleteToken removes the token and its index entry, announces EventToken
// and returns what was removed.
func (s *Store) DeleteToken(ctx context.Context, owner, id string) (store.Token, error) {
	var t store.Token
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) (err error) {
		if t, err = getToken(tx, owner, id); err != nil {
			return err
		}
		if err := ownedBucket(tx, owner).Delete([]byte(id)); err != nil {
			return err
		}
		emit(tokenEvent(t.Hash))
		return unindex(tx, t)
	})
	if err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// LookupToken reads the index entry, the token and its owner in one read
// transaction. An index entry whose token or owner is gone, or whose token
// has another hash, counts as not found (Check reports it).
func (s *Store) LookupToken(ctx context.Context, h store.TokenHash) (store.Grant, error) {
	var g store.Grant
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		g, err = lookup(tx, h[:])
		return err
	})
	return g, err
}

var errNoSuchHash = fmt.Errorf("no token with that hash: %w", store.ErrNotFound)

func lookup(tx *bolt.Tx, h []byte) (store.Grant, error) {
	owner, id, ok := parseIndexValue(tx.Bucket(bucketIndex).Get(h))
	if !ok {
		return store.Grant{}, errNoSuchHash
	}
	t, err := getToken(tx, owner, id)
	if err != nil {
		return store.Grant{}, err
	}
	if !bytes.Equal(t.Hash[:], h) {
		return store.Grant{}, errNoSuchHash
	}
	u, err := getUser(tx, owner)
	if err != nil {
		return store.Grant{}, err
	}
	return store.Grant{Token: t, Owner: u}, nil
}

// RecordLastUse writes a batch of last uses (time, IP and Host of the
// newest use of each token) in one transaction. It
// announces nothing: caches may show a slightly old LastUsedAt, and an
// event per use would empty them on every request.
func (s *Store) RecordLastUse(ctx context.Context, uses []store.LastUse) error {
	if len(uses) == 0 {
		return nil
	}
	return s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		for _, u := range uses {
			if err := recordLastUse(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

func recordLastUse(tx *bolt.Tx, u store.LastUse) error {
	t, err := getToken(tx, u.Owner, u.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted since it was used
	}
	if err != nil {
		return err
	}
	if !u.At.After(t.LastUsedAt) {
		return nil
	}
	t.LastUsedAt, t.LastUsedIP, t.LastUsedHost = u.At, u.IP, u.Host
	return putJSON(ownedBucket(tx, u.Owner), []byte(u.TokenID), t)
}

// ---- OAuth clients ----

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
		emit(clientEvent(c.ID))
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
		emit(clientEvent(id))
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
		emit(clientEvent(id))
		return tx.Bucket(bucketClients).Delete([]byte(id))
	})
	if err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// ---- documents (the signing keyring, the ACL) ----

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

// ---- deny-list ----

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
		now := time.Now()
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
		now := time.Now()
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

// ---- failure counters ----

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
		now := time.Now()
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
		if c, ok := decodeCounter(tx.Bucket(bucketFailures).Get([]byte(key))); ok && time.Now().Before(c.end) {
			n = c.count
		}
		return nil
	})
	return n, err
}

// UncountFailure takes one back from the counter named key within its
// window, never below zero; an unknown or ended counter is left alone.
func (s *Store) UncountFailure(ctx context.Context, key string) error {
	return s.update(ctx, func(tx *bolt.Tx, _ func(store.Event)) error {
		b := tx.Bucket(bucketFailures)
		c, ok := decodeCounter(b.Get([]byte(key)))
		if !ok || !time.Now().Before(c.end) || c.count <= 0 {
			return nil
		}
		c.count--
		return b.Put([]byte(key), c.encode())
	})
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

// ---- consistency check ----

// Check verifies that every index entry points to an existing token of an
// existing user with that hash, that every token has its index entry, and
// that no token bucket belongs to a missing user. bbolt transactions make
// such damage unlikely (it would take a bug or a hand edit), so Check is a
// safety net. With repair it deletes dangling entries and orphan tokens,
// adds missing entries, and announces EventReset so caches forget any
// answer given from the damaged data.
func (s *Store) Check(ctx context.Context, repair bool) (store.CheckReport, error) {
	var rep store.CheckReport
	run := func(tx *bolt.Tx) error {
		rep = store.CheckReport{}
		c := checker{tx: tx, repair: repair, report: &rep}
		return c.run()
	}
	if !repair {
		err := s.view(ctx, run)
		return rep, err
	}
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		if err := run(tx); err != nil {
			return err
		}
		if rep.Repaired > 0 {
			emit(store.Event{Kind: store.EventReset})
		}
		return nil
	})
	return rep, err
}

// checker runs one consistency check inside a transaction.
type checker struct {
	tx     *bolt.Tx
	repair bool
	report *store.CheckReport
}

// problem records one problem and, when repairing, applies fix.
func (c *checker) problem(fix func() error, format string, args ...any) error {
	c.report.Problems = append(c.report.Problems, fmt.Sprintf(format, args...))
	if !c.repair {
		return nil
	}
	if err := fix(); err != nil {
		return err
	}
	c.report.Repaired++
	return nil
}

// run checks orphan token buckets first and the index second, so that a
// repair has removed what the index may no longer point to before the
// last pass re-indexes the tokens that remain.
func (c *checker) run() error {
	for _, step := range []func() error{c.orphans, c.danglingIndex, c.unindexedTokens} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// owners lists the owners that have a token bucket, split by whether the
// user exists.
func (c *checker) owners() (live, orphan []string, err error) {
	err = c.tx.Bucket(bucketTokens).ForEachBucket(func(k []byte) error {
		if userExists(c.tx, string(k)) == nil {
			live = append(live, string(k))
		} else {
			orphan = append(orphan, string(k))
		}
		return nil
	})
	return live, orphan, err
}

func (c *checker) orphans() error {
	_, orphan, err := c.owners()
	if err != nil {
		return err
	}
	for _, owner := range orphan {
		n := ownedBucket(c.tx, owner).Stats().KeyN
		// The index entries go in the next step, reported one by one.
		fix := func() error { return c.tx.Bucket(bucketTokens).DeleteBucket([]byte(owner)) }
		if err := c.problem(fix, "%d token(s) of missing user %q", n, owner); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) danglingIndex() error {
	index := c.tx.Bucket(bucketIndex)
	var bad [][]byte
	var why []string
	err := index.ForEach(func(k, v []byte) error {
		_, err := lookup(c.tx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			bad = append(bad, bytes.Clone(k))
			owner, id, _ := parseIndexValue(v)
			why = append(why, fmt.Sprintf("index entry %x points to %s, which is missing or has another hash", k, tokenDesc(owner, id)))
		case err != nil:
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range bad {
		if err := c.problem(func() error { return index.Delete(k) }, "%s", why[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) unindexedTokens() error {
	live, _, err := c.owners()
	if err != nil {
		return err
	}
	index := c.tx.Bucket(bucketIndex)
	for _, owner := range live {
		owned := ownedBucket(c.tx, owner)
		var missing []store.Token
		err := forEachToken(owned, func(t store.Token) error {
			if !bytes.Equal(index.Get(t.Hash[:]), indexValue(t.Owner, t.ID)) {
				missing = append(missing, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, t := range missing {
			if err := c.reindex(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// reindex reports a token without its index entry and, when repairing,
// adds the entry, unless the hash is indexed for another valid token:
// two tokens with one hash cannot both be found, so that needs a person.
func (c *checker) reindex(t store.Token) error {
	other := c.tx.Bucket(bucketIndex).Get(t.Hash[:])
	if other != nil {
		if _, err := lookup(c.tx, t.Hash[:]); err == nil {
			owner, id, _ := parseIndexValue(other)
			c.report.Problems = append(c.report.Problems, fmt.Sprintf(
				"%s has hash %s, already indexed for %s", tokenDesc(t.Owner, t.ID), t.Hash, tokenDesc(owner, id)))
			return nil
		}
	}
	fix := func() error { return indexToken(c.tx, t) }
	return c.problem(fix, "%s has no index entry for hash %s", tokenDesc(t.Owner, t.ID), t.Hash)
}
