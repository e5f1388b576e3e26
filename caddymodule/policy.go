package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/policy"
)

// TokenPolicy is the administrator's token policy (see the README's
// "Token policy"): the longest lifetime of personal access tokens and of
// legacy tokens, whether a personal access token must expire, and the
// dormancy rule. Every part is off unless set. Tokens made before the
// policy keep their expiry (the listing `tokengate tokens expiring` flags
// them beyond_max_lifetime).
type TokenPolicy struct {
	// PATMaxLifetime bounds the lifetime of a personal access token: a
	// create or a change of expires_in asking for more is refused (400,
	// naming the maximum), and a token created without expires_in gets
	// this lifetime. From 1s to 100 years. Default: none.
	PATMaxLifetime caddy.Duration `json:"pat_max_lifetime,omitempty"`

	// LegacyMaxLifetime bounds the lifetime of a legacy token: a change
	// of expires_in asking for more is refused, and /rest/token issues
	// tokens of this lifetime when legacy_token_ttl is not set (one set
	// above it is a configuration error). From 1s to 100 years.
	// Default: none.
	LegacyMaxLifetime caddy.Duration `json:"legacy_max_lifetime,omitempty"`

	// RequireExpiry refuses a personal access token created without
	// expires_in (400 naming the field). With PATMaxLifetime such a token
	// gets the maximum instead. Default: off.
	RequireExpiry bool `json:"require_expiry,omitempty"`

	// DormantAfter switches off a token (personal or legacy) unused for
	// this long: not used, switched on again or rotated since. It is
	// warned first (token.dormant_soon and an audit line), at least
	// DormancyWarning before. Keep it much longer than last_access_flush.
	// Default: none (no dormancy rule).
	DormantAfter caddy.Duration `json:"dormant_after,omitempty"`

	// DormancyWarning is how long before it is switched off a dormant
	// token is warned, at least; it must be shorter than DormantAfter.
	// Default: 7d, or half of DormantAfter if that is shorter.
	DormancyWarning caddy.Duration `json:"dormancy_warning,omitempty"`

	// ScanInterval is how often each node applies the dormancy rule
	// (each warning and switch-off is decided in one store write, so
	// several nodes make it once). At least 1s; default: 1h.
	ScanInterval caddy.Duration `json:"scan_interval,omitempty"`
}

// minScanInterval bounds the interval of the scans that read every token
// (the dormancy rule's, the expiry warnings'): a shorter one would keep
// the store busy for nothing.
const minScanInterval = time.Second

// policy is the policy the services apply (nil: none).
func (p *TokenPolicy) policy() policy.Policy {
	if p == nil {
		return policy.Policy{}
	}
	return policy.Policy{
		PATMaxLifetime: time.Duration(p.PATMaxLifetime), LegacyMaxLifetime: time.Duration(p.LegacyMaxLifetime),
		RequireExpiry: p.RequireExpiry, DormantAfter: time.Duration(p.DormantAfter),
		DormancyWarning: time.Duration(p.DormancyWarning),
	}
}

// scanInterval is the dormancy scan's interval (0: the default).
func (p *TokenPolicy) scanInterval() time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(p.ScanInterval)
}

// validate checks the policy against the app's legacy_token_ttl.
func (p *TokenPolicy) validate(legacyTTL time.Duration) error {
	if p == nil {
		return nil
	}
	if p.ScanInterval != 0 && p.ScanInterval < caddy.Duration(minScanInterval) {
		return fmt.Errorf("token_policy: scan_interval must be at least %v (each scan reads every token)", minScanInterval)
	}
	if err := p.policy().Validate(); err != nil {
		return fmt.Errorf("token_policy: %v", err)
	}
	if limit := time.Duration(p.LegacyMaxLifetime); limit > 0 && legacyTTL > limit {
		return fmt.Errorf("token_policy: legacy_token_ttl (%v) is above legacy_max_lifetime (%v)", legacyTTL, limit)
	}
	return nil
}

// legacyLifetime is the lifetime of tokens from /rest/token:
// legacy_token_ttl, else legacy_max_lifetime, else 0 (the default).
func (a *App) legacyLifetime() time.Duration {
	if a.LegacyTokenTTL == 0 && a.TokenPolicy != nil {
		return time.Duration(a.TokenPolicy.LegacyMaxLifetime)
	}
	return time.Duration(a.LegacyTokenTTL)
}

// parseTokenPolicy reads a token_policy block:
//
//	token_policy {
//		pat_max_lifetime <duration>
//		legacy_max_lifetime <duration>
//		require_expiry
//		dormant_after <duration>
//		dormancy_warning <duration>
//		scan_interval <duration>
//	}
func parseTokenPolicy(d *caddyfile.Dispenser) (*TokenPolicy, error) {
	p := new(TokenPolicy)
	err := eachNested(d, "token_policy", func(sub string) (err error) {
		switch sub {
		case "pat_max_lifetime":
			p.PATMaxLifetime, err = durationArg(d)
		case "legacy_max_lifetime":
			p.LegacyMaxLifetime, err = durationArg(d)
		case "require_expiry":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.RequireExpiry = true
		case "dormant_after":
			p.DormantAfter, err = durationArg(d)
		case "dormancy_warning":
			p.DormancyWarning, err = durationArg(d)
		case "scan_interval":
			p.ScanInterval, err = durationArg(d)
		default:
			err = d.Errf("token_policy: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
