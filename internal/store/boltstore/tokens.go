package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

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

// indexToken writes the index entries of every hash of t (current and
// previous: an imported token brings its previous secrets).
func indexToken(tx *bolt.Tx, t store.Token) error {
	for _, h := range t.Hashes() {
		if err := tx.Bucket(bucketIndex).Put(h[:], indexValue(t.Owner, t.ID)); err != nil {
			return err
		}
	}
	return nil
}

// unindex removes t's index entries (current and previous hashes) that
// point to t.
func unindex(tx *bolt.Tx, t store.Token) error {
	return unindexHashes(tx, t, t.Hashes())
}

// unindexHashes removes the index entries of hs that point to t.
func unindexHashes(tx *bolt.Tx, t store.Token, hs []store.TokenHash) error {
	index := tx.Bucket(bucketIndex)
	for _, h := range hs {
		if !bytes.Equal(index.Get(h[:]), indexValue(t.Owner, t.ID)) {
			continue
		}
		if err := index.Delete(h[:]); err != nil {
			return err
		}
	}
	return nil
}

// emitHashes announces a change of every hash in hs.
func emitHashes(emit func(store.Event), hs []store.TokenHash) {
	for _, h := range hs {
		emit(store.TokenEvent(h))
	}
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
		for _, h := range t.Hashes() {
			if tx.Bucket(bucketIndex).Get(h[:]) != nil {
				return fmt.Errorf("%s: another token has the same hash", tokenDesc(t.Owner, t.ID))
			}
		}
		emitHashes(emit, t.Hashes())
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
		if t.ID != before.ID || t.Owner != before.Owner || t.Kind != before.Kind || t.Hash != before.Hash ||
			!slices.Equal(t.Previous, before.Previous) {
			return fmt.Errorf("%s: update may not change ID, Owner, Kind, Hash or Previous", tokenDesc(owner, id))
		}
		owned := ownedBucket(tx, owner)
		if t.LabelKey != before.LabelKey {
			if err := checkLabel(owned, t.LabelKey, id); err != nil {
				return err
			}
		}
		emitHashes(emit, t.Hashes())
		return putJSON(owned, []byte(id), t)
	})
	if err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// RotateToken gives the token the hash next in one transaction: the new
// index entry, the record (see store.Token.Rotated) and the removal of
// the entries of the hashes it drops. Previous secrets keep their index
// entries; LookupToken refuses them after their end.
func (s *Store) RotateToken(ctx context.Context, owner, id string, next store.TokenHash, now, until, expiresBy time.Time) (store.Token, error) {
	var t store.Token
	err := s.update(ctx, func(tx *bolt.Tx, emit func(store.Event)) error {
		cur, err := getToken(tx, owner, id)
		if err != nil {
			return err
		}
		if tx.Bucket(bucketIndex).Get(next[:]) != nil {
			if err := indexed(tx, next[:]); err == nil || !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s: another token has the new hash", tokenDesc(owner, id))
			}
		}
		var dropped []store.TokenHash
		t, dropped = cur.Rotated(next, now, until, expiresBy)
		if err := unindexHashes(tx, cur, dropped); err != nil {
			return err
		}
		emitHashes(emit, cur.Hashes())
		emit(store.TokenEvent(next))
		return putToken(tx, ownedBucket(tx, owner), t)
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
		emitHashes(emit, t.Hashes())
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
		g, err = lookup(tx, h[:], s.now())
		return err
	})
	return g, err
}

var errNoSuchHash = fmt.Errorf("no token with that hash: %w", store.ErrNotFound)

// indexed checks that the index entry of h leads to a token of a live
// owner that has h as its current or a previous hash, ended or not (what
// Check accepts: an ended previous secret's entry goes with the next
// rotation or the token).
func indexed(tx *bolt.Tx, h []byte) error {
	owner, id, ok := parseIndexValue(tx.Bucket(bucketIndex).Get(h))
	if !ok {
		return errNoSuchHash
	}
	t, err := getToken(tx, owner, id)
	if err != nil {
		return err
	}
	if !t.HasHash(store.TokenHash(h)) {
		return errNoSuchHash
	}
	_, err = getUser(tx, owner)
	return err
}

// lookup finds the token with hash h (a previous secret only before its
// end at now) and its owner.
func lookup(tx *bolt.Tx, h []byte, now time.Time) (store.Grant, error) {
	owner, id, ok := parseIndexValue(tx.Bucket(bucketIndex).Get(h))
	if !ok {
		return store.Grant{}, errNoSuchHash
	}
	t, err := getToken(tx, owner, id)
	if err != nil {
		return store.Grant{}, err
	}
	until, ok := t.SecretOf(store.TokenHash(h), now)
	if !ok {
		return store.Grant{}, errNoSuchHash
	}
	u, err := getUser(tx, owner)
	if err != nil {
		return store.Grant{}, err
	}
	return store.Grant{Token: t, Owner: u, PreviousUntil: until}, nil
}

// RecordLastUse writes a batch of last uses (time, IP and Host; several
// addresses of one token are merged into its recent addresses) in one
// transaction. It
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
	newer := u.At.After(t.LastUsedAt)
	recent := store.MergeAddress(t.RecentAddresses, u.IP, u.At, u.Host)
	if !newer && slices.Equal(recent, t.RecentAddresses) {
		return nil
	}
	if newer {
		t.LastUsedAt, t.LastUsedIP, t.LastUsedHost = u.At, u.IP, u.Host
	}
	t.RecentAddresses = recent
	return putJSON(ownedBucket(tx, u.Owner), []byte(u.TokenID), t)
}
