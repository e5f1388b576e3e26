package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// lookupScript reads a token's index, then its record, last use and owner
// in one round trip.
//
//	KEYS[1]      index key
//	ARGV[1..6]   heads and tails of the tokens, used and user keys (see
//	             template), between which the script puts the owner's name
//
// It returns nil if there is no index, else {record, last use, user} with
// nil for what is missing. The script builds keys it was not given, which
// Redis allows outside Cluster only: in a cluster they may live on another
// node. On a cluster LookupToken therefore reads the index first.
var lookupScript = redis.NewScript(`
local ref = redis.call('GET', KEYS[1])
if not ref then return false end
local sep = string.find(ref, '\0', 1, true)
if not sep then return {false, false, false} end
local owner = string.sub(ref, 1, sep - 1)
local id = string.sub(ref, sep + 1)
local function key(i) return ARGV[i] .. owner .. ARGV[i + 1] end
return {
  redis.call('HGET', key(1), id),
  redis.call('HGET', key(3), id),
  redis.call('GET', key(5)),
}
`)

// lookupArgs returns the ARGV of lookupScript, which depend only on the
// key layout.
func lookupArgs(k keys) []any {
	var args []any
	for _, f := range []func(string) string{k.tokens, k.used, k.user} {
		head, tail := template(f)
		args = append(args, head, tail)
	}
	return args
}

// LookupToken finds a token by hash with its owner (a previous secret
// only before its end, by the store's clock): one round trip
// (lookupScript) on a single server, two on a cluster. An index that
// leads to no token with that hash, or to a token without owner, is
// treated as absent.
func (s *Store) LookupToken(ctx context.Context, h store.TokenHash) (store.Grant, error) {
	var (
		rec, used, user string
		err             error
	)
	if s.cluster {
		rec, used, user, err = s.lookupCluster(ctx, h)
	} else {
		rec, used, user, err = s.lookupScripted(ctx, h)
	}
	if err != nil {
		return store.Grant{}, opErr(err, "look up token")
	}
	if rec == "" || user == "" {
		return store.Grant{}, store.ErrNotFound
	}
	t, err := decodeToken(rec, used)
	if err != nil {
		return store.Grant{}, err
	}
	until, ok := t.SecretOf(h, s.now())
	if !ok {
		return store.Grant{}, store.ErrNotFound
	}
	u, err := decodeUser(user)
	if err != nil {
		return store.Grant{}, err
	}
	return store.Grant{Token: t, Owner: u, PreviousUntil: until}, nil
}

// lookupScripted reads everything with lookupScript; "" stands for absent.
func (s *Store) lookupScripted(ctx context.Context, h store.TokenHash) (rec, used, user string, err error) {
	reply, err := lookupScript.Run(ctx, s.client, []string{s.keys.index(h)}, s.lookupArgs...).Slice()
	if errors.Is(err, redis.Nil) {
		return "", "", "", nil
	}
	if err != nil {
		return "", "", "", err
	}
	str := func(i int) string {
		if i >= len(reply) {
			return ""
		}
		v, _ := reply[i].(string)
		return v
	}
	return str(0), str(1), str(2), nil
}

// lookupCluster reads the index, then the owner's keys, which share a
// slot, in one more round trip: a MULTI, so that token and owner are read
// at one instant, as the script reads them.
func (s *Store) lookupCluster(ctx context.Context, h store.TokenHash) (rec, used, user string, err error) {
	indexValue, err := optional(s.client.Get(ctx, s.keys.index(h)))
	if err != nil {
		return "", "", "", err
	}
	owner, id, ok := parseRef(indexValue)
	if !ok {
		return "", "", "", nil
	}
	var recCmd, usedCmd, userCmd *redis.StringCmd
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		recCmd = p.HGet(ctx, s.keys.tokens(owner), id)
		usedCmd = p.HGet(ctx, s.keys.used(owner), id)
		userCmd = p.Get(ctx, s.keys.user(owner))
		return nil
	})
	if err = ignoreNil(err); err != nil {
		return "", "", "", err
	}
	for _, v := range []struct {
		dst *string
		cmd *redis.StringCmd
	}{{&rec, recCmd}, {&used, usedCmd}, {&user, userCmd}} {
		if *v.dst, err = optional(v.cmd); err != nil {
			return "", "", "", err
		}
	}
	return rec, used, user, nil
}

