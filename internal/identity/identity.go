// Package identity sets the headers that tell an upstream who the caller
// is, and removes every client-sent copy of them.
//
// Header names are matched after folding case and '_' to '-', because
// many upstream frameworks (CGI, PHP, some proxies) read "X_Auth_User" and
// "X-Auth-User" as the same header: a client must not be able to smuggle
// one past the gateway by spelling it differently.
package identity

import (
	"fmt"
	"net/http"
	"strings"
)

// Headers names the identity headers.
type Headers struct {
	// User carries the user name (or, for OAuth tokens, the key's name).
	User string `json:"user,omitempty"`
	// TokenType carries the token kind: "pat", "legacy", "oauth", "jwt".
	TokenType string `json:"token_type,omitempty"`
	// TokenID carries the token's public id.
	TokenID string `json:"token_id,omitempty"`
	// Scopes carries the token's scopes, separated by spaces.
	Scopes string `json:"scopes,omitempty"`
	// Issuer carries who issued the token: an external issuer's "iss",
	// or the gateway's own issuer for its own tokens. A user is the pair
	// (Issuer, User): an external "alice" is not the gateway's "alice".
	Issuer string `json:"issuer,omitempty"`
}

// DefaultHeaders are the names used when none are configured.
var DefaultHeaders = Headers{
	User:      "X-Auth-User",
	TokenType: "X-Auth-Token-Type",
	TokenID:   "X-Auth-Token-Id",
	Scopes:    "X-Auth-Scopes",
	Issuer:    "X-Auth-Issuer",
}

// AssertionHeader is the default name of the header that carries the
// signed identity assertion (package assertion). It is an identity header
// like the others: Guarded always lists it, so a client's copy is removed
// whether a site sends assertions or not.
const AssertionHeader = "X-Auth-Assertion"

// WithDefaults fills empty names from DefaultHeaders and canonicalises all.
func (hn Headers) WithDefaults() Headers {
	pick := func(v, def string) string {
		if v == "" {
			v = def
		}
		return http.CanonicalHeaderKey(v)
	}
	return Headers{
		User:      pick(hn.User, DefaultHeaders.User),
		TokenType: pick(hn.TokenType, DefaultHeaders.TokenType),
		TokenID:   pick(hn.TokenID, DefaultHeaders.TokenID),
		Scopes:    pick(hn.Scopes, DefaultHeaders.Scopes),
		Issuer:    pick(hn.Issuer, DefaultHeaders.Issuer),
	}
}

// Identity is who the caller is, as the upstream is told.
type Identity struct {
	User      string
	TokenType string
	TokenID   string
	Scopes    string
	Issuer    string
	// Stable, if set, points at the same five values (user, token type,
	// token id, scopes, issuer) where they outlive the request (in a cache entry),
	// so that placeholders can refer to them without allocating. (Header
	// values are always copied: see Set.)
	Stable [5]*string
}

// stringRef is a placeholder value that reads a string where it lives.
// It is pointer-shaped, so putting it in an interface does not allocate.
type stringRef struct{ s *string }

// String implements fmt.Stringer, which Caddy's replacer reads.
func (r stringRef) String() string { return *r.s }

// Placeholder returns the value of PlaceholderNames[i]: a reference to the
// stable value (no allocation), or the string itself.
func (id Identity) Placeholder(i int) any {
	if p := id.Stable[i]; p != nil {
		return stringRef{p}
	}
	return [...]string{id.User, id.TokenType, id.TokenID, id.Scopes, id.Issuer}[i]
}

// PlaceholderNames are the placeholders an identity sets, in order.
var PlaceholderNames = [5]string{"http.auth.user.id", "http.auth.user.token_type", "http.auth.user.token_id", "http.auth.user.scopes", "http.auth.user.issuer"}

// Names lists the five header names.
func (hn Headers) Names() []string {
	return []string{hn.User, hn.TokenType, hn.TokenID, hn.Scopes, hn.Issuer}
}

// Guarded lists the names no client may send: the configured names
// and, when some are renamed, the default names too, because an upstream
// may still read those, and AssertionHeader (each name once).
func (hn Headers) Guarded() []string {
	names := hn.Names()
	for _, d := range append(DefaultHeaders.Names(), AssertionHeader) {
		if !matchesAny(d, names) {
			names = append(names, d)
		}
	}
	return names
}

// Check refuses header names that cannot carry an identity: names that
// are not HTTP tokens, and the fields HTTP itself gives a meaning
// (hop-by-hop fields a proxy drops, framing, Host, credentials).
func (hn Headers) Check() error {
	for _, n := range hn.Names() {
		if n == "" {
			continue
		}
		for i := 0; i < len(n); i++ {
			if !isTokenChar(n[i]) {
				return fmt.Errorf("identity header name %q is not a valid header field name", n)
			}
		}
		if notATrailer(n) || matchesAny(n, reserved) {
			return fmt.Errorf("identity header name %q is a field HTTP gives a meaning of its own", n)
		}
	}
	return nil
}

// reserved are fields that proxies drop (Upgrade) or set themselves, besides
// those forbidden in trailers (which include the other hop-by-hop fields):
// no identity header may be named so, and none arrives as a trailer (a
// trailer X-Forwarded-For would reach an upstream that merges trailers
// beside the one the proxy set).
var reserved = []string{"Upgrade", "Alt-Svc", "Cookie", "Set-Cookie", "Forwarded", "X-Forwarded-For",
	"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Real-Ip"}

// isTokenChar reports whether c may appear in a header field name (RFC
// 9110 5.6.2 tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Set writes id into h. Remove client-sent copies (Names) first. The values share one
// array made for this request: the header slices must not point at
// anything shared, because later handlers (Caddy's request_header replace,
// say) may write into a value slice in place.
func (hn Headers) Set(h http.Header, id Identity) {
	v := &[5]string{id.User, id.TokenType, id.TokenID, id.Scopes, id.Issuer}
	h[hn.User] = v[0:1:1]
	h[hn.TokenType] = v[1:2:2]
	h[hn.TokenID] = v[2:3:3]
	if id.Scopes != "" {
		h[hn.Scopes] = v[3:4:4]
	}
	if id.Issuer != "" {
		h[hn.Issuer] = v[4:5:5]
	}
}

// Take removes every header of h whose name matches name after folding
// case and '_' to '-', and returns all their values.
func Take(h http.Header, name string) []string {
	var vals []string
	for k, v := range h {
		if sameName(k, name) {
			vals = append(vals, v...)
			delete(h, k)
		}
	}
	return vals
}

// Remove removes every spelling of each of names from h (compared after
// folding case and '_' to '-'), in one pass, without allocating.
func Remove(h http.Header, names []string) {
	for k := range h {
		if matchesAny(k, names) {
			delete(h, k)
		}
	}
}

// sameName compares header names ASCII-case-insensitively with '_' and
// '-' equal.
func sameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

func fold(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}
