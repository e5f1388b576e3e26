// Package extjwt accepts JWTs issued elsewhere (seed 003 seen from the
// application's side): a site names the issuer, the audience, and either
// the issuer's JWKS URL or an HS256 shared secret; the token's claims are
// mapped to the identity headers.
package extjwt

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/jwks"
	"github.com/tokengate/tokengate/internal/jwt"
)

// EntryKind is the decision Kind and X-Auth-Token-Type of these tokens.
const EntryKind = "jwt"

// Leeway is allowed on exp and nbf.
const Leeway = 30 * time.Second

// keySource finds the key for a kid.
type keySource interface {
	Key(ctx context.Context, kid string) (*jwt.Key, error)
}

// Verifier checks one issuer's tokens.
type Verifier struct {
	issuer     string
	audience   string
	userClaim  string
	scopeClaim string
	keys       keySource
	types      map[string]bool // accepted typ values, normalised; "" is no typ
	now        func() time.Time
	salt       [32]byte
}

// DefaultTypes are the JOSE typ values accepted when none are configured:
// RFC 9068 access tokens only (typ "at+jwt", also spelled
// "application/at+jwt"). An OIDC ID token has typ "JWT" or none, so it is
// refused: RFC 8725 3.11 asks a verifier to tell the kinds of JWT an
// issuer makes apart by their typ.
var DefaultTypes = []string{"at+jwt"}

// NoType in a list of types accepts a token without a typ header.
const NoType = "none"

// Types checks a list of accepted typ values and returns it as a set
// (nil or empty: DefaultTypes). Values are compared as RFC 7515 4.1.9
// says: case-insensitively, with "application/" optional; NoType stands
// for a token without typ.
func Types(list []string) (map[string]bool, error) {
	if len(list) == 0 {
		list = DefaultTypes
	}
	set := make(map[string]bool, len(list))
	for _, t := range list {
		n := normalType(t)
		switch {
		case strings.EqualFold(t, NoType):
			n = ""
		case n == "" || strings.ContainsAny(n, " \t,;\""):
			return nil, fmt.Errorf("typ %q is not a media type (e.g. at+jwt, or none for no typ)", t)
		}
		set[n] = true
	}
	return set, nil
}

// normalType lower-cases a typ (ASCII only: a media type is ASCII, and
// Unicode case folding would let "\u212a" match "k") and drops its
// "application/" prefix.
func normalType(t string) string {
	b := []byte(t)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return strings.TrimPrefix(string(b), "application/")
}

// Config configures a Verifier.
type Config struct {
	Issuer   string
	Audience string
	// JWKSURL, or else Secret (HS256), gives the keys.
	JWKSURL string
	Secret  []byte
	// UserClaim names the claim for X-Auth-User (default "sub");
	// ScopeClaim the claim for scopes (default "scope": a space-separated
	// string or an array; "scp" is also read when it is absent).
	UserClaim, ScopeClaim string
	// Types are the accepted JOSE typ values (see Types; default
	// DefaultTypes).
	Types []string
	// JWKS configures the key set's fetch; its AllowHTTPLoopback is the
	// only way to a plain http:// JWKSURL.
	JWKS jwks.Options
	Now  func() time.Time
}

// New returns a Verifier.
func New(c Config) (*Verifier, error) {
	if c.Issuer == "" || c.Audience == "" {
		return nil, errors.New("an external issuer needs issuer and audience")
	}
	if (c.JWKSURL == "") == (len(c.Secret) == 0) {
		return nil, errors.New("an external issuer needs exactly one of jwks_url and hs256_secret")
	}
	types, err := Types(c.Types)
	if err != nil {
		return nil, err
	}
	v := &Verifier{issuer: c.Issuer, audience: c.Audience, userClaim: c.UserClaim, scopeClaim: c.ScopeClaim, types: types, now: c.Now}
	if v.userClaim == "" {
		v.userClaim = "sub"
	}
	if v.scopeClaim == "" {
		v.scopeClaim = "scope"
	}
	if v.now == nil {
		v.now = time.Now
	}
	if c.JWKSURL != "" {
		if c.JWKS.Now == nil {
			c.JWKS.Now = v.now
		}
		if v.keys, err = jwks.New(c.JWKSURL, c.JWKS); err != nil {
			return nil, err
		}
	} else {
		k, err := jwt.FromPublic("", jwt.HS256, c.Secret)
		if err != nil {
			return nil, err
		}
		v.keys = secretKey{k}
	}
	// The salt keeps this verifier's cache entries apart from the
	// gateway's own tokens and from other sites' verifiers.
	if _, err := rand.Read(v.salt[:]); err != nil {
		return nil, err
	}
	return v, nil
}

