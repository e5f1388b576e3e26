// Package apierr holds the errors that tokengate answers to clients, and
// the one function that maps them to an HTTP status, an OAuth-style error
// code and a JSON body.
//
// Descriptions never contain a token, a password or any other secret: they
// are built from fixed strings and field names only.
package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// Edge (token check) errors.
var (
	ErrNoToken             = errors.New("no bearer token was sent")
	ErrMalformedToken      = errors.New("the bearer token is malformed")
	ErrInvalidToken        = errors.New("the token is unknown or has been revoked")
	ErrExpiredToken        = errors.New("the token has expired")
	ErrTokenDisabled       = errors.New("the token is switched off")
	ErrLoginNotAllowed     = errors.New("token login is not allowed for this user")
	ErrIPNotAllowed        = errors.New("the client address is not allowed for this token")
	ErrInsufficientScope   = errors.New("the token lacks a required scope")
	ErrMultipleCredentials = errors.New("more than one credential was sent")
	ErrUnsupportedToken    = errors.New("this kind of token is not accepted here")
	ErrClientDisabled      = errors.New("the OAuth key is switched off")
)

// InvalidTokenDescription is the error_description of every refused
// token except an expired one: the detail is logged, never answered.
const InvalidTokenDescription = "the access token is invalid"

// Errors of the gateway's own routes.
var (
	ErrUnauthenticated  = errors.New("authentication required")
	ErrBadCredentials   = errors.New("wrong user name or password")
	ErrForbidden        = errors.New("not allowed")
	ErrNotFound         = errors.New("not found")
	ErrMethodNotAllowed = errors.New("method not allowed")
	ErrUnavailable      = errors.New("the token store is unavailable")
	ErrBodyTooLarge     = errors.New("request body is too large")
	ErrUnsupportedMedia = errors.New("content type must be application/json")
)

// OAuth 2.0 token endpoint errors (RFC 6749 5.2).
var (
	ErrInvalidClient        = errors.New("client authentication failed")
	ErrUnsupportedGrantType = errors.New("only grant_type=client_credentials is supported")
	ErrInvalidScope         = errors.New("the requested scope is not allowed for this client")
	ErrUnauthorizedClient   = errors.New("this client is not allowed to do that")
)

// FieldError is a 400 for one bad field of a request.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Field wraps err as a problem with the named request field.
func Field(field string, err error) error { return &FieldError{Field: field, Err: err} }

// Quote quotes a piece of the client's input for an error description
// (Go syntax, as %q does; cut after maxQuoted bytes), unless it looks
// like a secret (token.LooksSecret: a token pasted into the wrong field):
// that is described, never shown, so it reaches neither the answer nor
// the log. (Cutting alone would not do: the first part of a token is
// most of its secret.)
func Quote(s string) string {
	if token.LooksSecret(s) {
		return "(a value that looks like a secret, not shown)"
	}
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// maxQuoted bounds the input Quote shows.
const maxQuoted = 64

// InputField is Field for a name the client chose (an unknown member, a
// repeated parameter): a name that looks like a secret (see Quote) is
// not shown, and the error is a plain 400.
func InputField(name string, err error) error {
	if token.LooksSecret(name) {
		return BadRequest("a parameter whose name looks like a secret: %v", err)
	}
	return Field(name, err)
}

// BadRequest is a 400 for a request that cannot be read at all.
func BadRequest(format string, args ...any) error {
	return &badRequest{fmt.Sprintf(format, args...)}
}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// RateLimited is a 429 with a Retry-After.
type RateLimited struct {
	RetryAfter time.Duration
	// Reason replaces the default description ("too many failed
	// attempts...") for limits that do not count failures.
	Reason string
}

func (e *RateLimited) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return "too many failed attempts, try again later"
}

// Conflict is a 409 (e.g. a label already in use).
func Conflict(field string, err error) error { return &conflict{FieldError{field, err}} }

type conflict struct{ FieldError }

// Problem is what a client is told about an error.
type Problem struct {
	Status int `json:"-"`
	// Code is an OAuth 2.0 / RFC 6750 error code where one fits.
	Code        string `json:"error"`
	Description string `json:"error_description"`
	Field       string `json:"field,omitempty"`
	// Scope is the scope that was required, for insufficient_scope.
	Scope string `json:"-"`
	// RetryAfter is set for 429 and 503: Write sends it as Retry-After
	// (whole seconds, rounded up).
	RetryAfter time.Duration `json:"-"`
}

