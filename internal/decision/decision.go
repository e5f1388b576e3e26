// Package decision is the edge's decision about a token: what every
// verifier (stored PATs and legacy tokens, the gateway's own OAuth access
// tokens, external issuers' JWTs) returns and the decision cache holds, so
// that a request is accepted or refused without a store round trip.
package decision

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"

	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/iplist"
)

// Decision is what the edge knows about one token. Decisions are immutable
// once cached, except for Uses which the gateway updates atomically.
type Decision struct {
	// Missing marks a negative decision: no token has this hash.
	Missing bool
	// CachedAt is set by the decision cache when it stores the decision:
	// the time in whole seconds since the cache's epoch (4 bytes that
	// share a word with Missing, so a cached token is kept small). Only
	// package cache reads or writes it.
	CachedAt uint32
	// Owner is what invalidates the decision (a user name, or "client:" +
	// an OAuth client id), User the identity shown to the upstream,
	// TokenID the token's public id (a jti for access tokens), Kind its
	// kind.
	Owner, User, TokenID, Kind string
	// Issuer is the "iss" of an external issuer's JWT ("" for the
	// gateway's own tokens), so the upstream can tell its users apart.
	Issuer string
	// ScopeHeader holds the granted scopes, separated by single spaces
	// (one string per decision rather than a slice: a cached token costs
	// less memory, and scope.CoversString checks it without allocating).
	ScopeHeader string
	// ExpiresAt in Unix nanoseconds; 0 means never.
	ExpiresAt int64
	// Refusal is why the token must be refused whatever the request (token
	// switched off, owner disabled, token login off); nil if usable.
	Refusal error
	// AllowedIPs is the token's allow-list (empty: any).
	AllowedIPs iplist.List
	// Uses remembers the last uses this node recorded, so that a hot
	// token is queued for a store write at most once per interval and
	// address.
	Uses UseMemory
}

// useSlots is how many addresses a UseMemory remembers: a token used by a
// fleet of up to this many addresses in turn is recorded once per
// interval and address; a larger fleet is recorded more often (the
// recorder keeps the newest uses anyway, bounded per token).
const useSlots = 4

// UseMemory is a decision's memory of the uses this node recorded: for
// each of a few client addresses (a fingerprint, see AddrPrint) when it
// was last recorded. Safe for concurrent use without a lock: each slot is
// one pointer to an immutable record, swapped by compare-and-swap, so an
// address and its time always change together. Concurrent uses from one
// address are recorded once; a use from a new address is always recorded,
// even when another new address takes a slot at the same instant.
type UseMemory struct {
	slots [useSlots]atomic.Pointer[useRecord]
}

// useRecord is one slot's address and when a use from it was last
// recorded (Unix nanoseconds).
type useRecord struct {
	addr uint64
	at   int64
}

// Due reports whether a use from the address with fingerprint addr at now
// (Unix nanoseconds) is to be recorded: the address was not recorded
// within every. If so it is noted as recorded at now, in the address's
// slot or the one recorded longest ago (an empty one first). A record is
// allocated only when a use is due.
func (m *UseMemory) Due(addr uint64, now, every int64) bool {
look:
	for range 2 * useSlots {
		oldest, oldestRec := 0, (*useRecord)(nil)
		for i := range m.slots {
			r := m.slots[i].Load()
			if r != nil && r.addr == addr {
				if now-r.at < every {
					return false
				}
				if m.slots[i].CompareAndSwap(r, &useRecord{addr: addr, at: now}) {
					return true
				}
				continue look // recorded or replaced meanwhile
			}
			if i == 0 || oldestRec != nil && (r == nil || r.at < oldestRec.at) {
				oldest, oldestRec = i, r
			}
		}
		if m.slots[oldest].CompareAndSwap(oldestRec, &useRecord{addr: addr, at: now}) {
			return true
		}
		// Another use took that slot meanwhile: look again, which finds
		// the address if that use was from it.
	}
	// Slots changing on every look (a fleet larger than the memory, all
	// at once): record rather than lose a use.
	return true
}

// AddrPrint is a fingerprint of a client address for UseMemory: 0 for an
// invalid address, exact for IPv4 (bit 32 set), a keyed hash of the 128
// bits for IPv6 (bit 63 set). The key is random per process: a client who
// chooses its IPv6 address (anyone with a /64 can) and has seen a token's
// recent addresses cannot pick one whose print is that of the token's
// usual address, which would share its slot and keep the client's uses
// out of the recent addresses while the usual address is recorded.
func AddrPrint(a netip.Addr) uint64 {
	switch {
	case !a.IsValid():
		return 0
	case a.Is4():
		b := a.As4()
		return 1<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	}
	return 1<<63 | maphash.Comparable(printSeed, a.As16())
}

// printSeed keys AddrPrint's hash of IPv6 addresses.
var printSeed = maphash.MakeSeed()

// Identity returns who the decision says the caller is, with Stable
// pointing at the decision's own fields, so that setting headers and
// placeholders for a cached token allocates nothing and costs no memory
// per decision.
func (d *Decision) Identity() identity.Identity {
	return identity.Identity{
		User: d.User, TokenType: d.Kind, TokenID: d.TokenID, Scopes: d.ScopeHeader, Issuer: d.Issuer,
		Stable: [5]*string{&d.User, &d.Kind, &d.TokenID, &d.ScopeHeader, &d.Issuer},
	}
}

// Negative reports whether the decision refuses a token that anyone can
// make up: an unknown PAT or legacy token, or a JWT refused before it
// named an owner (bad signature, unknown key, expired). The cache keeps
// such decisions apart, and they count as failed look-ups.
func (d *Decision) Negative() bool { return d.Missing || (d.Refusal != nil && d.Owner == "") }

// AllowsIP applies the decision's allow-list.
func (d *Decision) AllowsIP(a netip.Addr) bool { return d.AllowedIPs.Allows(a) }