// lastUseScript sets a token's last use unless the token is gone or a
// newer use is recorded, and merges the use's address into the token's
// recent addresses (the same rules as store.MergeAddress: one line per
// distinct IP with its newest use, newest first, at most ARGV[6]).
// Stamps compare as strings (see stampLayout); they have a fixed width,
// so a line's IP starts after the stamp and a space. A stored line that
// does not start with a stamp, a space and an IP is dropped, and of two
// lines of one IP the newer is kept (withAddresses reads them so too), so
// a damaged value heals at the next use.
//
//	KEYS[1] the owner's tokens, KEYS[2] the owner's last uses,
//	KEYS[3] the owner's recent addresses
//	ARGV[1] token ID, ARGV[2] stamp, ARGV[3] the last use to store,
//	ARGV[4] the IP ("" adds no address), ARGV[5] the address line to
//	merge, ARGV[6] the most addresses kept
var lastUseScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local n = #ARGV[2]
local stamped = '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%d%d%dZ'
local cur = redis.call('HGET', KEYS[2], ARGV[1])
-- A last use not of ours (see decodeToken) is replaced.
if not (cur and string.find(cur, stamped) and string.sub(cur, 1, n) >= ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if ARGV[4] == '' then return 1 end
local function ipof(line)
  local sp = string.find(line, ' ', n + 2, true)
  if sp then return string.sub(line, n + 2, sp - 1) end
  return string.sub(line, n + 2)
end
local list, at = {}, {}
local function add(line)
  local ip = ipof(line)
  local i = at[ip]
  if not i then
    table.insert(list, line)
    at[ip] = #list
  elseif string.sub(line, 1, n) > string.sub(list[i], 1, n) then
    list[i] = line
  end
end
local old = redis.call('HGET', KEYS[3], ARGV[1])
if old then
  for line in string.gmatch(old, '[^\n]+') do
    -- A line not of ours (see withAddresses) is dropped.
    if string.find(line, stamped .. ' [^ ]') then add(line) end
  end
end
add(ARGV[5])
table.sort(list, function(a, b)
  local sa, sb = string.sub(a, 1, n), string.sub(b, 1, n)
  if sa ~= sb then return sa > sb end
  return ipof(a) < ipof(b)
end)
local value = table.concat(list, '\n', 1, math.min(#list, tonumber(ARGV[6])))
if value ~= old then redis.call('HSET', KEYS[3], ARGV[1], value) end
return 1
`)

// RecordLastUse writes the batch (time, IP and host of each use, several
// uses of one token merged into its recent addresses) in one pipeline of
// lastUseScript calls. Entries without a time are skipped.
func (s *Store) RecordLastUse(ctx context.Context, uses []store.LastUse) error {
	calls := make([]scriptCall, 0, len(uses))
	for _, u := range uses {
		if u.At.IsZero() {
			continue
		}
		calls = append(calls, scriptCall{
			keys: []string{s.keys.tokens(u.Owner), s.keys.used(u.Owner), s.keys.addrs(u.Owner)},
			args: []any{u.TokenID, stamp(u.At), lastUse(u.At, u.IP, u.Host), u.IP,
				addressLine(store.AddressUse{IP: u.IP, LastUsedAt: u.At, Host: u.Host}), store.MaxRecentAddresses},
		})
	}
	if len(calls) == 0 {
		return nil
	}
	_, err := s.runScripts(ctx, lastUseScript, calls)
	return opErr(err, "record last use")
}
