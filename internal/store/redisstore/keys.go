package redisstore

import (
	"encoding/hex"
	"strings"

	"github.com/tokengate/tokengate/internal/store"
)

// keys names every Redis key of a store; nothing else builds key names.
//
// A Redis Cluster places a key by the part between the first '{' and the
// next '}' (its hash tag), so all keys of one user share a slot and can be
// read and written together in one transaction:
//
//	PREFIX:{u:NAME}:user    string  the user, JSON
//	PREFIX:{u:NAME}:tokens  hash    token ID -> token, JSON
//	PREFIX:{u:NAME}:used    hash    token ID -> last use (see lastUse)
//	PREFIX:{u:NAME}:addrs   hash    token ID -> recent addresses (see
//	                                recentAddresses); apart from used so
//	                                that LookupToken reads no more
//	PREFIX:{u:NAME}:sessions hash   session id (hex) -> session, JSON;
//	                                expires with the latest session
//	PREFIX:{s:HEX}          string  session index: NAME of the session's
//	                                user; expires with the session
//	PREFIX:{t:HEX}          string  hash index: "OWNER\x00ID" of the token
//	PREFIX:users            set     user names
//	PREFIX:{f:KEY}          string  failure counter, expires with its window
//	PREFIX:{c:ID}:client    string  an OAuth client, JSON
//	PREFIX:clients          set     client IDs
//	PREFIX:doc:NAME         string  a document (the keyring, the ACL), opaque bytes
//	PREFIX:denied           zset    denied jti -> Until (Unix microseconds)
//
// The hash index, the session index and the user and client sets live in
// slots of their own;
// see the package comment for how writes that span two slots stay
// consistent. Each document and the deny-list are one key each.
// Names may contain '}' without harm: the tag then ends early, but it ends
// at the same place in all keys of one user, and the literal parts after
// the name keep keys of different kinds apart.
type keys struct {
	prefix string
}

// refSep separates owner and token ID in an index value. User names cannot
// contain it (CreateUser refuses them); IDs may, as the value is cut at the
// first one.
const refSep = "\x00"

// userBase starts every key of one user; its hash tag is the name.
func (k keys) userBase(name string) string { return k.prefix + ":{u:" + name + "}:" }

// user is the key of the user record.
func (k keys) user(name string) string { return k.userBase(name) + "user" }

// tokens is the key of the hash of the user's token records.
func (k keys) tokens(name string) string { return k.userBase(name) + "tokens" }

// used is the key of the hash of the last uses of the user's tokens.
func (k keys) used(name string) string { return k.userBase(name) + "used" }

// addrs is the key of the hash of the recent addresses of the user's
// tokens.
func (k keys) addrs(name string) string { return k.userBase(name) + "addrs" }

// sessions is the key of the hash of the user's sessions.
func (k keys) sessions(name string) string { return k.userBase(name) + "sessions" }

// sessionIndex is the key that names the user of the session with id h.
func (k keys) sessionIndex(h store.TokenHash) string { return k.prefix + ":{s:" + h.String() + "}" }

// index is the key of the hash index of one token secret.
func (k keys) index(h store.TokenHash) string { return k.indexHead() + h.String() + "}" }

// indexHead starts every index key.
func (k keys) indexHead() string { return k.prefix + ":{t:" }

// users is the key of the set of user names.
func (k keys) users() string { return k.prefix + ":users" }

// client is the key of an OAuth client's record; its hash tag is the ID.
func (k keys) client(id string) string { return k.prefix + ":{c:" + id + "}:client" }

// clients is the key of the set of client IDs.
func (k keys) clients() string { return k.prefix + ":clients" }

// document is the key of the named document.
func (k keys) document(name string) string { return k.prefix + ":doc:" + name }

// denied is the key of the deny-list of access tokens.
func (k keys) denied() string { return k.prefix + ":denied" }

// failure is the key of one failure counter.
func (k keys) failure(key string) string { return k.prefix + ":{f:" + key + "}" }

// template splits the key that f builds for a user into the parts before
// and after the name, so that a Lua script can build the same key for a
// name it reads (see lookupScript) without a second copy of the layout.
func template(f func(string) string) (head, tail string) {
	head, tail, _ = strings.Cut(f(refSep), refSep)
	return head, tail
}

// indexPattern matches every index key (for SCAN).
func (k keys) indexPattern() string { return escapeGlob(k.indexHead()) + "*}" }

// userPattern matches every user record key (for SCAN).
func (k keys) userPattern() string { return recordPattern(k.user) }

// clientPattern matches every client record key (for SCAN).
func (k keys) clientPattern() string { return recordPattern(k.client) }

// recordPattern matches every key that f builds (for SCAN).
func recordPattern(f func(string) string) string {
	head, tail := template(f)
	return escapeGlob(head) + "*" + escapeGlob(tail)
}

// hashOf returns the token hash an index key is for.
func (k keys) hashOf(key string) (store.TokenHash, bool) {
	var h store.TokenHash
	s, ok := strings.CutPrefix(key, k.indexHead())
	if !ok {
		return h, false
	}
	s, ok = strings.CutSuffix(s, "}")
	if !ok || hex.DecodedLen(len(s)) != len(h) {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err == nil
}

// nameOf returns the user name of a user record key.
func (k keys) nameOf(key string) (string, bool) { return recordOf(k.user, key) }

// clientOf returns the client ID of a client record key.
func (k keys) clientOf(key string) (string, bool) { return recordOf(k.client, key) }

// recordOf returns the name that f put in key.
func recordOf(f func(string) string, key string) (string, bool) {
	head, tail := template(f)
	s, ok := strings.CutPrefix(key, head)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, tail)
}

// ref is the value of an index key: where the token is.
func ref(owner, id string) string { return owner + refSep + id }

// parseRef splits an index value into owner and token ID.
func parseRef(v string) (owner, id string, ok bool) {
	return strings.Cut(v, refSep)
}

// escapeGlob quotes the characters that are special in a Redis glob
// pattern, so that a prefix is matched literally.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
