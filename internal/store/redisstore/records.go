package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// encodeToken returns the stored form of t: JSON without the last use
// and the recent addresses, which live in hashes of their own so that
// RecordLastUse can compare and set them in a Lua script without decoding
// and re-encoding JSON there.
func encodeToken(t store.Token) (string, error) {
	t.LastUsedAt, t.LastUsedIP, t.LastUsedHost = time.Time{}, "", ""
	t.RecentAddresses = nil
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode token %s/%s: %w", t.Owner, t.ID, err)
	}
	return string(b), nil
}

// decodeToken reads a stored token and its last use ("" if never used);
// the recent addresses are added by withAddresses. A last use that cannot
// be read counts as none (lastUseScript replaces it at the next use): it
// is no decision input, and failing would make the token unreadable, so
// impossible to list or revoke.
func decodeToken(data, used string) (store.Token, error) {
	var t store.Token
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return store.Token{}, fmt.Errorf("redisstore: decode token: %w", err)
	}
	if used != "" {
		if at, ip, host, err := parseLastUse(used); err == nil {
			t.LastUsedAt, t.LastUsedIP, t.LastUsedHost = at, ip, host
		}
	}
	return t, nil
}

// encodeUser returns the stored form of u.
func encodeUser(u store.User) (string, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode user %q: %w", u.Name, err)
	}
	return string(b), nil
}

// decodeUser reads a stored user.
func decodeUser(data string) (store.User, error) {
	var u store.User
	if err := json.Unmarshal([]byte(data), &u); err != nil {
		return store.User{}, fmt.Errorf("redisstore: decode user: %w", err)
	}
	return u, nil
}

// encodeClient returns the stored form of c.
func encodeClient(c store.Client) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode client %q: %w", c.ID, err)
	}
	return string(b), nil
}

// decodeClient reads a stored client.
func decodeClient(data string) (store.Client, error) {
	var c store.Client
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return store.Client{}, fmt.Errorf("redisstore: decode client: %w", err)
	}
	return c, nil
}

// encodeSession returns the stored form of s.
func encodeSession(s store.Session) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode session: %w", err)
	}
	return string(b), nil
}

// decodeSession reads a stored session.
func decodeSession(data string) (store.Session, error) {
	var s store.Session
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return store.Session{}, fmt.Errorf("redisstore: decode session: %w", err)
	}
	return s, nil
}

// stampLayout formats last-use times in UTC with a fixed width, so that
// comparing two stamps as strings (in Lua) compares the times.
const stampLayout = "2006-01-02T15:04:05.000000000Z"

// stamp formats t for comparison; see stampLayout.
func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// lastUse is the stored form of a last use: "STAMP IP HOST". The stamp
// and the IP contain no space; the host, last, may. (A value written
// before hosts were recorded, "STAMP IP", reads with an empty host.)
func lastUse(at time.Time, ip, host string) string { return stamp(at) + " " + ip + " " + host }

// parseLastUse reads a value written by lastUse.
func parseLastUse(v string) (at time.Time, ip, host string, err error) {
	s, rest, _ := strings.Cut(v, " ")
	ip, host, _ = strings.Cut(rest, " ")
	at, err = time.Parse(stampLayout, s)
	return at, ip, host, err
}

// addressLine is the stored form of one recent address: "STAMP IP HOST",
// as lastUse (a host cannot hold a line break; one is dropped).
func addressLine(a store.AddressUse) string {
	return lastUse(a.LastUsedAt, a.IP, strings.NewReplacer("\n", "", "\r", "").Replace(a.Host))
}

// recentAddresses is the stored form of a token's recent addresses: their
// lines (addressLine), newest first, separated by line breaks; "" for
// none.
func recentAddresses(as []store.AddressUse) string {
	lines := make([]string, len(as))
	for i, a := range as {
		lines[i] = addressLine(a)
	}
	return strings.Join(lines, "\n")
}

// withAddresses sets t's recent addresses from their stored form v ("":
// none), as store.MergeAddress keeps them (sorted, one per IP, bounded). A
// line that does not read as one of addressLine, or has no IP, is
// skipped, as lastUseScript drops it: a damaged value must not make the
// token unreadable, which would keep it from being listed or revoked.
func withAddresses(t store.Token, v string) store.Token {
	t.RecentAddresses = nil
	for line := range strings.SplitSeq(v, "\n") {
		if at, ip, host, err := parseLastUse(line); err == nil {
			t.RecentAddresses = store.MergeAddress(t.RecentAddresses, ip, at, host)
		}
	}
	return t
}

// createListed adds a record and lists it: the record first (SETNX, so an
// existing one gives exists), then member in the list set, in a
// transaction that also publishes ev (if any), so that the event goes out
// with the last step. If the set cannot be written the record is removed
// again.
func (s *Store) createListed(ctx context.Context, key, data, list, member string, ev *store.Event, exists error, what string) error {
	created, err := s.client.SetNX(ctx, key, data, 0).Result()
	if err != nil {
		return opErr(err, "create %s %q", what, member)
	}
	if !created {
		return exists
	}
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, list, member)
		if ev != nil {
			s.publishIn(ctx, p, *ev)
		}
		return nil
	})
	if err != nil {
		return undone(ctx, opErr(err, "create %s %q: add to %s set", what, member, what), func(uctx context.Context) error {
			return s.client.Del(uctx, key).Err()
		})
	}
	if ev != nil {
		s.subs.deliver(*ev)
	}
	return nil
}

// readRecord reads and decodes the JSON record at key through c (the
// client or a transaction); store.ErrNotFound if there is none.
func readRecord[T any](ctx context.Context, c redis.Cmdable, key string, decode func(string) (T, error), what string) (T, error) {
	var zero T
	data, err := c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return zero, store.ErrNotFound
	}
	if err != nil {
		return zero, opErr(err, "%s", what)
	}
	return decode(data)
}

// readListed reads the records of a list set's members in one pipeline
// (not MGET: in Cluster they are in different slots). A member whose
// record is missing (a deletion interrupted by a crash, see Check) is
// skipped.
func readListed[T any](ctx context.Context, s *Store, list string, keyOf func(string) string, decode func(string) (T, error), what string) ([]T, error) {
	members, err := s.client.SMembers(ctx, list).Result()
	if err != nil {
		return nil, opErr(err, "%s", what)
	}
	cmds := make([]*redis.StringCmd, len(members))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			cmds[i] = p.Get(ctx, keyOf(m))
		}
		return nil
	})
	if err = ignoreNil(err); err != nil {
		return nil, opErr(err, "%s", what)
	}
	out := make([]T, 0, len(members))
	for _, cmd := range cmds {
		data, err := optional(cmd)
		if err != nil {
			return nil, opErr(err, "%s", what)
		}
		if data == "" {
			continue
		}
		v, err := decode(data)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
