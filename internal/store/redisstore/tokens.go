package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// createToken stores t: the record first, in a WATCH transaction that
// checks the owner, the label and the limit against the owner's tokens as
// they are at the write, then the hash index, which makes the token usable.
// If the index cannot be written the record is removed again.
func (s *Store) createToken(ctx context.Context, t store.Token, limit int) error {
	data, err := encodeToken(t)
	if err != nil {
		return err
	}
	err = s.watch(ctx, func(tx *redis.Tx) error {
		toks, err := s.readUserTokens(ctx, tx, t.Owner)
		if err != nil {
			return err
		}
		if err := checkNewToken(toks, t, limit); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.tokens(t.Owner), t.ID, data)
			s.writeLastUse(ctx, p, t)
			s.writeAddresses(ctx, p, t)
			return nil
		})
		return opErr(err, "create token %s/%s", t.Owner, t.ID)
	}, s.keys.user(t.Owner), s.keys.tokens(t.Owner))
	if err != nil {
		return err
	}
	for i, h := range t.Hashes() {
		if err := s.linkToken(ctx, store.Token{Owner: t.Owner, ID: t.ID, Hash: h}); err != nil {
			linked := t.Hashes()[:i]
			return undone(ctx, opErr(err, "create token %s/%s: index", t.Owner, t.ID), func(uctx context.Context) error {
				var unlink []indexChange
				for _, h := range linked {
					unlink = append(unlink, indexChange{hash: h, expected: ref(t.Owner, t.ID)})
				}
				if len(unlink) > 0 {
					if _, err := s.casIndexes(uctx, unlink); err != nil {
						return err
					}
				}
				_, err := s.client.TxPipelined(uctx, func(p redis.Pipeliner) error {
					s.dropToken(uctx, p, t)
					return nil
				})
				return err
			})
		}
	}
	s.deliverHashes(t.Hashes())
	return nil
}

// checkNewToken checks a new token against the owner's tokens.
func checkNewToken(toks []store.Token, t store.Token, limit int) error {
	if slices.ContainsFunc(toks, func(o store.Token) bool { return o.ID == t.ID }) {
		return fmt.Errorf("redisstore: create token %s/%s: the owner has a token with that ID", t.Owner, t.ID)
	}
	if labelTaken(toks, t.LabelKey, t.ID) {
		return store.ErrLabelTaken
	}
	if limit > 0 {
		n := 0
		for _, o := range toks {
			if o.Kind == t.Kind {
				n++
			}
		}
		if n >= limit {
			return fmt.Errorf("limit of %d %s tokens: %w", limit, t.Kind, store.ErrTokenLimit)
		}
	}
	return nil
}

// labelTaken reports whether a token other than id has the non-empty
// label key.
func labelTaken(toks []store.Token, labelKey, id string) bool {
	return labelKey != "" && slices.ContainsFunc(toks, func(o store.Token) bool {
		return o.LabelKey == labelKey && o.ID != id
	})
}

// GetToken returns one token of owner.
func (s *Store) GetToken(ctx context.Context, owner, id string) (store.Token, error) {
	return s.readToken(ctx, s.client, owner, id)
}

// readToken reads one token and its last use through c (the client or a
// transaction), or returns store.ErrNotFound.
func (s *Store) readToken(ctx context.Context, c redis.Cmdable, owner, id string) (store.Token, error) {
	var rec, used, addrs *redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		rec = p.HGet(ctx, s.keys.tokens(owner), id)
		used = p.HGet(ctx, s.keys.used(owner), id)
		addrs = p.HGet(ctx, s.keys.addrs(owner), id)
		return nil
	})
	if err = ignoreNil(err); err != nil {
		return store.Token{}, opErr(err, "get token %s/%s", owner, id)
	}
	t, err := tokenOf(rec, used)
	if err != nil {
		return store.Token{}, err
	}
	recent, err := optional(addrs)
	if err != nil {
		return store.Token{}, opErr(err, "get recent addresses")
	}
	return withAddresses(t, recent), nil
}

// tokenOf decodes the replies of reads of a token record and its last
// use, or returns store.ErrNotFound if there is no record.
func tokenOf(rec, used *redis.StringCmd) (store.Token, error) {
	data, err := rec.Result()
	if errors.Is(err, redis.Nil) {
		return store.Token{}, store.ErrNotFound
	}
	if err != nil {
		return store.Token{}, opErr(err, "get token")
	}
	lastUse, err := optional(used)
	if err != nil {
		return store.Token{}, opErr(err, "get last use")
	}
	return decodeToken(data, lastUse)
}

