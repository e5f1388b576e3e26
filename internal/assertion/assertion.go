// Package assertion makes the signed identity assertion the gateway sends
// an upstream beside (or instead of) the plain identity headers: a short
// JWT, signed with a key of the gateway's own (never the OAuth signing
// keyring), that says who the caller is in one shape for every token kind.
// An upstream verifies it against the gateway's assertion JWKS, so that a
// request that did not come through the gateway (no assertion, or one that
// does not verify) is recognisable.
//
// Signing costs a signature (ES256 and EdDSA about 50µs, RS256 about
// 1.5ms on a small VM), so a
// Signer keeps the assertion it made for a decision and a client address
// and hands it out again while more than half of its lifetime is left.
package assertion

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store"
)

// Type is the "typ" of an assertion's JOSE header.
const Type = "tokengate-assertion+jwt"

// DefaultHeader is the request header that carries the assertion.
const DefaultHeader = identity.AssertionHeader

// Bounds and defaults of an assertion's lifetime.
const (
	DefaultLifetime = time.Minute
	MinLifetime     = 5 * time.Second
	MaxLifetime     = time.Hour
)

// DefaultAlgorithm signs assertions when none is configured.
const DefaultAlgorithm = jwt.ES256

// MaxEntries bounds a Signer's cache of assertions.
const MaxEntries = 10000

// Subject namespaces: where the subject's name comes from.
const (
	// NamespaceUser: a gateway user (personal access tokens, legacy tokens).
	NamespaceUser = "user"
	// NamespaceOAuthClient: an OAuth key's client id (the gateway's own
	// access tokens).
	NamespaceOAuthClient = "oauth_client"
	// NamespaceExternal: the "sub" of another issuer's JWT; sub_iss names
	// the issuer.
	NamespaceExternal = "external"
)

// DocumentName is the store document that keeps the assertion keys for
// alg: one keyring per algorithm, apart from the OAuth signing keyring.
func DocumentName(alg string) string { return store.DocAssertionKeysPrefix + alg }

// Claims is the payload of an assertion.
type Claims struct {
	// Issuer is the gateway ("iss").
	Issuer string `json:"iss"`
	// Subject is who the caller is ("sub"): a user name, an OAuth client
	// id or an external issuer's subject.
	Subject string `json:"sub"`
	// Namespace tells what Subject names: user, oauth_client, external.
	Namespace string `json:"sub_ns"`
	// SubjectIssuer is the external issuer's "iss" (namespace external only).
	SubjectIssuer string `json:"sub_iss,omitempty"`
	// TokenKind is the kind of the token presented: pat, legacy, oauth, jwt.
	TokenKind string `json:"token_kind"`
	// TokenID is the token's public id (a jti for JWTs).
	TokenID string `json:"token_id"`
	// Scope is the token's scopes, separated by spaces ("" if none).
	Scope string `json:"scope,omitempty"`
	// ClientIP is the client address as Caddy computed it (honouring
	// trusted_proxies only); omitted if unknown.
	ClientIP string `json:"client_ip,omitempty"`
	// Audience is the upstream the assertion is for ("aud").
	Audience string `json:"aud"`
	// IssuedAt and Expires are Unix seconds ("iat", "exp").
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// ID is the assertion's own random id ("jti"). An assertion is reused
	// for the same token and address while it is fresh: the jti names the
	// assertion, not the request.
	ID string `json:"jti"`
}

// Keys gives the current assertion keys (a keyring.Holder).
type Keys interface {
	Get(ctx context.Context) (*keyring.Keys, error)
}

// Options configure a Signer.
type Options struct {
	// Issuer is the "iss" of every assertion.
	Issuer string
	// Audience is the "aud" of every assertion.
	Audience string
	// Lifetime of an assertion (default DefaultLifetime).
	Lifetime time.Duration
	// Keys give the signing key. Ignored when Key is set.
	Keys Keys
	// Key, if set, signs every assertion (an HS256 secret of the site's own).
	Key *jwt.Key
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxEntries bounds the cache (default MaxEntries).
	MaxEntries int
}

// Signer makes and caches assertions for one site. Safe for concurrent use.
type Signer struct {
	o Options

	mu      sync.RWMutex
	entries map[entryKey]entry
}

