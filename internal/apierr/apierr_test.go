package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
)

// TestRefusedTokenSaysOnlyTheCode: a refused token's body and challenge
// carry the RFC 6750 code and a generic description, never the
// verifier's reason (which only the debug log gets); expiry is the one
// reason told.
func TestRefusedTokenSaysOnlyTheCode(t *testing.T) {
	tests := []struct {
		err    error
		reason string // must not reach the client
		want   string
	}{
		{fmt.Errorf("%w: signature: crypto/rsa: verification error", apierr.ErrInvalidToken), "signature", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: unknown signing key", apierr.ErrInvalidToken), "signing key", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: wrong audience", apierr.ErrInvalidToken), "audience", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: the token was revoked", apierr.ErrInvalidToken), "revoked", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: unknown issuer", apierr.ErrInvalidToken), "issuer", apierr.InvalidTokenDescription},
		{apierr.ErrInvalidToken, "unknown or has been revoked", apierr.InvalidTokenDescription},
		{apierr.ErrTokenDisabled, "switched off", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: the user is disabled", apierr.ErrLoginNotAllowed), "disabled", apierr.InvalidTokenDescription},
		{apierr.ErrClientDisabled, "OAuth key", apierr.InvalidTokenDescription},
		{fmt.Errorf("%w: only legacy tokens are accepted from X-Auth-Token", apierr.ErrUnsupportedToken), "legacy", apierr.InvalidTokenDescription},
		{apierr.ErrMalformedToken, "malformed", apierr.InvalidTokenDescription},
		{fmt.Errorf("checking: %w", apierr.ErrExpiredToken), "checking", apierr.ErrExpiredToken.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			p := apierr.For(tc.err)
			if p.Status != http.StatusUnauthorized || p.Code != "invalid_token" || p.Description != tc.want {
				t.Fatalf("For = %+v, want 401 invalid_token %q", p, tc.want)
			}
			w := httptest.NewRecorder()
			apierr.Write(w, p, apierr.Challenge{Scheme: "Bearer", Realm: "api"})
			got := w.Body.String() + w.Header().Get("WWW-Authenticate")
			if strings.Contains(got, tc.reason) {
				t.Fatalf("the answer tells the reason %q: %s", tc.reason, got)
			}
			if !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// Other refusals keep their descriptions: they are about the request.
	if p := apierr.For(apierr.Field("label", errors.New("is required"))); p.Description != "is required" {
		t.Fatalf("field error description = %q", p.Description)
	}
}

// A store that cannot be reached says when to come back; a client that
// hung up is no server error.
func TestUnavailableAndClientGone(t *testing.T) {
	for _, err := range []error{apierr.ErrUnavailable, fmt.Errorf("lookup: %w", context.DeadlineExceeded)} {
		if p := apierr.For(err); p.Status != http.StatusServiceUnavailable || p.RetryAfter <= 0 {
			t.Errorf("apierr.For(%v) = %+v, want 503 with Retry-After", err, p)
		}
	}
	if p := apierr.For(fmt.Errorf("lookup: %w", context.Canceled)); p.Status != apierr.StatusClientClosedRequest {
		t.Errorf("apierr.For(context.Canceled) = %+v, want %d", p, apierr.StatusClientClosedRequest)
	}
}

// A 503 caused by the store carries the store's own hint (its breaker's
// retry_after), through the wrapping of the services, as Retry-After in
// whole seconds.
func TestUnavailableCarriesTheStoresHint(t *testing.T) {
	down := &store.UnavailableError{Err: errors.New("dial tcp: connection refused"), RetryAfter: 2500 * time.Millisecond}
	for _, err := range []error{
		down,
		apierr.FromStore(down),
		apierr.FromStore(fmt.Errorf("loading the keyring: %w", down)),
		fmt.Errorf("%w: %w", apierr.ErrUnavailable, down),
	} {
		p := apierr.For(err)
		if p.Status != http.StatusServiceUnavailable || p.RetryAfter != down.RetryAfter {
			t.Errorf("apierr.For(%v) = %+v, want 503 with the store's RetryAfter", err, p)
		}
		w := httptest.NewRecorder()
		apierr.Write(w, p, apierr.Challenge{Scheme: "Bearer", Realm: "api"})
		if w.Header().Get("Retry-After") != "3" || strings.Contains(w.Body.String(), "refused") {
			t.Errorf("answer: Retry-After %q, body %s", w.Header().Get("Retry-After"), w.Body)
		}
	}
}

// Input is quoted in errors unless it looks like a secret.
func TestQuoteAndInputField(t *testing.T) {
	secret := "tgp_" + strings.Repeat("A", 36)
	if got := apierr.Quote("10.0.0.x"); got != `"10.0.0.x"` {
		t.Errorf("Quote = %s", got)
	}
	if got := apierr.Quote("x" + secret); strings.Contains(got, secret) || !strings.Contains(got, "secret") {
		t.Errorf("Quote(secret) = %s", got)
	}
	if p := apierr.For(apierr.InputField("labl", errors.New("unknown field"))); p.Field != "labl" || p.Status != 400 {
		t.Errorf("InputField = %+v", p)
	}
	if err := apierr.InputField(secret, errors.New("unknown field")); strings.Contains(err.Error(), secret) || apierr.For(err).Status != 400 {
		t.Errorf("InputField(secret) = %v", err)
	}
}

// Long input is cut; a token at its end is still not shown.
func TestQuoteBounds(t *testing.T) {
	long := strings.Repeat("ab.", 40)
	if got := apierr.Quote(long); len(got) > 80 || !strings.HasSuffix(got, "...") {
		t.Errorf("Quote(long) = %s", got)
	}
	if got := apierr.Quote(strings.Repeat("é", 40)); !strings.HasPrefix(got, `"é`) || strings.Contains(got, `\x`) {
		t.Errorf("Quote cut a character: %s", got)
	}
	leg := strings.Repeat("0123456789", 4)
	if got := apierr.Quote(strings.Repeat(".", 60) + leg); strings.Contains(got, leg[:16]) {
		t.Errorf("Quote shows part of a token: %s", got)
	}
}
