package gate

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// Credentials says where a site takes a request's credential from: the
// Authorization header (a bearer token) always, and the legacy sources,
// a header and a query parameter, when they are set. Only legacy tokens
// are accepted from a legacy source (Request.Legacy).
type Credentials struct {
	// LegacyHeader is a request header legacy tokens are also taken
	// from, in any spelling of case and '_'/'-' ("": none).
	LegacyHeader string
	// LegacyQuery is a query parameter legacy tokens are also taken from
	// ("": none).
	LegacyQuery string
}

// Credential is the token a request presented.
type Credential struct {
	Token string
	// Legacy is set when the token came from a legacy source.
	Legacy bool
}

// Take takes the request's one credential: the bearer token, or a legacy
// token from the legacy header or query parameter. Several credentials
// are ErrMultipleCredentials (never pick one). The legacy sources are
// removed from the request whatever happens, so they never travel on or
// reach the access log.
func (c *Credentials) Take(r *http.Request) (Credential, error) {
	var fromHeader, fromQuery []string
	if c.LegacyHeader != "" {
		// Every spelling (X_Auth_Token too) is the same source.
		fromHeader = identity.Take(r.Header, c.LegacyHeader)
	}
	if c.LegacyQuery != "" && r.URL.RawQuery != "" {
		var rest string
		if fromQuery, rest = takeQueryParam(r.URL.RawQuery, c.LegacyQuery); fromQuery != nil {
			r.URL.RawQuery = rest
			r.RequestURI = r.URL.RequestURI()
		}
	}
	bearer, err := BearerToken(r.Header)
	if err != nil {
		return Credential{}, err
	}
	n := len(fromHeader) + len(fromQuery)
	if bearer != "" {
		n++
	}
	switch {
	case n > 1:
		return Credential{}, apierr.ErrMultipleCredentials
	case len(fromHeader) == 1:
		return Credential{Token: fromHeader[0], Legacy: true}, nil
	case len(fromQuery) == 1:
		return Credential{Token: fromQuery[0], Legacy: true}, nil
	}
	return Credential{Token: bearer}, nil
}

// errLegacySource refuses a token of another kind than legacy taken from a
// legacy source.
var errLegacySource = fmt.Errorf("%w: only legacy tokens are accepted from the legacy token header or query parameter",
	apierr.ErrUnsupportedToken)

// admit refuses (errLegacySource) a token whose decision is of another
// kind than legacy when it came from a legacy source (Credential.Legacy).
func admit(legacy bool, kind string) error {
	if !legacy || kind == store.KindLegacy {
		return nil
	}
	return errLegacySource
}

// takeQueryParam removes every name=value pair of name from a raw query
// and returns their values and the rest, leaving the other pairs exactly
// as the client wrote them (order, encoding, valueless flags).
func takeQueryParam(raw, name string) (values []string, rest string) {
	var kept []string
	for _, pair := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err == nil && key == name {
			if val, err := url.QueryUnescape(v); err == nil {
				values = append(values, val)
			} else {
				values = append(values, v)
			}
			continue
		}
		kept = append(kept, pair)
	}
	return values, strings.Join(kept, "&")
}

// BearerToken returns the bearer token of a request (RFC 6750 2.1; the
// scheme is case-insensitive). It returns "" and no error when there is no
// bearer credential, ErrMultipleCredentials when several Authorization
// headers were sent (RFC 6750 2: never pick one), and ErrMalformedToken
// for an empty or oversized token.
func BearerToken(h http.Header) (string, error) {
	vals := h["Authorization"]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", apierr.ErrMultipleCredentials
	}
	v := vals[0]
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", nil // another scheme (Basic...): no bearer token
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", apierr.ErrMalformedToken
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", nil // e.g. "BearerX": not our scheme
	}
	tok := strings.Trim(rest, " \t")
	if tok == "" || len(tok) > token.MaxLen || strings.ContainsAny(tok, " \t,") {
		return "", apierr.ErrMalformedToken
	}
	return tok, nil
}
