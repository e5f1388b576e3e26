package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/assertion"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/oauth"
)

// DefaultAssertionJWKSPath is where a site with identity_assertion
// publishes the assertion keys.
const DefaultAssertionJWKSPath = "/.well-known/tokengate-assertion-keys.json"

// IdentityAssertion makes a site send the upstream a signed identity
// assertion: a short-lived JWT, signed by the gateway, that says who the
// caller is (see package assertion for the claims), beside the plain
// identity headers or instead of them. The upstream verifies it against
// the keys published at JWKSPath; a request that did not come through the
// gateway has no assertion that verifies. A client's copy of the header
// is always removed, whether the option is on or not.
type IdentityAssertion struct {
	// Header carries the assertion. Default: X-Auth-Assertion.
	Header string `json:"header,omitempty"`

	// Audience is the "aud" of the assertions: the name the upstream
	// checks (e.g. its URL). Required: an assertion for one upstream must
	// not be accepted by another.
	Audience string `json:"audience,omitempty"`

	// Issuer is the "iss" of the assertions. Default: the app's issuer.
	Issuer string `json:"issuer,omitempty"`

	// Lifetime of an assertion, between 5s and 1h. Default: 1m. An
	// assertion is reused for the same token and client address while
	// more than half of its lifetime is left.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// Algorithm signs the assertions: ES256 (the default), RS256 or EdDSA
	// with the gateway's assertion keys (kept in the store, sealed with
	// secrets_key, published at JWKSPath), or HS256 with HS256Secret.
	Algorithm string `json:"algorithm,omitempty"`

	// HS256Secret is a secret shared with the upstream (at least 32
	// bytes) for algorithm HS256, which needs it and is refused without.
	// Use a placeholder such as {env.ASSERTION_SECRET}: it is resolved at
	// provisioning, so it never appears in adapted JSON.
	HS256Secret string `json:"hs256_secret,omitempty"`

	// PlainHeaders, if false, sends the assertion instead of the plain
	// identity headers (X-Auth-User ...), whose client copies are still
	// removed. Default: true, both.
	PlainHeaders *bool `json:"plain_headers,omitempty"`

	// JWKSPath is where this site publishes the assertion keys (the
	// public halves of the next, active and retiring keys). Default:
	// /.well-known/tokengate-assertion-keys.json.
	JWKSPath string `json:"jwks_path,omitempty"`
}

// algorithm returns the configured algorithm or the default.
func (ia *IdentityAssertion) algorithm() string {
	return orDefault(ia.Algorithm, assertion.DefaultAlgorithm)
}

// lifetime returns the configured lifetime or the default.
func (ia *IdentityAssertion) lifetime() time.Duration {
	if ia.Lifetime == 0 {
		return assertion.DefaultLifetime
	}
	return time.Duration(ia.Lifetime)
}

// validate checks the static parts (the secret's placeholder is resolved
// in setupAssertion).
func (ia *IdentityAssertion) validate() error {
	alg := ia.algorithm()
	switch {
	case ia.Audience == "":
		return fmt.Errorf("identity_assertion: audience is required (the name the upstream checks in aud, e.g. its URL)")
	case !jwt.Supported(alg):
		return fmt.Errorf("identity_assertion: algorithm %q is not one of ES256, RS256, EdDSA, HS256", ia.Algorithm)
	case alg == jwt.HS256 && ia.HS256Secret == "":
		return fmt.Errorf("identity_assertion: algorithm HS256 needs the site's own hs256_secret (shared with the upstream); " +
			"the gateway's keys are asymmetric: use ES256, RS256 or EdDSA to publish them")
	case alg != jwt.HS256 && ia.HS256Secret != "":
		return fmt.Errorf("identity_assertion: hs256_secret is only for algorithm HS256")
	case ia.Lifetime < 0 || (ia.Lifetime != 0 && (time.Duration(ia.Lifetime) < assertion.MinLifetime || time.Duration(ia.Lifetime) > assertion.MaxLifetime)):
		return fmt.Errorf("identity_assertion: lifetime must be between %v and %v", assertion.MinLifetime, assertion.MaxLifetime)
	case ia.JWKSPath != "" && (ia.JWKSPath[0] != '/' || ia.JWKSPath[len(ia.JWKSPath)-1] == '/'):
		return fmt.Errorf("identity_assertion: jwks_path %q must start with / and not end with /", ia.JWKSPath)
	}
	if err := (identity.Headers{User: ia.Header}).Check(); err != nil {
		return fmt.Errorf("identity_assertion: header: %v", err)
	}
	return nil
}

