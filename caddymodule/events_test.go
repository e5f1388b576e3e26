package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

func TestEventsCaddyfileErrors(t *testing.T) {
	wantCaddyfileErrors(t, []caddyfileError{
		{"unknown", "tokengate {\n events {\n bogus 1\n }\n}", `events: unrecognized subdirective "bogus"`},
		{"duplicate", "tokengate {\n events {\n webhook a\n webhook b\n }\n}", `events: duplicate "webhook"`},
		{"inline arg", "tokengate {\n events x {\n }\n}", "wrong argument count"},
		{"bad warning", "tokengate {\n events {\n expiry_warnings 30d soon\n }\n}", `invalid duration "soon"`},
		{"no warnings", "tokengate {\n events {\n expiry_warnings\n }\n}", "takes durations"},
		{"backoff three", "tokengate {\n events {\n backoff 1s 2s 3s\n }\n}", "backoff takes"},
		{"queue zero", "tokengate {\n events {\n queue_size 0\n }\n}", "at least 1"},
	}, unmarshalApp)
}

func TestEventsValidate(t *testing.T) {
	t.Setenv("TG_TEST_WEBHOOK_SECRET", goodSecret)
	t.Setenv("TG_TEST_SHORT_SECRET", "short")
	for _, tt := range []struct {
		name    string
		e       Events
		wantErr string
	}{
		{"good", Events{Webhook: "https://h.example/x", Secret: "{env.TG_TEST_WEBHOOK_SECRET}"}, ""},
		{"good http", Events{Webhook: "http://127.0.0.1:9/x", Secret: goodSecret}, ""},
		{"no url", Events{Secret: goodSecret}, "webhook <url> is required"},
		{"ftp", Events{Webhook: "ftp://h.example/x", Secret: goodSecret}, "http:// or https://"},
		{"no host", Events{Webhook: "https:///x", Secret: goodSecret}, "http:// or https://"},
		{"no secret", Events{Webhook: "https://h.example/x"}, "secret is required"},
		{"short secret", Events{Webhook: "https://h.example/x", Secret: "{env.TG_TEST_SHORT_SECRET}"}, "at least 32 bytes"},
		{"unset secret", Events{Webhook: "https://h.example/x", Secret: "{env.TG_TEST_UNSET_SECRET}"}, "resolves to nothing"},
		{"off and list", Events{Webhook: "https://h.example/x", Secret: goodSecret, NoExpiryWarnings: true, ExpiryWarnings: []caddy.Duration{1}}, "exclusive"},
		{"negative warning", Events{Webhook: "https://h.example/x", Secret: goodSecret, ExpiryWarnings: []caddy.Duration{-1}}, "positive"},
		{"scan under a second", Events{Webhook: "https://h.example/x", Secret: goodSecret, ExpiryScanInterval: caddy.Duration(time.Millisecond)}, "expiry_scan_interval must be at least 1s"},
		{"backoff max below", Events{Webhook: "https://h.example/x", Secret: goodSecret, Backoff: 10, BackoffMax: 5}, "maximum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			err := e.provision(caddy.NewReplacer())
			if err == nil {
				err = e.validate()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), goodSecret) || strings.Contains(err.Error(), "short") && tt.name == "short secret" && strings.Contains(err.Error(), `"short"`) {
				t.Error("the error shows the secret")
			}
		})
	}
}
