package gate

import (
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/token"
)

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
