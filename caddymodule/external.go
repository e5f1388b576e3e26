package caddymodule

import (
	"fmt"
	"strings"
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
	// AllowHTTPLoopback lets JWKSURL be plain http:// to a loopback host
	// (127.0.0.0/8, ::1, localhost), for tests and a sidecar on the same
	// machine. Default: off, jwks_url must be https://.
	AllowHTTPLoopback bool `json:"allow_http_loopback,omitempty"`
	// AcceptTyp lists the JOSE "typ" values accepted (RFC 8725 3.11),
	// compared case-insensitively with "application/" optional; "none"
	// accepts a token without typ. Default: at+jwt (RFC 9068 access
	// tokens), which keeps the issuer's ID tokens (typ JWT or none) out.
	AcceptTyp []string `json:"accept_typ,omitempty"`
}

// setupExternal builds the route's external verifiers.
func (h *Handler) setupExternal() error {
	repl := caddy.NewReplacer()
	h.external = nil
	for i, x := range h.ExternalIssuers {
		v, err := extjwt.New(extjwt.Config{
			Issuer: x.Issuer, Audience: x.Audience, JWKSURL: repl.ReplaceKnown(x.JWKSURL, ""),
			Secret: []byte(repl.ReplaceKnown(x.HS256Secret, "")), UserClaim: x.UserClaim, ScopeClaim: x.ScopeClaim,
			Types: x.AcceptTyp,
			JWKS: jwks.Options{
				Floor: time.Duration(x.RefreshFloor), AllowHTTPLoopback: x.AllowHTTPLoopback, Logger: h.logger.Named("jwks"),
			},
		})
		if err == nil && x.Issuer == h.app.Issuer {
			// The upstream tells users apart by (issuer, user): the
			// gateway's own users must not share an issuer with another's.
			err = fmt.Errorf("issuer %q is the gateway's own issuer", x.Issuer)
		}
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
	// A URL with placeholders is checked again, resolved, in Provision.
	if x.JWKSURL != "" && !strings.Contains(x.JWKSURL, "{") {
		if err := jwks.CheckURL(x.JWKSURL, x.AllowHTTPLoopback); err != nil {
			return fmt.Errorf("external_jwt %s: %v", x.Issuer, err)
		}
	}
	if _, err := extjwt.Types(x.AcceptTyp); err != nil {
		return fmt.Errorf("external_jwt %s: accept_typ: %v", x.Issuer, err)
	}
	return nil
}
