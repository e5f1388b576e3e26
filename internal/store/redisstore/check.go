package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// Check looks for what an interrupted two-slot write leaves behind (see
// the package comment) and, if repair is true, repairs it by finishing
// the delete that could have been interrupted. Writes put the record first
// and the index (or list entry) last, deletes go the other way; so a record
// without its index is a create that failed (its secret was never handed
// out) or a delete cut short, and in both cases it goes. Restoring it
// instead would bring a revoked token or a deleted user back to life.
//
//   - an index key that leads to no token with its hash is deleted;
//   - a token without index is deleted (and an event is published);
//   - a user-set entry without user record is removed;
//   - a user record missing from the user set is deleted, with its tokens;
//   - the same two for the client set and the client records.
//
// It may run while the store is in use: every repair is a compare-and-set,
// and LookupToken verifies what an index leads to, so a repair racing with
// a write cannot make a lookup grant a token that does not exist; at worst
// it leaves something for the next Check. Problems are sorted.
func (s *Store) Check(ctx context.Context, repair bool) (store.CheckReport, error) {
	c := checker{s: s, repair: repair}
	// Indexes first: repairing a token's missing index may need a dangling
	// index on its hash gone.
	if err := c.indexes(ctx); err != nil {
		return store.CheckReport{}, err
	}
	if err := c.users(ctx); err != nil {
		return store.CheckReport{}, err
	}
	if err := c.clients(ctx); err != nil {
		return store.CheckReport{}, err
	}
	slices.Sort(c.report.Problems)
	return c.report, nil
}

// checker accumulates a Check's report.
type checker struct {
	s      *Store
	repair bool
	report store.CheckReport
}

// found records a problem and, when repairing, fixes it (fix may be nil
// for a problem that cannot be fixed automatically).
func (c *checker) found(fix func() error, format string, args ...any) error {
	c.report.Problems = append(c.report.Problems, fmt.Sprintf(format, args...))
	if !c.repair || fix == nil {
		return nil
	}
	if err := fix(); err != nil {
		return opErr(err, "check: repair")
	}
	c.report.Repaired++
	return nil
}

// indexes checks every index key.
func (c *checker) indexes(ctx context.Context) error {
	keys, err := c.s.scanKeys(ctx, c.s.keys.indexPattern())
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := c.index(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// index checks that an index key leads to a token with its hash.
func (c *checker) index(ctx context.Context, key string) error {
	h, ok := c.s.keys.hashOf(key)
	if !ok {
		return c.found(nil, "key %q looks like a hash index but is not one", key)
	}
	value, err := optional(c.s.client.Get(ctx, key))
	if err != nil || value == "" { // gone since the scan
		return opErr(err, "check index")
	}
	_, err = c.s.resolve(ctx, h, value)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return c.found(func() error {
		_, err := c.s.casIndexes(ctx, []indexChange{{hash: h, expected: value}})
		return err
	}, "hash index %s leads to %s, which is no token with that hash", h, showRef(value))
}

// users checks the user set against the user records, and each user's
// tokens.
func (c *checker) users(ctx context.Context) error {
	names, err := c.listed(ctx, listKind{
		what: "user", key: c.s.keys.users(), pattern: c.s.keys.userPattern(), nameOf: c.s.keys.nameOf,
		drop: c.s.DeleteUser,
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.user(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// clients checks the client set against the client records.
func (c *checker) clients(ctx context.Context) error {
	_, err := c.listed(ctx, listKind{
		what: "client", key: c.s.keys.clients(), pattern: c.s.keys.clientPattern(), nameOf: c.s.keys.clientOf,
		drop: func(ctx context.Context, id string) error {
			_, err := c.s.DeleteClient(ctx, id)
			return err
		},
	})
	return err
}

// listKind describes a set that lists the records of one kind.
type listKind struct {
	what    string                          // "user"
	key     string                          // the set
	pattern string                          // matches the record keys
	nameOf  func(key string) (string, bool) // the member of a record key
	drop    func(ctx context.Context, name string) error
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// listed checks a set against the records it lists: an entry without
// record is removed from the set, a record without entry is added to it.
// It returns the names of the records found, sorted.
func (c *checker) listed(ctx context.Context, k listKind) ([]string, error) {
	members, err := c.s.client.SMembers(ctx, k.key).Result()
	if err != nil {
		return nil, opErr(err, "check %ss", k.what)
	}
	recordKeys, err := c.s.scanKeys(ctx, k.pattern)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, key := range recordKeys {
		if name, ok := k.nameOf(key); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range members {
		if _, found := slices.BinarySearch(names, name); found {
			continue
		}
		if err := c.found(func() error {
			return c.s.client.SRem(ctx, k.key, name).Err()
		}, "%s set lists %q, which has no %s record", k.what, name, k.what); err != nil {
			return nil, err
		}
	}
	var listedNames []string
	for _, name := range names {
		if slices.Contains(members, name) {
			listedNames = append(listedNames, name)
			continue
		}
		if err := c.found(func() error {
			return ignoreNotFound(k.drop(ctx, name))
		}, "%s %q is missing from the %s set (deleted on repair)", k.what, name, k.what); err != nil {
			return nil, err
		}
	}
	return listedNames, nil
}

// user checks one user's tokens.
func (c *checker) user(ctx context.Context, name string) error {
	toks, err := c.s.readUserTokens(ctx, c.s.client, name)
	if errors.Is(err, store.ErrNotFound) { // deleted since the scan
		return nil
	}
	if err != nil {
		return err
	}
	for _, t := range toks {
		if err := c.token(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// token checks that a token's hash index leads to it.
func (c *checker) token(ctx context.Context, t store.Token) error {
	want := ref(t.Owner, t.ID)
	value, err := optional(c.s.client.Get(ctx, c.s.keys.index(t.Hash)))
	switch {
	case err != nil:
		return opErr(err, "check token")
	case value == want:
		return nil
	case value == "":
		return c.found(func() error {
			_, err := c.s.DeleteToken(ctx, t.Owner, t.ID)
			return ignoreNotFound(err)
		}, "token %s/%s has no hash index (deleted on repair)", t.Owner, t.ID)
	default:
		// Another token has the same hash: not a crash's doing, and not
		// for a program to decide which one the secret belongs to.
		return c.found(nil, "token %s/%s: its hash index leads to %s", t.Owner, t.ID, showRef(value))
	}
}

// showRef formats an index value for a report.
func showRef(v string) string {
	owner, id, ok := parseRef(v)
	if !ok {
		return fmt.Sprintf("malformed value %q", v)
	}
	return "token " + owner + "/" + id
}

// scanKeys returns the keys that match pattern, from every master of a
// cluster.
func (s *Store) scanKeys(ctx context.Context, pattern string) ([]string, error) {
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return nil, opErr(err, "check: scan %q", pattern)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil // SCAN may return a key twice
}
