package caddymodule

import (
	"fmt"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/extjwt"
	"github.com/tokengate/tokengate/internal/jwks"
)

// ExternalIssuer configures JWTs from another issuer that a route accepts
// (Caddyfile: an external_jwt block).
type ExternalIssuer struct {
	// Issuer is the required "iss".
	Issuer string `json:"issuer"`
	// Audience is the required "aud" (one of its values).
	Audience string `json:"audience"`
	// JWKSURL is where the issuer publishes its keys (RS256, ES256,
	// EdDSA). Fetched on first use, refreshed on an unknown kid and hourly.
	JWKSURL string `json:"jwks_url,omitempty"`
	// HS256Secret is a shared secret instead of a JWKS (at least 32 bytes).
	// Use a placeholder such as {env.ISSUER_SECRET}: it is resolved at
	// provisioning, so it never appears in adapted JSON.
	HS256Secret string `json:"hs256_secret,omitempty"`
	// UserClaim is the claim put in X-Auth-User. Default: sub.
	UserClaim string `json:"user_claim,omitempty"`
	// ScopeClaim is the claim holding scopes (a space-separated string or
	// an array). Default: scope (or scp).
	ScopeClaim string `json:"scope_claim,omitempty"`
	// RefreshFloor is the least time between two JWKS fetches, however
	// many unknown kids arrive. Default: 30s.
	RefreshFloor caddy.Duration `json:"refresh_floor,omitempty"`
}

// setupExternal builds the route's external verifiers.
func (h *Handler) setupExternal() error {
	repl := caddy.NewReplacer()
	h.external = nil
	for i, x := range h.ExternalIssuers {
		v, err := extjwt.New(extjwt.Config{
			Issuer: x.Issuer, Audience: x.Audience, JWKSURL: repl.ReplaceKnown(x.JWKSURL, ""),
			Secret: []byte(repl.ReplaceKnown(x.HS256Secret, "")), UserClaim: x.UserClaim, ScopeClaim: x.ScopeClaim,
			JWKS: jwks.Options{Floor: time.Duration(x.RefreshFloor), Logger: h.logger.Named("jwks")},
		})
		if err != nil {
			return fmt.Errorf("external_jwt #%d (%s): %v", i+1, x.Issuer, err)
		}
		h.external = append(h.external, v)
	}
	return nil
}

// validate checks the static parts (placeholders are resolved later).
func (x ExternalIssuer) validate() error {
	switch {
	case x.Issuer == "" || x.Audience == "":
		return fmt.Errorf("external_jwt needs issuer and audience")
	case (x.JWKSURL == "") == (x.HS256Secret == ""):
		return fmt.Errorf("external_jwt %s needs exactly one of jwks_url and hs256_secret", x.Issuer)
	case x.RefreshFloor < 0:
		return fmt.Errorf("external_jwt %s: refresh_floor must not be negative", x.Issuer)
	}
	if x.JWKSURL != "" {
		if u, err := url.Parse(x.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "") {
			return fmt.Errorf("external_jwt %s: jwks_url must be an http(s) URL", x.Issuer)
		}
	}
	return nil
}
