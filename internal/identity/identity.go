// Package identity sets the headers that tell an upstream who the caller
// is, and removes every client-sent copy of them.
//
// Header names are matched after folding case and '_' to '-', because
// many upstream frameworks (CGI, PHP, some proxies) read "X_Auth_User" and
// "X-Auth-User" as the same header: a client must not be able to smuggle
// one past the gateway by spelling it differently.
package identity

import "net/http"

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
}

// DefaultHeaders are the names used when none are configured.
var DefaultHeaders = Headers{
	User:      "X-Auth-User",
	TokenType: "X-Auth-Token-Type",
	TokenID:   "X-Auth-Token-Id",
	Scopes:    "X-Auth-Scopes",
}

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
	}
}

// Identity is who the caller is, as the upstream is told.
type Identity struct {
	User      string
	TokenType string
	TokenID   string
	Scopes    string
	// Rendered, if set, holds the same values ready for use, so that
	// setting headers and placeholders allocates nothing.
	Rendered *Rendered
}

// Rendered is an identity prepared once and shared by the requests that
// carry the same token: header value slices (http.Header's methods replace
// or append to them, never write into them) and placeholder values already
// boxed as interfaces.
type Rendered struct {
	Headers      [4][]string
	Placeholders [4]any
}

// Render prepares id.
func Render(id Identity) *Rendered {
	return &Rendered{
		Headers:      [4][]string{{id.User}, {id.TokenType}, {id.TokenID}, {id.Scopes}},
		Placeholders: [4]any{id.User, id.TokenType, id.TokenID, id.Scopes},
	}
}

// PlaceholderNames are the placeholders set for an identity, in the order
// of Rendered.Placeholders.
var PlaceholderNames = [4]string{"http.auth.user.id", "http.auth.user.token_type", "http.auth.user.token_id", "http.auth.user.scopes"}

// Strip removes every header of h whose name matches one of ours after
// folding case and '_' to '-'. It does not allocate.
func (hn Headers) Strip(h http.Header) {
	for k := range h {
		if sameName(k, hn.User) || sameName(k, hn.TokenType) || sameName(k, hn.TokenID) || sameName(k, hn.Scopes) {
			delete(h, k)
		}
	}
}

// Set writes id into h. Call Strip first.
func (hn Headers) Set(h http.Header, id Identity) {
	r := id.Rendered
	if r == nil {
		r = Render(id)
	}
	v := &r.Headers
	h[hn.User] = v[0]
	h[hn.TokenType] = v[1]
	h[hn.TokenID] = v[2]
	if id.Scopes != "" {
		h[hn.Scopes] = v[3]
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
