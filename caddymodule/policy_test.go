package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestTokenPolicyCaddyfileErrors(t *testing.T) {
	wantCaddyfileErrors(t, []caddyfileError{
		{"unknown", "tokengate {\n token_policy {\n bogus 1\n }\n}", `token_policy: unrecognized subdirective "bogus"`},
		{"duplicate", "tokengate {\n token_policy {\n dormant_after 1d\n dormant_after 2d\n }\n}", `token_policy: duplicate "dormant_after"`},
		{"bad duration", "tokengate {\n token_policy {\n pat_max_lifetime soon\n }\n}", `invalid duration "soon"`},
		{"negative", "tokengate {\n token_policy {\n dormant_after -1d\n }\n}", `invalid duration "-1d"`},
		{"require_expiry arg", "tokengate {\n token_policy {\n require_expiry yes\n }\n}", "wrong argument count"},
	}, unmarshalApp)
}

func TestTokenPolicyValidate(t *testing.T) {
	day := caddy.Duration(24 * time.Hour)
	for _, tt := range []struct {
		name      string
		p         TokenPolicy
		legacyTTL caddy.Duration
		wantErr   string
	}{
		{"good", TokenPolicy{PATMaxLifetime: 90 * day, LegacyMaxLifetime: 30 * day, DormantAfter: 60 * day, DormancyWarning: 7 * day}, 30 * day, ""},
		{"short for tests", TokenPolicy{DormantAfter: caddy.Duration(2 * time.Second), DormancyWarning: caddy.Duration(time.Second), ScanInterval: caddy.Duration(time.Second)}, 0, ""},
		{"negative", TokenPolicy{PATMaxLifetime: -day}, 0, "must not be negative"},
		{"warning too long", TokenPolicy{DormantAfter: day, DormancyWarning: day}, 0, "dormancy_warning must be shorter than dormant_after"},
		{"warning alone", TokenPolicy{DormancyWarning: day}, 0, "needs dormant_after"},
		{"ttl above max", TokenPolicy{LegacyMaxLifetime: 30 * day}, 31 * day, "legacy_token_ttl (744h0m0s) is above legacy_max_lifetime (720h0m0s)"},
		{"negative interval", TokenPolicy{ScanInterval: -1}, 0, "scan_interval"},
		{"interval under a second", TokenPolicy{ScanInterval: caddy.Duration(time.Millisecond)}, 0, "scan_interval must be at least 1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.validate(time.Duration(tt.legacyTTL))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	a := App{TokenPolicy: &TokenPolicy{LegacyMaxLifetime: 30 * day}}
	if got := a.legacyLifetime(); got != 30*24*time.Hour {
		t.Errorf("legacy lifetime without legacy_token_ttl = %v, want legacy_max_lifetime", got)
	}
	a.LegacyTokenTTL = day
	if got := a.legacyLifetime(); got != 24*time.Hour {
		t.Errorf("legacy lifetime with legacy_token_ttl = %v, want it", got)
	}
}
