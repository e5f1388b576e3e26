// Package store defines where tokengate keeps its state: users, tokens,
// clients, documents, denials, failure counters and web sessions, one role interface
// each, gathered in Store, with two backends (an embedded file and Redis)
// that pass one conformance suite (package storetest).
//
// Secrets never reach the store in clear: a token is kept as the SHA-256 of
// its secret and a password as a slow hash computed by the caller.
package store

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Backends return these (possibly wrapped) so that callers
// can match them with errors.Is; any other error means the store could not
// be reached or failed, and callers answer 503 rather than 4xx.
var (
	// ErrNotFound: no user or token with that key.
	ErrNotFound = errors.New("not found")
	// ErrUserExists: CreateUser for a name that is already taken.
	ErrUserExists = errors.New("user already exists")
	// ErrLabelTaken: another token of the same owner has the same label key.
	ErrLabelTaken = errors.New("label already in use")
	// ErrTokenLimit: the owner already has the maximum number of tokens of
	// that kind.
	ErrTokenLimit = errors.New("token limit reached")
	// ErrClientExists: CreateClient for an id that is already taken.
	ErrClientExists = errors.New("client already exists")
	// ErrConflict: an UpdateKeyring lost a race with another writer more
	// times than the backend retries.
	ErrConflict = errors.New("concurrent update, try again")
	// ErrExists: CreateSession for an id that is already taken.
	ErrExists = errors.New("already exists")
)

// TokenHash is the SHA-256 of a token's secret: the only form in which a
// token is kept and the key under which it is looked up.
type TokenHash [32]byte