// plain reports whether the plain identity headers are sent too.
func (ia *IdentityAssertion) plain() bool { return ia.PlainHeaders == nil || *ia.PlainHeaders }

// setupAssertion builds the site's assertion signer and JWKS route.
func (h *Handler) setupAssertion() error {
	ia := h.IdentityAssertion
	if ia == nil {
		return nil
	}
	if err := ia.validate(); err != nil {
		return err
	}
	o := assertion.Options{
		Issuer: orDefault(ia.Issuer, h.app.Issuer), Audience: ia.Audience, Lifetime: ia.lifetime(),
	}
	alg := ia.algorithm()
	if alg == jwt.HS256 {
		secret := caddy.NewReplacer().ReplaceKnown(ia.HS256Secret, "")
		if secret == "" {
			return fmt.Errorf("identity_assertion: hs256_secret is set but resolves to nothing (is its environment variable set?)")
		}
		k, err := jwt.FromPublic("hs256", jwt.HS256, []byte(secret))
		if err != nil {
			return fmt.Errorf("identity_assertion: hs256_secret: %v", err)
		}
		o.Key = k
	} else {
		holder := h.app.state.assertionKeys[alg]
		o.Keys = holder
		h.assertionJWKS = &oauth.JWKS{Keys: holder, MaxAge: time.Duration(h.app.JWKSMaxAge)}
		h.routes[orDefault(ia.JWKSPath, DefaultAssertionJWKSPath)] = h.serveAssertionJWKS
	}
	h.assertion = assertion.NewSigner(o)
	h.assertionHeader = http.CanonicalHeaderKey(orDefault(ia.Header, assertion.DefaultHeader))
	return nil
}

// serveAssertionJWKS publishes the public assertion keys.
func (h *Handler) serveAssertionJWKS(w http.ResponseWriter, r *http.Request, _ oauth.Request) {
	if err := h.assertionJWKS.Serve(w, r); err != nil {
		h.fail(w, r, err, "")
	}
}

// parseIdentityAssertion reads an identity_assertion block.
func parseIdentityAssertion(d *caddyfile.Dispenser) (*IdentityAssertion, error) {
	ia := new(IdentityAssertion)
	err := eachNested(d, "identity_assertion", func(sub string) (err error) {
		switch sub {
		case "header":
			ia.Header, err = oneArg(d)
		case "audience":
			ia.Audience, err = oneArg(d)
		case "issuer":
			ia.Issuer, err = oneArg(d)
		case "lifetime":
			ia.Lifetime, err = durationArg(d)
		case "algorithm":
			ia.Algorithm, err = oneArg(d)
		case "hs256_secret":
			ia.HS256Secret, err = oneArg(d)
		case "jwks_path":
			ia.JWKSPath, err = oneArg(d)
		case "plain_headers":
			var v string
			if v, err = oneArg(d); err == nil {
				switch strings.ToLower(v) {
				case "on":
					ia.PlainHeaders = new(true)
				case "off":
					ia.PlainHeaders = new(false)
				default:
					err = d.Errf("identity_assertion: plain_headers must be on or off, not %q", v)
				}
			}
		default:
			err = d.Errf("identity_assertion: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := ia.validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return ia, nil
}