// For maps err to what the client is told. It is the only place where
// errors become HTTP statuses. An error it does not know is a 500 whose
// description says nothing about its cause.
func For(err error) Problem {
	var (
		fe *FieldError
		br *badRequest
		rl *RateLimited
		cf *conflict
	)
	p := func(status int, code string) Problem {
		return Problem{Status: status, Code: code, Description: err.Error()}
	}
	switch {
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrUnauthenticated):
		return Problem{Status: http.StatusUnauthorized, Code: "unauthorized", Description: err.Error()}
	case errors.Is(err, ErrExpiredToken):
		// Expiry is commonly disclosed (clients use it to get a new token)
		// and says nothing about how the verifier works.
		return Problem{Status: http.StatusUnauthorized, Code: "invalid_token", Description: ErrExpiredToken.Error()}
	case errors.Is(err, ErrMalformedToken), errors.Is(err, ErrInvalidToken),
		errors.Is(err, ErrTokenDisabled), errors.Is(err, ErrLoginNotAllowed),
		errors.Is(err, ErrUnsupportedToken), errors.Is(err, ErrClientDisabled):
		// A stranger learns only the RFC 6750 code: why the verifier
		// refused (signature, kid, audience, revoked, switched off...)
		// would help forge or probe tokens. The reason goes to the debug log.
		return Problem{Status: http.StatusUnauthorized, Code: "invalid_token", Description: InvalidTokenDescription}
	case errors.Is(err, ErrInvalidClient):
		return p(http.StatusUnauthorized, "invalid_client")
	case errors.Is(err, ErrUnsupportedGrantType):
		return p(http.StatusBadRequest, "unsupported_grant_type")
	case errors.Is(err, ErrInvalidScope):
		return p(http.StatusBadRequest, "invalid_scope")
	case errors.Is(err, ErrUnauthorizedClient):
		return p(http.StatusBadRequest, "unauthorized_client")
	case errors.Is(err, ErrBadCredentials):
		return p(http.StatusUnauthorized, "invalid_credentials")
	case errors.Is(err, ErrInsufficientScope):
		return p(http.StatusForbidden, "insufficient_scope")
	case errors.Is(err, ErrIPNotAllowed):
		return p(http.StatusForbidden, "ip_not_allowed")
	case errors.Is(err, ErrForbidden):
		return p(http.StatusForbidden, "forbidden")
	case errors.Is(err, ErrMultipleCredentials):
		return p(http.StatusBadRequest, "invalid_request")
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return Problem{Status: http.StatusNotFound, Code: "not_found", Description: "not found"}
	case errors.Is(err, ErrMethodNotAllowed):
		return p(http.StatusMethodNotAllowed, "method_not_allowed")
	case errors.Is(err, ErrBodyTooLarge):
		return p(http.StatusRequestEntityTooLarge, "invalid_request")
	case errors.Is(err, ErrUnsupportedMedia):
		return p(http.StatusUnsupportedMediaType, "invalid_request")
	case errors.As(err, &cf):
		return Problem{Status: http.StatusConflict, Code: "conflict", Description: cf.Err.Error(), Field: cf.Field}
	case errors.Is(err, store.ErrTokenLimit):
		return p(http.StatusConflict, "token_limit")
	case errors.As(err, &fe):
		return Problem{Status: http.StatusBadRequest, Code: "invalid_request", Description: fe.Err.Error(), Field: fe.Field}
	case errors.As(err, &br):
		return p(http.StatusBadRequest, "invalid_request")
	case errors.As(err, &rl):
		return Problem{Status: http.StatusTooManyRequests, Code: "rate_limited", Description: rl.Error(), RetryAfter: rl.RetryAfter}
	case errors.Is(err, ErrUnavailable), errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// The wrapped detail (addresses, store errors) is for the log only.
		// The store says when to come back (its breaker's retry_after).
		retry := unavailableRetry
		var ue *store.UnavailableError
		if errors.As(err, &ue) && ue.RetryAfter > 0 {
			retry = ue.RetryAfter
		}
		return Problem{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: ErrUnavailable.Error(), RetryAfter: retry}
	case errors.Is(err, context.Canceled):
		// The client hung up while we worked for it: nobody reads the
		// answer, and it is no failure of ours (nginx's and Caddy's 499).
		return Problem{Status: StatusClientClosedRequest, Code: "client_closed_request", Description: "the client closed the request"}
	}
	return Problem{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
}

// StatusClientClosedRequest answers a request whose client hung up before
// the answer was ready (nginx's 499, which Caddy's reverse proxy uses too).
const StatusClientClosedRequest = 499

// unavailableRetry is the Retry-After of a 503 whose error does not say
// (a store error carries its own, see store.UnavailableError): a short
// pause, since the store is retried at once.
const unavailableRetry = time.Second

// Challenge is how a route asks for credentials: the WWW-Authenticate
// scheme ("Bearer" or "Basic") and realm.
type Challenge struct {
	Scheme string
	Realm  string
}

// Write sends p as a JSON body with the headers its status calls for.
func Write(w http.ResponseWriter, p Problem, ch Challenge) {
	h := w.Header()
	if v := ch.header(p); v != "" {
		h.Set("WWW-Authenticate", v)
	}
	SetRetryAfter(h, p)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// SetRetryAfter sets Retry-After (whole seconds, rounded up) when p says
// when to come back (429, 503), for routes that write their own body.
func SetRetryAfter(h http.Header, p Problem) {
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.RetryAfter+time.Second-1)/time.Second)))
	}
}

// header builds WWW-Authenticate per RFC 7617 (Basic) and RFC 6750 3
// (Bearer): no error code when no credentials were sent.
func (ch Challenge) header(p Problem) string {
	realm := `realm="` + ch.Realm + `"`
	switch {
	case ch.Scheme == "Basic" && p.Status == http.StatusUnauthorized:
		return `Basic ` + realm + `, charset="UTF-8"`
	case ch.Scheme != "Bearer":
		return ""
	case p.Status == http.StatusUnauthorized && p.Code == "unauthorized":
		return `Bearer ` + realm
	case p.Status == http.StatusUnauthorized, p.Status == http.StatusBadRequest:
		return `Bearer ` + realm + `, error="` + p.Code + `", error_description="` + p.Description + `"`
	case p.Code == "insufficient_scope":
		return `Bearer ` + realm + `, error="insufficient_scope", scope="` + p.Scope + `"`
	}
	return ""
}

// FromStore passes nil, the store's sentinel errors and our own client
// errors through, and marks any other error (the store failed) as the
// store being unavailable (503).
func FromStore(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || For(err).Status < 500 {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err) // %w: keep the store's retry hint
}