// String returns the hash in lowercase hex.
func (h TokenHash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as lowercase hex (so stored JSON records
// hold 64 characters, not an array of 32 numbers).
func (h TokenHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hash written by MarshalText.
func (h *TokenHash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return fmt.Errorf("token hash must be %d hex characters", 2*len(h))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// User is an account that may own tokens.
type User struct {
	// Name is the unique, canonical (lowercase) user name.
	Name string `json:"name"`
	// PasswordHash is a slow hash of the password (bcrypt), never the password.
	PasswordHash string `json:"password_hash,omitempty"`
	// Roles such as "admin".
	Roles []string `json:"roles,omitempty"`
	// TokenLogin allows the user to create and use tokens (seed 000's
	// "allow login by token"). Off by default.
	TokenLogin bool `json:"token_login"`
	// Disabled users cannot authenticate by any means.
	Disabled bool `json:"disabled"`
	// Source is where the user's password is checked: "" for the
	// gateway's own store, "backend" for a user provisioned on first
	// login through the legacy backend (no password is kept here).
	Source string `json:"source,omitempty"`
	// CreatedAt and UpdatedAt are set by the caller.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Token kinds.
const (
	KindPAT    = "pat"
	KindLegacy = "legacy"
)

// Token is a stored token: metadata and the hash of its secret.
type Token struct {
	// ID is the public, non-secret identifier, unique per owner.
	ID string `json:"id"`
	// Owner is the name of the user the token belongs to.
	Owner string `json:"owner"`
	// Kind is KindPAT or KindLegacy.
	Kind string `json:"kind"`
	// Hash is the SHA-256 of the secret; unique across all tokens.
	Hash TokenHash `json:"hash"`
	// Label is the label as the user typed it (trimmed, NFC).
	Label string `json:"label,omitempty"`
	// LabelKey is the label folded for comparison. Two tokens of one owner
	// never share a non-empty LabelKey; an empty key is never compared.
	LabelKey string `json:"label_key,omitempty"`
	// Scopes granted to the token.
	Scopes []string `json:"scopes,omitempty"`
	// AllowedIPs are CIDR prefixes in canonical form; empty means any.
	AllowedIPs []string `json:"allowed_ips,omitempty"`
	// Enabled tokens work; a disabled one is kept but refused.
	Enabled bool `json:"enabled"`
	// CreatedAt is set by the caller.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the zero time for a token that never expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is the zero time when the token was never used.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// LastUsedIP is the client address of the last use.
	LastUsedIP string `json:"last_used_ip,omitempty"`
	// LastUsedHost is the site (Host) the last use asked for.
	LastUsedHost string `json:"last_used_host,omitempty"`
	// RecentAddresses are the distinct client addresses the token was
	// used from most recently, newest first, at most MaxRecentAddresses
	// (see MergeAddress): each with the time and site of its newest use.
	RecentAddresses []AddressUse `json:"recent_addresses,omitempty"`
	// ActiveAt is when the token was last switched on again or rotated
	// (zero: never): the dormancy rule (package policy) counts a token's
	// idle time from the latest of CreatedAt, LastUsedAt and ActiveAt, so
	// a token switched back on is not switched off again at once.
	ActiveAt time.Time `json:"active_at,omitzero"`
	// DormancyWarnedAt is when the token was warned that it will be
	// switched off for disuse (zero: never). A warning older than the
	// token's latest activity no longer counts.
	DormancyWarnedAt time.Time `json:"dormancy_warned_at,omitzero"`
	// Previous are the secrets the token had before RotateToken gave it
	// new ones, each usable until its own end (an overlap); ended ones
	// stay here, refused, until the next rotation drops them.
	Previous []PreviousSecret `json:"previous,omitempty"`
}

// AddressUse is the newest use of a token from one client address.
type AddressUse struct {
	// IP is the client address.
	IP string `json:"ip"`
	// LastUsedAt is the newest use from IP.
	LastUsedAt time.Time `json:"last_used_at"`
	// Host is the site (Host) that use asked for.
	Host string `json:"host,omitempty"`
}

// MaxRecentAddresses bounds Token.RecentAddresses (GitLab keeps five).
const MaxRecentAddresses = 5

// MergeAddress returns recent with a use from ip at at for host merged
// in: the entry of ip moves to its place with the newer time and its
// host (an older use changes nothing), a new ip joins; the list stays
// sorted newest first (ties: by IP) and keeps the MaxRecentAddresses
// newest. An empty ip changes nothing. recent is not modified.
func MergeAddress(recent []AddressUse, ip string, at time.Time, host string) []AddressUse {
	if ip == "" || at.IsZero() {
		return recent
	}
	out := make([]AddressUse, 0, min(len(recent)+1, MaxRecentAddresses+1))
	found := false
	for _, a := range recent {
		if a.IP == ip {
			found = true
			if at.After(a.LastUsedAt) {
				a.LastUsedAt, a.Host = at, host
			}
		}
		out = append(out, a)
	}
	if !found {
		out = append(out, AddressUse{IP: ip, LastUsedAt: at, Host: host})
	}
	slices.SortStableFunc(out, func(a, b AddressUse) int {
		return cmp.Or(b.LastUsedAt.Compare(a.LastUsedAt), strings.Compare(a.IP, b.IP))
	})
	if len(out) > MaxRecentAddresses {
		out = out[:MaxRecentAddresses]
	}
	return out
}

// MaxHostLength bounds a recorded site (Token.LastUsedHost, AddressUse.Host),
// in bytes: a DNS name (253) with a port, or a bracketed IPv6 address with
// a zone and a port, fits.
const MaxHostLength = 270

// CleanHost returns host (a request's Host, which the client chooses) as
// it is recorded with a use: every character a Host header may not hold
// (RFC 3986's reg-name, IP literal and port characters; over HTTP/2 and
// HTTP/3 a client can send spaces, tabs, non-ASCII and terminal controls)
// becomes '?', and the result is cut to MaxHostLength bytes. So a site
// shown in a listing, the legacy report or the CLI's tables is one
// printable word of bounded size, whatever a catch-all site accepted.
func CleanHost(host string) string {
	clean := len(host) <= MaxHostLength
	for i := 0; clean && i < len(host); i++ {
		clean = hostByte(host[i])
	}
	if clean {
		return host
	}
	var b strings.Builder
	for _, r := range host {
		if b.Len() >= MaxHostLength {
			break
		}
		if r < 0x80 && hostByte(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// hostByte reports whether c may appear in a Host header (the set Go's
// HTTP/1 server accepts).
func hostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0
}

// PreviousSecret is a secret a token had before a rotation: the hash is
// still found by LookupToken until Until.
type PreviousSecret struct {
	Hash  TokenHash `json:"hash"`
	Until time.Time `json:"until"`
}

// MaxPreviousSecrets bounds how many previous secrets of one token stay
// usable at once: a rotation beyond it ends the one that ends first.
const MaxPreviousSecrets = 4

// Hashes returns the token's current hash followed by its previous ones
// (ended or not): every hash a backend may have indexed for it.
func (t Token) Hashes() []TokenHash {
	hs := make([]TokenHash, 0, 1+len(t.Previous))
	hs = append(hs, t.Hash)
	for _, p := range t.Previous {
		hs = append(hs, p.Hash)
	}
	return hs
}

// SecretOf says whether h is a secret of the token at now: its current
// hash (until is zero) or a previous one that has not ended (until is
// its end).
func (t Token) SecretOf(h TokenHash, now time.Time) (until time.Time, ok bool) {
	if h == t.Hash {
		return time.Time{}, true
	}
	for _, p := range t.Previous {
		if p.Hash == h && now.Before(p.Until) {
			return p.Until, true
		}
	}
	return time.Time{}, false
}

// HasHash says whether h is the token's current or a previous hash, ended
// or not (a consistency check's view: such an index entry is no stray).
func (t Token) HasHash(h TokenHash) bool {
	return h == t.Hash || slices.ContainsFunc(t.Previous, func(p PreviousSecret) bool { return p.Hash == h })
}

// Rotated is what RotateToken makes of t at now: next becomes the hash,
// the old hash a previous secret until until (see RotatePrevious). It
// also returns the hashes that stop being indexed. A rotation counts as
// activity: ActiveAt becomes now. expiresBy, when not zero, bounds the
// expiry: a token that never expires or expires later gets it, and no
// previous secret outlasts it.
func (t Token) Rotated(next TokenHash, now, until, expiresBy time.Time) (Token, []TokenHash) {
	out := t
	out.Hash = next
	out.ActiveAt = now
	bounded := !expiresBy.IsZero() && (out.ExpiresAt.IsZero() || out.ExpiresAt.After(expiresBy))
	if bounded {
		out.ExpiresAt = expiresBy
		if until.After(expiresBy) {
			until = expiresBy
		}
	}
	var dropped []TokenHash
	out.Previous, dropped = RotatePrevious(t.Previous, t.Hash, now, until)
	if bounded {
		out.Previous = slices.Clone(out.Previous)
		for i := range out.Previous {
			if out.Previous[i].Until.After(expiresBy) {
				out.Previous[i].Until = expiresBy
			}
		}
	}
	return out, dropped
}

// RotatePrevious is the previous secrets after a rotation at now that
// replaces the secret old: old joins them until until (left out when
// until is not after now), those that ended are dropped and the rest keep
// their own ends; beyond MaxPreviousSecrets the ones that end first go.
// It also returns the hashes dropped (old among them when left out).
func RotatePrevious(previous []PreviousSecret, old TokenHash, now, until time.Time) (keep []PreviousSecret, dropped []TokenHash) {
	for _, p := range previous {
		if now.Before(p.Until) {
			keep = append(keep, p)
		} else {
			dropped = append(dropped, p.Hash)
		}
	}
	if now.Before(until) {
		keep = append(keep, PreviousSecret{Hash: old, Until: until})
	} else {
		dropped = append(dropped, old)
	}
	for len(keep) > MaxPreviousSecrets {
		first := 0
		for i, p := range keep {
			if p.Until.Before(keep[first].Until) {
				first = i
			}
		}
		dropped = append(dropped, keep[first].Hash)
		keep = append(keep[:first:first], keep[first+1:]...)
	}
	return keep, dropped
}

// LastUntil returns the latest end among the previous secrets that still
// work at now, or nil when none does: the replaced_valid_until of the
// token and OAuth key views.
func LastUntil(previous []PreviousSecret, now time.Time) *time.Time {
	var last *time.Time
	for _, p := range previous {
		if p.Until.After(now) && (last == nil || p.Until.After(*last)) {
			last = &p.Until
		}
	}
	return last
}

// Grant is what an edge check needs about a token: the token and its owner
// as they are now, read in one store round trip where the backend allows.
type Grant struct {
	Token Token
	Owner User
	// PreviousUntil is not zero when the hash looked up is a previous
	// secret of Token (see RotateToken): it is usable until then.
	PreviousUntil time.Time
}

// LastUse records one use of a token, written in batches.
type LastUse struct {
	Owner   string
	TokenID string
	At      time.Time
	IP      string
	// Host is the site the request was for (for the legacy migration view).
	Host string
	// Hash is the token's hash, for the lifecycle event of a use from a
	// new address (package events); backends do not store it.
	Hash TokenHash
}

// Client is an OAuth client (an "OAuth key" in seed 001): a machine
// identity that gets access tokens with its id and secret.
type Client struct {
	// ID is the public client_id.
	ID string `json:"id"`
	// Name is what the administrator called it.
	Name string `json:"name"`
	// SecretHash is the SHA-256 of the client secret.
	SecretHash TokenHash `json:"secret_hash"`
	// AllowedIPs are CIDR prefixes in canonical form; empty means any.
	AllowedIPs []string `json:"allowed_ips,omitempty"`
	// Scopes the client may be granted.
	Scopes []string `json:"scopes,omitempty"`
	// PreviousSecrets are secrets a rotation replaced, each accepted
	// until its own end (see RotatePrevious).
	PreviousSecrets []PreviousSecret `json:"previous_secrets,omitempty"`
	// Enabled clients get tokens and their tokens work.
	Enabled bool `json:"enabled"`
	// CreatedAt and UpdatedAt are set by the caller.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Names of the documents the gateway keeps (see Store.GetDocument).
const (
	// DocKeyring is the signing keyring (package keyring).
	DocKeyring = "keyring"
	// DocACL is the permission list (package acl).
	DocACL = "acl"
	// DocAssertionKeysPrefix, followed by an algorithm (ES256, RS256,
	// EdDSA), names a keyring of identity assertion keys (package
	// assertion), kept like DocKeyring but apart from it.
	DocAssertionKeysPrefix = "assertion_keys_"
)

// Denial puts one access token (by its jti) on the deny-list until it
// would have expired anyway.
type Denial struct {
	JTI   string
	Until time.Time
}

// Session is a signed-in browser. It is kept under the SHA-256 of the
// cookie value (ID), so a copy of the store holds no usable cookie.
type Session struct {
	// ID is the SHA-256 of the cookie value.
	ID TokenHash `json:"id"`
	// User is the canonical user name.
	User string `json:"user"`
	// CSRF is the random per-session CSRF secret (base64url, 32 bytes of
	// entropy).
	CSRF string `json:"csrf"`
	// CreatedAt is when the user signed in.
	CreatedAt time.Time `json:"created_at"`
	// SeenAt is the last activity (for the idle timeout).
	SeenAt time.Time `json:"seen_at"`
	// ExpiresAt is the absolute end; the backend forgets the session
	// after this.
	ExpiresAt time.Time `json:"expires_at"`
	// IP is the client address at sign-in.
	IP string `json:"ip,omitempty"`
	// UserAgent is the browser's User-Agent at sign-in, truncated to 256
	// bytes by the session manager.
	UserAgent string `json:"user_agent,omitempty"`
	// Credential identifies the password the session was signed in with
	// (a hash of its hash, set by the session manager): a session whose
	// user has another password since is refused, even one that was being
	// made while the password changed.
	Credential string `json:"credential,omitempty"`
	// TokenLogin is the user's token_login when the session began: if it
	// has been switched off since, the session is refused.
	TokenLogin bool `json:"token_login,omitempty"`
}

// MaxSessionsPerUser bounds the live sessions of one user in every
// backend: CreateSession of one more removes the oldest (by CreatedAt,
// then ID), so that signing in again and again cannot grow the store.
const MaxSessionsPerUser = 64

// EventKind says what an Event invalidates.
type EventKind uint8

// Event kinds.
const (
	// EventToken: the token with Event.Hash changed or was deleted.
	EventToken EventKind = iota + 1
	// EventUser: the user Event.Owner changed or was deleted; every token
	// the user owns must be looked up again.
	EventUser
	// EventReset: events may have been lost (a subscription was broken and
	// is back); drop everything cached.
	EventReset
	// EventClient: the OAuth client Event.ID changed or was deleted.
	EventClient
	// EventDocument: the document named Event.ID changed; reload it.
	EventDocument
	// EventDenied: the access token with jti Event.ID was put on the
	// deny-list until Event.Until.
	EventDenied
)

// Event announces a change that cached decisions must not outlive.
type Event struct {
	Kind  EventKind
	Hash  TokenHash
	Owner string
	// ID is the client id (EventClient), the jti (EventDenied) or the
	// document name (EventDocument).
	ID string
	// Until is when a denial ends (EventDenied).
	Until time.Time
}

// TokenEvent announces a change of the token with hash h.
func TokenEvent(h TokenHash) Event { return Event{Kind: EventToken, Hash: h} }

// UserEvent announces a change of the user name and all its tokens.
func UserEvent(name string) Event { return Event{Kind: EventUser, Owner: name} }

// ClientEvent announces a change of the OAuth client id.
func ClientEvent(id string) Event { return Event{Kind: EventClient, ID: id} }

// CheckReport is the result of a consistency check (see Store.Check).
type CheckReport struct {
	// Problems found, one human-readable line each.
	Problems []string `json:"problems"`
	// Repaired is how many of them were fixed (only when repair was asked).
	Repaired int `json:"repaired"`
}

// Store is the state behind the gateway: every role below, plus Close.
// All methods are safe for concurrent use. A method that fails leaves the
// store as it was. A consumer asks for the narrowest role it uses (the
// brute-force limiter takes FailureCounters, the edge check Tokens), so
// that what it may touch is in its signature.
//
// Every successful write that changes what a node may have cached
// (creating, updating or deleting a token, a user or a client; the
// keyring; a denial) delivers an Event to this process's subscribers
// before it returns, and announces it to other processes sharing the
// store (Redis pub/sub) so that every node drops its cached copy. When a
// re-denial keeps an earlier, later Until, the event carries the Until
// that is kept.
type Store interface {
	Users
	Tokens
	Clients
	Documents
	Denials
	FailureCounters
	Sessions
	Events
	Checker
	Pinger

	// Close releases the store's resources.
	Close() error
}

// Users are the accounts that may own tokens.
type Users interface {
	// CreateUser adds u; ErrUserExists if the name is taken.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user or ErrNotFound.
	GetUser(ctx context.Context, name string) (User, error)
	// ListUsers returns all users sorted by name.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser reads the user, applies fn and writes the result
	// atomically. If fn returns an error nothing is written and that error
	// is returned. fn must not change Name, and may run more than once (a
	// backend retries when a concurrent write got in first), so it must
	// have no side effects. ErrNotFound if absent.
	UpdateUser(ctx context.Context, name string, fn func(*User) error) (User, error)
	// DeleteUser removes the user, every token it owns and its sessions
	// (see Sessions). ErrNotFound if absent.
	DeleteUser(ctx context.Context, name string) error
}

// Tokens are the stored tokens (personal and legacy), found by owner and
// id or by the hash of their secret.
type Tokens interface {
	// CreateToken stores t. It fails with ErrNotFound if the owner does
	// not exist, ErrLabelTaken if t.LabelKey is not empty and another token
	// of the owner has it, and ErrTokenLimit if the owner already has limit
	// tokens of t.Kind or more (limit <= 0: no limit; each kind is capped
	// on its own, so legacy tokens never use up the room for PATs). Atomic:
	// the check and the insert see the same data, and on failure nothing of
	// t is stored, neither the record nor its hash index. Every hash of
	// t is indexed (t.Previous too: an import brings them).
	CreateToken(ctx context.Context, t Token, limit int) error
	// GetToken returns one token of owner, or ErrNotFound.
	GetToken(ctx context.Context, owner, id string) (Token, error)
	// ListTokens returns owner's tokens sorted by CreatedAt then ID
	// (ErrNotFound if the owner does not exist).
	ListTokens(ctx context.Context, owner string) ([]Token, error)
	// UpdateToken applies fn to the token atomically; like UpdateUser's,
	// fn may run more than once. fn must not change ID, Owner, Kind, Hash
	// or Previous (the write is refused if it does); the event covers
	// every hash of the token (Token.Hashes). A changed
	// LabelKey is checked for uniqueness (ErrLabelTaken). If fn returns an
	// error nothing is written. ErrNotFound if the token does not exist.
	UpdateToken(ctx context.Context, owner, id string, fn func(*Token) error) (Token, error)
	// DeleteToken removes the token and its hash indexes (previous
	// secrets' too) and returns what was
	// removed; ErrNotFound if it does not exist.
	DeleteToken(ctx context.Context, owner, id string) (Token, error)
	// LookupToken finds a token by the hash of its secret, together with
	// its owner. ErrNotFound if no token has that hash. A previous secret
	// (see RotateToken) is found until its end, by the store's clock, with
	// Grant.PreviousUntil set; after it, ErrNotFound. Grant.Token's
	// RecentAddresses may be left empty: a backend need not read them on
	// this path (GetToken and ListTokens return them).
	LookupToken(ctx context.Context, h TokenHash) (Grant, error)
	// RotateToken gives the token a new secret: its hash becomes next and
	// the hash it had stays usable until until (an until not after now
	// ends it at once); see Token.Rotated for the previous secrets of
	// earlier rotations, which keep their own ends and are never
	// extended. Atomic like CreateToken: next is refused (a non-sentinel
	// error) if another token has it, and on failure the token keeps its
	// secrets. expiresBy, when not zero, bounds the token's expiry: a
	// token that never expires or expires later gets it (the token
	// policy's maximum lifetime holds for the new secret); a rotation
	// never lengthens a token's life. Announces EventToken for every hash
	// it touched. ErrNotFound if the token does not exist.
	RotateToken(ctx context.Context, owner, id string, next TokenHash, now, until, expiresBy time.Time) (Token, error)

	LastUses
}

// LastUses records when and from where tokens were last used.
type LastUses interface {
	// RecordLastUse writes a batch of last-use times (with IP and Host).
	// A batch may hold several uses of one token (from different
	// addresses): the newest becomes the token's last use, and each is
	// merged into its RecentAddresses (see MergeAddress), atomically.
	// Entries for tokens that no longer exist are ignored; an older time
	// never overwrites a newer one, for the last use as for an address. It announces no event: last use is not a decision input,
	// and an event per batch would empty every node's cache.
	RecordLastUse(ctx context.Context, uses []LastUse) error
}

// Clients are the OAuth clients.
type Clients interface {
	// CreateClient stores c; ErrClientExists if the id is taken.
	// Announces EventClient.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns a client or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns all clients sorted by CreatedAt then ID.
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient applies fn atomically (fn must not change ID, and may
	// run more than once). ErrNotFound if absent; fn's error aborts.
	// Announces EventClient.
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) (Client, error)
	// DeleteClient removes a client and returns it; ErrNotFound if absent.
	// Announces EventClient.
	DeleteClient(ctx context.Context, id string) (Client, error)
}

// Documents are the named documents the gateway keeps whole (the keyring,
// the ACL).
type Documents interface {
	// GetDocument returns the named document (DocKeyring, DocACL), opaque
	// bytes owned by the caller; ErrNotFound before its first update.
	GetDocument(ctx context.Context, name string) ([]byte, error)
	// UpdateDocument replaces the named document atomically with
	// fn(current); current is nil when there is none. fn may run more than
	// once; its error aborts. Returns what was written. Announces
	// EventDocument with the name.
	UpdateDocument(ctx context.Context, name string, fn func(current []byte) ([]byte, error)) ([]byte, error)
}

// Denials are the access tokens refused before they expire.
type Denials interface {
	// Deny puts an access token's jti on the deny-list until d.Until
	// (entries past Until disappear by themselves). Announces EventDenied.
	Deny(ctx context.Context, d Denial) error
	// ListDenied returns the denials that have not ended.
	ListDenied(ctx context.Context) ([]Denial, error)
}

// FailureCounters count failed guesses at secrets within a window.
type FailureCounters interface {
	// CountFailure adds one to the failure counter named key and returns
	// the count within the current window, which starts at the first
	// failure and lasts window.
	CountFailure(ctx context.Context, key string, window time.Duration) (int64, error)
	// FailureCount returns the count within the current window without
	// changing it (0 for an unknown key or an ended window), so that a
	// locked account is refused before any password work.
	FailureCount(ctx context.Context, key string) (int64, error)
	// ClearFailures resets the counter named key (nil for an unknown key).
	ClearFailures(ctx context.Context, key string) error
}

// Sessions are the signed-in browsers of the web pages. They announce no
// events: a session is read from the store on every request, so no node
// caches one. A session is live until its ExpiresAt (by the store's
// clock); one that has reached it is never returned, and the backend
// removes it by itself (Redis: key expiry; bbolt: lazily, see boltstore).
// A user has at most MaxSessionsPerUser live sessions.
type Sessions interface {
	// CreateSession stores s (ErrExists if its ID is taken by a live
	// session, ErrNotFound if s.User does not exist). When s.User already
	// has MaxSessionsPerUser live sessions, the oldest is removed in the
	// same write. A session whose ExpiresAt has passed is not kept.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns a session that has not reached ExpiresAt, or
	// ErrNotFound.
	GetSession(ctx context.Context, id TokenHash) (Session, error)
	// TouchSession sets SeenAt to at unless SeenAt is later already (it
	// never moves backwards); ErrNotFound if the session is gone or has
	// expired.
	TouchSession(ctx context.Context, id TokenHash, at time.Time) error
	// DeleteSession removes one session (ErrNotFound if absent or
	// expired).
	DeleteSession(ctx context.Context, id TokenHash) error
	// DeleteUserSessions removes every session of user and returns how
	// many live ones there were; 0, nil when none (or no such user).
	DeleteUserSessions(ctx context.Context, user string) (int, error)
}

// Events announce changes to the nodes that cache what the store holds.
type Events interface {
	// Subscribe calls fn for every Event, from this process and from
	// others, until ctx is done; nothing is delivered once the cancel has
	// returned. fn may be called from several goroutines at once; it must
	// be quick and must not call the store. Subscribe returns once the
	// subscription is in place, or an error if it cannot be set up.
	// After a broken subscription is restored it calls fn with EventReset.
	Subscribe(ctx context.Context, fn func(Event)) error
}

// Pinger tells whether the store can be reached.
type Pinger interface {
	// Ping makes the cheapest round trip the backend has (Redis: PING;
	// the embedded store: an empty read transaction) and returns its
	// error. The circuit breaker's probe (see Deferred) calls it.
	Ping(ctx context.Context) error
}

// Checker finds and repairs inconsistencies a crash could leave.
type Checker interface {
	// Check looks for inconsistencies a crash could leave between a
	// token's record and its hash index (and the user and client lists),
	// and repairs them when repair is true.
	Check(ctx context.Context, repair bool) (CheckReport, error)
}
