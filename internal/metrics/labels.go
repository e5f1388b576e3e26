package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// Decision results.
const (
	resultAllowed = iota
	resultRefused
	resultError
	resultCount
)

var resultNames = [resultCount]string{"allowed", "refused", "error"}

// Reason is why an edge decision went as it did: a bounded set, finer
// than the OAuth error code a client is told (which says invalid_token
// for most refusals, on purpose).
type Reason uint8

// Reasons (the reason label of tokengate_decisions_total).
const (
	ReasonOK Reason = iota
	ReasonNoToken
	ReasonMalformed
	ReasonInvalid
	ReasonExpired
	ReasonDisabled
	ReasonLoginNotAllowed
	ReasonUnsupported
	ReasonClientDisabled
	ReasonIPNotAllowed
	ReasonInsufficientScope
	ReasonMultipleCredentials
	ReasonRateLimited
	ReasonUnavailable
	ReasonCanceled
	ReasonOther
	reasonCount
)

var reasonNames = [reasonCount]string{
	"ok", "no_token", "malformed_token", "invalid_token", "expired_token", "token_disabled",
	"login_not_allowed", "unsupported_token", "client_disabled", "ip_not_allowed",
	"insufficient_scope", "multiple_credentials", "rate_limited", "unavailable", "canceled", "server_error",
}

// String is the reason's label value.
func (r Reason) String() string { return reasonNames[r] }

// serverSide reports whether the reason is a failure on our side (the
// result "error"), not a refusal of the client's token.
func (r Reason) serverSide() bool {
	return r == ReasonUnavailable || r == ReasonOther || r == ReasonCanceled
}

// ReasonOf classifies an edge check's error. It allocates nothing for
// the refusals of the edge check.
func ReasonOf(err error) Reason {
	switch {
	case err == nil:
		return ReasonOK
	case errors.Is(err, apierr.ErrNoToken):
		return ReasonNoToken
	case errors.Is(err, apierr.ErrMalformedToken):
		return ReasonMalformed
	case errors.Is(err, apierr.ErrInvalidToken):
		return ReasonInvalid
	case errors.Is(err, apierr.ErrExpiredToken):
		return ReasonExpired
	case errors.Is(err, apierr.ErrTokenDisabled):
		return ReasonDisabled
	case errors.Is(err, apierr.ErrLoginNotAllowed):
		return ReasonLoginNotAllowed
	case errors.Is(err, apierr.ErrUnsupportedToken):
		return ReasonUnsupported
	case errors.Is(err, apierr.ErrClientDisabled):
		return ReasonClientDisabled
	case errors.Is(err, apierr.ErrIPNotAllowed):
		return ReasonIPNotAllowed
	case errors.Is(err, apierr.ErrInsufficientScope):
		return ReasonInsufficientScope
	case errors.Is(err, apierr.ErrMultipleCredentials):
		return ReasonMultipleCredentials
	case errors.Is(err, apierr.ErrUnavailable), errors.Is(err, store.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return ReasonUnavailable
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case rateLimited(err):
		return ReasonRateLimited
	}
	return ReasonOther
}

// rateLimited reports whether err is an *apierr.RateLimited (apart, so
// that its target's allocation is paid only when it is asked).
func rateLimited(err error) bool {
	var rl *apierr.RateLimited
	return errors.As(err, &rl)
}

// Kind is the token kind label of a decision.
type Kind uint8

// Token kinds (the kind label of tokengate_decisions_total).
const (
	KindNone Kind = iota
	KindMalformed
	KindPAT
	KindLegacy
	KindAccessToken
	KindExternalJWT
	// KindJWT is a JWT refused before it was known whose it is.
	KindJWT
	kindCount
)

var kindNames = [kindCount]string{"none", "malformed", "pat", "legacy", "access_token", "external_jwt", "jwt"}

// String is the kind's label value.
func (k Kind) String() string { return kindNames[k] }

// Decision kinds of JWTs (accesstoken.Kind, extjwt.EntryKind), compared
// here so that this package depends on neither.
const (
	decisionAccessToken = "oauth"
	decisionExternalJWT = "jwt"
)

// KindOf is the kind label of a token of shape k whose decision (if any)
// has Kind decisionKind; present says whether a token was sent at all.
func KindOf(present bool, k token.Kind, decisionKind string) Kind {
	switch {
	case !present:
		return KindNone
	case k == token.PAT:
		return KindPAT
	case k == token.Legacy:
		return KindLegacy
	case k != token.JWT:
		return KindMalformed
	case decisionKind == decisionAccessToken:
		return KindAccessToken
	case decisionKind == decisionExternalJWT:
		return KindExternalJWT
	}
	return KindJWT
}

// Code is the OAuth error code of err (apierr.For: a bounded set), or ok
// when err is nil.
func Code(err error, ok string) string {
	if err == nil {
		return ok
	}
	return apierr.For(err).Code
}

// Store call outcomes, the reason label of tokengate_store_errors_total
// ("" for a call that got an answer).
const (
	StoreUnreachable = "unreachable"
	StoreRefused     = "refused"
)

// StoreCall counts a store call op (the store method's name) that got an
// answer (reason ""), failed to reach the store (StoreUnreachable,
// with the time it took) or was refused at once (StoreRefused). It
// implements store.Observer.
func (s *Set) StoreCall(op string, took time.Duration, reason string) {
	if s == nil {
		return
	}
	s.storeOps.WithLabelValues(op).Inc()
	if reason != StoreRefused {
		s.storeDuration.WithLabelValues(op).Observe(took.Seconds())
	}
	if reason != "" {
		s.storeErrors.WithLabelValues(op, reason).Inc()
	}
}