// secretKey is the single HS256 key of a shared-secret issuer; it answers
// for any kid.
type secretKey struct{ k *jwt.Key }

func (s secretKey) Key(context.Context, string) (*jwt.Key, error) { return s.k, nil }

// Issuer is the iss this verifier accepts.
func (v *Verifier) Issuer() string { return v.issuer }

// CacheKey maps a token hash to this verifier's cache key.
func (v *Verifier) CacheKey(h [32]byte) [32]byte {
	for i := range h {
		h[i] ^= v.salt[i]
	}
	return h
}

// Verify checks a token and returns its decision. A refusal that
// will not change comes back as a decision with Refusal; an error (the key
// set is unavailable, nbf in the future) is not cached.
func (v *Verifier) Verify(ctx context.Context, raw string) (*decision.Decision, error) {
	invalid := func(why string) (*decision.Decision, error) {
		return &decision.Decision{Refusal: fmt.Errorf("%w: %s", apierr.ErrInvalidToken, why)}, nil
	}
	tok, err := jwt.Parse(raw)
	if err != nil {
		return invalid(err.Error())
	}
	// Before the key: an ID token (or any other kind) is refused without
	// a JWKS fetch. The typ is signed, so the verdict holds for the token.
	if !v.types[normalType(tok.Header.Typ)] {
		return invalid("typ is not an accepted access token type")
	}
	key, err := v.keys.Key(ctx, tok.Header.Kid)
	switch {
	case errors.Is(err, jwks.ErrUnavailable):
		return nil, fmt.Errorf("%w: %v", apierr.ErrUnavailable, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", apierr.ErrInvalidToken, err) // not cached: a rollover may add it
	}
	if err := tok.Verify(key); err != nil {
		return invalid(err.Error())
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil { // exact names, numbers as json.Number
		return invalid("malformed claims")
	}
	now := v.now()
	iss, _ := claims["iss"].(string)
	exp, expOK := number(claims["exp"])
	nbf, nbfOK := number(claims["nbf"])
	user, _ := claims[v.userClaim].(string)
	switch {
	case iss != v.issuer:
		return invalid("wrong issuer")
	case !audience(claims["aud"], v.audience):
		return invalid("wrong audience")
	case !expOK:
		return invalid("no exp claim")
	case !now.Before(time.Unix(exp, 0).Add(Leeway)):
		return &decision.Decision{Refusal: apierr.ErrExpiredToken}, nil
	case nbfOK && now.Add(Leeway).Before(time.Unix(nbf, 0)):
		return nil, fmt.Errorf("%w: the token is not valid yet", apierr.ErrInvalidToken)
	case user == "":
		return invalid("no " + v.userClaim + " claim")
	case hasControl(user):
		// It goes into a header: refuse it here rather than fail later.
		return invalid("control characters in the " + v.userClaim + " claim")
	}
	scopes := scopesOf(claims, v.scopeClaim)
	jti, _ := claims["jti"].(string)
	return &decision.Decision{
		Owner: "issuer:" + v.issuer, Issuer: v.issuer, User: user, TokenID: jti, Kind: EntryKind,
		ScopeHeader: strings.Join(scopes, " "),
		ExpiresAt:   time.Unix(exp, 0).Add(Leeway).UnixNano(),
	}, nil
}

func number(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}

func audience(v any, want string) bool {
	switch a := v.(type) {
	case string:
		return a == want
	case []any:
		return slices.ContainsFunc(a, func(x any) bool { s, _ := x.(string); return s == want })
	}
	return false
}

// scopesOf reads a space-separated string or an array of strings.
func scopesOf(claims map[string]any, name string) []string {
	v, ok := claims[name]
	if !ok && name == "scope" {
		v = claims["scp"]
	}
	var list []any
	switch s := v.(type) {
	case string:
		for _, f := range strings.Fields(s) {
			list = append(list, f)
		}
	case []any:
		list = s
	}
	var out []string
	for _, x := range list {
		if str, ok := x.(string); ok && str != "" && !strings.ContainsAny(str, " \t") && !hasControl(str) {
			out = append(out, str)
		}
	}
	return out
}

// hasControl reports whether s has an ASCII control character (which a
// header value cannot carry).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