// ListTokens returns owner's tokens sorted by CreatedAt then ID.
func (s *Store) ListTokens(ctx context.Context, owner string) ([]store.Token, error) {
	toks, err := s.readUserTokens(ctx, s.client, owner)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(toks, func(a, b store.Token) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return toks, nil
}

// readUserTokens reads all tokens of a user through c in one round trip,
// or returns store.ErrNotFound if the user does not exist.
func (s *Store) readUserTokens(ctx context.Context, c redis.Cmdable, owner string) ([]store.Token, error) {
	var exists *redis.IntCmd
	var recs, used, addrs *redis.MapStringStringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, s.keys.user(owner))
		recs = p.HGetAll(ctx, s.keys.tokens(owner))
		used = p.HGetAll(ctx, s.keys.used(owner))
		addrs = p.HGetAll(ctx, s.keys.addrs(owner))
		return nil
	})
	if err != nil {
		return nil, opErr(err, "read tokens of %q", owner)
	}
	if exists.Val() == 0 {
		return nil, store.ErrNotFound
	}
	toks := make([]store.Token, 0, len(recs.Val()))
	for id, data := range recs.Val() {
		t, err := decodeToken(data, used.Val()[id])
		if err != nil {
			return nil, err
		}
		toks = append(toks, withAddresses(t, addrs.Val()[id]))
	}
	return toks, nil
}

// updateToken applies fn to the token in a WATCH transaction on the
// owner's tokens; fn runs again if another client changes them meanwhile.
func (s *Store) updateToken(ctx context.Context, owner, id string, fn func(*store.Token) error) (store.Token, error) {
	var out store.Token
	// The last uses are watched too: fn decides on LastUsedAt (the
	// dormancy rule switches off a token only if it is still unused), so
	// a use written between the read and the write runs fn again.
	err := s.watch(ctx, func(tx *redis.Tx) error {
		cur, err := s.readToken(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		next := cur
		if err := fn(&next); err != nil {
			return err
		}
		if err := s.checkUpdate(ctx, tx, cur, next); err != nil {
			return err
		}
		data, err := encodeToken(next)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.tokens(owner), id, data)
			if !next.LastUsedAt.Equal(cur.LastUsedAt) || next.LastUsedIP != cur.LastUsedIP || next.LastUsedHost != cur.LastUsedHost {
				s.writeLastUse(ctx, p, next)
			}
			if !slices.Equal(next.RecentAddresses, cur.RecentAddresses) {
				s.writeAddresses(ctx, p, next)
			}
			s.publishHashes(ctx, p, next.Hashes())
			return nil
		})
		out = next
		return opErr(err, "update token %s/%s", owner, id)
	}, s.keys.tokens(owner), s.keys.used(owner))
	if err != nil {
		return store.Token{}, err
	}
	s.deliverHashes(out.Hashes())
	return out, nil
}

// errReplaced: a replayed rotation found the token with another secret
// than the one the rotation replaced.
var errReplaced = errors.New("the token has another secret since")

// deliverHashes delivers a token event for each hash to this process's
// subscribers.
func (s *Store) deliverHashes(hs []store.TokenHash) {
	for _, h := range hs {
		s.subs.deliver(store.TokenEvent(h))
	}
}

// publishHashes queues a token event for each hash on p, for the other
// processes (see publishIn).
func (s *Store) publishHashes(ctx context.Context, p redis.Pipeliner, hs []store.TokenHash) {
	for _, h := range hs {
		s.publishIn(ctx, p, store.TokenEvent(h))
	}
}

