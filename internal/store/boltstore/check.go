package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
)

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
		err := indexed(c.tx, k)
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
		if err := indexed(c.tx, t.Hash[:]); err == nil {
			owner, id, _ := parseIndexValue(other)
			c.report.Problems = append(c.report.Problems, fmt.Sprintf(
				"%s has hash %s, already indexed for %s", tokenDesc(t.Owner, t.ID), t.Hash, tokenDesc(owner, id)))
			return nil
		}
	}
	fix := func() error { return indexToken(c.tx, t) }
	return c.problem(fix, "%s has no index entry for hash %s", tokenDesc(t.Owner, t.ID), t.Hash)
}