type entryKey struct {
	d  *decision.Decision
	ip netip.Addr
}

type entry struct {
	token string
	// kid is the key that signed it: a key change (a rotation) makes a
	// new assertion. (Not the *jwt.Key: every reload parses the keys anew.)
	kid string
	// reuseUntil is when the entry stops being handed out (Unix ns).
	reuseUntil int64
}

// NewSigner returns a Signer.
func NewSigner(o Options) *Signer {
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = MaxEntries
	}
	return &Signer{o: o, entries: make(map[entryKey]entry)}
}

// Lifetime returns the lifetime of the assertions.
func (s *Signer) Lifetime() time.Duration { return s.o.Lifetime }

// ErrNoKey: no key to sign with.
var ErrNoKey = errors.New("no identity assertion key")

// signingKey returns the key that signs now.
func (s *Signer) signingKey(ctx context.Context) (*jwt.Key, error) {
	if s.o.Key != nil {
		return s.o.Key, nil
	}
	if s.o.Keys == nil {
		return nil, ErrNoKey
	}
	ks, err := s.o.Keys.Get(ctx)
	if err != nil {
		return nil, err
	}
	return ks.Signer(), nil
}

// Assert returns the assertion for a request accepted with decision d
// from clientIP: the cached one while more than half its lifetime is left
// and the same key signs, else a new one. Errors are those of the key
// source (the store).
func (s *Signer) Assert(ctx context.Context, d *decision.Decision, clientIP netip.Addr) (string, error) {
	key, err := s.signingKey(ctx)
	if err != nil {
		return "", err
	}
	now := s.o.Now()
	k := entryKey{d: d, ip: clientIP}
	s.mu.RLock()
	e, ok := s.entries[k]
	s.mu.RUnlock()
	if ok && e.kid == key.ID && now.UnixNano() < e.reuseUntil {
		return e.token, nil
	}
	c := s.claims(d, clientIP, now)
	tok, err := jwt.Sign(key, Type, c)
	if err != nil {
		return "", fmt.Errorf("signing identity assertion: %w", err)
	}
	reuse := now.Add(s.o.Lifetime / 2).UnixNano()
	if end := c.Expires * int64(time.Second); end < reuse {
		reuse = end
	}
	s.mu.Lock()
	if len(s.entries) >= s.o.MaxEntries {
		s.sweep(now.UnixNano())
	}
	s.entries[k] = entry{token: tok, kid: key.ID, reuseUntil: reuse}
	s.mu.Unlock()
	return tok, nil
}

// sweep drops stale entries, and all of them if that is not enough (the
// cache is a cost saver, never needed). Called with mu held.
func (s *Signer) sweep(now int64) {
	for k, e := range s.entries {
		if now >= e.reuseUntil {
			delete(s.entries, k)
		}
	}
	if len(s.entries) >= s.o.MaxEntries {
		clear(s.entries)
	}
}

// Len returns the number of cached assertions.
func (s *Signer) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// claims renders decision d as claims issued at now. The assertion never
// outlives the token: exp is at most the token's expiry.
func (s *Signer) claims(d *decision.Decision, clientIP netip.Addr, now time.Time) Claims {
	c := Claims{
		Issuer: s.o.Issuer, Subject: d.User, Namespace: Namespace(d), TokenKind: d.Kind, TokenID: d.TokenID,
		Scope: d.ScopeHeader, Audience: s.o.Audience, IssuedAt: now.Unix(), Expires: now.Add(s.o.Lifetime).Unix(),
		ID: newID(),
	}
	if c.Namespace == NamespaceExternal {
		c.SubjectIssuer = d.Issuer
	}
	if clientIP.IsValid() {
		c.ClientIP = clientIP.String()
	}
	if d.ExpiresAt != 0 {
		if end := d.ExpiresAt / int64(time.Second); end < c.Expires {
			c.Expires = max(end, c.IssuedAt)
		}
	}
	return c
}

// Namespace tells what a decision's subject names.
func Namespace(d *decision.Decision) string {
	switch {
	case d.Issuer != "":
		return NamespaceExternal
	case strings.HasPrefix(d.Owner, accesstoken.OwnerPrefix):
		return NamespaceOAuthClient
	}
	return NamespaceUser
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