// rotateToken gives the token the hash next: the new hash's index first
// (as a create makes it; the token is not found by it until the record
// names it), then the record in a WATCH transaction (see
// store.Token.Rotated), then the old indexes: the old hash's expires at
// its end (or goes now), dropped ones go. If the record cannot be written
// the new index is removed again. The last step only tidies: LookupToken
// reads the record, which already refuses what the step removes, and
// Check removes what a failure of it leaves behind.
//
// expect, when not zero, is the hash the token must still have (a replay
// after a failover): a token with another one is left alone.
// It returns the token as written and the hash it replaced.
func (s *Store) rotateToken(ctx context.Context, owner, id string, next store.TokenHash, now, until, expiresBy time.Time, expect store.TokenHash) (store.Token, store.TokenHash, error) {
	if _, err := s.readToken(ctx, s.client, owner, id); err != nil {
		return store.Token{}, store.TokenHash{}, err
	}
	r := ref(owner, id)
	if err := s.linkToken(ctx, store.Token{Owner: owner, ID: id, Hash: next}); err != nil {
		return store.Token{}, store.TokenHash{}, opErr(err, "rotate token %s/%s: index", owner, id)
	}
	var (
		before, out store.Token
		dropped     []store.TokenHash
	)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		cur, err := s.readToken(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		if expect != (store.TokenHash{}) && cur.Hash != expect {
			return errReplaced
		}
		before = cur
		out, dropped = cur.Rotated(next, now, until, expiresBy)
		data, err := encodeToken(out)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.tokens(owner), id, data)
			s.publishHashes(ctx, p, append(before.Hashes(), next))
			return nil
		})
		return opErr(err, "rotate token %s/%s", owner, id)
	}, s.keys.tokens(owner))
	if err != nil {
		return store.Token{}, store.TokenHash{}, undone(ctx, err, func(uctx context.Context) error {
			_, err := s.casIndexes(uctx, []indexChange{{hash: next, expected: r}})
			return err
		})
	}
	var tidy []indexChange
	for _, h := range dropped {
		tidy = append(tidy, indexChange{hash: h, expected: r})
	}
	for _, p := range out.Previous {
		if p.Hash == before.Hash {
			// The key expires by the server's clock, the end is the
			// store's: the key lives as long as the overlap.
			tidy = append(tidy, indexChange{hash: p.Hash, expected: r, next: r, expireAt: time.Now().Add(p.Until.Sub(now))})
		}
	}
	if len(tidy) > 0 {
		if _, err := s.casIndexes(ctx, tidy); err != nil {
			s.logger.Warn("rotate token: old secrets' indexes left for Check to remove",
				zap.String("owner", owner), zap.String("token_id", id), zap.Error(err))
		}
	}
	s.deliverHashes(append(before.Hashes(), next))
	return out, before.Hash, nil
}

// checkUpdate checks what an update function made of a token: the
// identity is fixed and a new label key must be free.
func (s *Store) checkUpdate(ctx context.Context, tx *redis.Tx, cur, next store.Token) error {
	if next.ID != cur.ID || next.Owner != cur.Owner || next.Kind != cur.Kind || next.Hash != cur.Hash ||
		!slices.Equal(next.Previous, cur.Previous) {
		return fmt.Errorf("redisstore: update token %s/%s: the update changed its ID, owner, kind, hash or previous secrets", cur.Owner, cur.ID)
	}
	if next.LabelKey == "" || next.LabelKey == cur.LabelKey {
		return nil
	}
	toks, err := s.readUserTokens(ctx, tx, cur.Owner)
	if err != nil {
		return err
	}
	if labelTaken(toks, next.LabelKey, cur.ID) {
		return store.ErrLabelTaken
	}
	return nil
}

// writeLastUse queues the write of t's last use, or its removal when t
// was never used.
func (s *Store) writeLastUse(ctx context.Context, p redis.Pipeliner, t store.Token) {
	if t.LastUsedAt.IsZero() {
		p.HDel(ctx, s.keys.used(t.Owner), t.ID)
		return
	}
	p.HSet(ctx, s.keys.used(t.Owner), t.ID, lastUse(t.LastUsedAt, t.LastUsedIP, t.LastUsedHost))
}

// writeAddresses queues the write of t's recent addresses, or their
// removal when there are none.
func (s *Store) writeAddresses(ctx context.Context, p redis.Pipeliner, t store.Token) {
	if len(t.RecentAddresses) == 0 {
		p.HDel(ctx, s.keys.addrs(t.Owner), t.ID)
		return
	}
	p.HSet(ctx, s.keys.addrs(t.Owner), t.ID, recentAddresses(t.RecentAddresses))
}

// deleteToken removes the token's hash index, which revokes it, then its
// record in a WATCH transaction. If the record cannot be removed the index
// is put back.
func (s *Store) deleteToken(ctx context.Context, owner, id string) (store.Token, error) {
	var (
		removed store.Token
		undo    func(context.Context) error // of the latest attempt's first step
	)
	err := s.watch(ctx, func(tx *redis.Tx) error {
		undo = nil
		t, err := s.readToken(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		undo = func(uctx context.Context) error { return s.setIndexes(uctx, []store.Token{t}, true) }
		if err := s.setIndexes(ctx, []store.Token{t}, false); err != nil {
			return opErr(err, "delete token %s/%s: index", owner, id)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.dropToken(ctx, p, t)
			s.publishHashes(ctx, p, t.Hashes())
			return nil
		})
		removed = t
		return opErr(err, "delete token %s/%s", owner, id)
	}, s.keys.tokens(owner))
	if err != nil {
		return store.Token{}, undone(ctx, err, undo)
	}
	s.deliverHashes(removed.Hashes())
	return removed, nil
}

// dropToken queues the removal of a token's record, last use and recent
// addresses.
func (s *Store) dropToken(ctx context.Context, p redis.Pipeliner, t store.Token) {
	p.HDel(ctx, s.keys.tokens(t.Owner), t.ID)
	p.HDel(ctx, s.keys.used(t.Owner), t.ID)
	p.HDel(ctx, s.keys.addrs(t.Owner), t.ID)
}
