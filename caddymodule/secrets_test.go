package caddymodule

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/keyring"
)

// secrets_key is resolved from its placeholder when provisioning and its
// shape checked by Validate; the errors never hold the value.
func TestSecretsKeyConfig(t *testing.T) {
	good, err := keyring.GenerateSecretsKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keyring.GenerateSecretsKey()
	if err != nil {
		t.Fatal(err)
	}
	short := base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	tests := []struct {
		name, current, previous string
		env                     map[string]string
		want                    string // "": accepted
	}{
		{"none", "", "", nil, ""},
		{"from env", "{env.TG_TEST_SK}", "", map[string]string{"TG_TEST_SK": good}, ""},
		{"literal", good, "", nil, ""},
		{"with previous", "{env.TG_TEST_SK}", "{env.TG_TEST_SKP}", map[string]string{"TG_TEST_SK": good, "TG_TEST_SKP": other}, ""},
		{"unset env", "{env.TG_TEST_SK_UNSET}", "", nil, "secrets_key is set but resolves to nothing"},
		{"unset previous", good, "{env.TG_TEST_SK_UNSET}", nil, "secrets_key_previous is set but resolves to nothing"},
		{"short", "{env.TG_TEST_SK}", "", map[string]string{"TG_TEST_SK": short}, "secrets_key must be 32 bytes"},
		{"not base64", "{env.TG_TEST_SK}", "", map[string]string{"TG_TEST_SK": "correct horse battery staple"}, "secrets_key must be base64"},
		{"previous alone", "", good, nil, "secrets_key_previous needs secrets_key"},
		{"same twice", good, good, nil, "the same key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			a := App{SecretsKey: tt.current, SecretsKeyPrevious: tt.previous}
			err := a.resolveSecrets(caddy.NewReplacer())
			if err == nil {
				err = a.Validate()
			}
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if err != nil {
				for _, v := range []string{good, short, "horse"} {
					if strings.Contains(err.Error(), v) {
						t.Fatalf("the error holds the value: %v", err)
					}
				}
			}
		})
	}
}

func TestSecretsKeyCaddyfile(t *testing.T) {
	var a App
	in := "tokengate {\n secrets_key {env.K}\n secrets_key_previous {env.P}\n}"
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if a.SecretsKey != "{env.K}" || a.SecretsKeyPrevious != "{env.P}" {
		t.Fatalf("parsed %q, %q: placeholders must be kept for Provision", a.SecretsKey, a.SecretsKeyPrevious)
	}
	for _, bad := range []string{"tokengate {\n secrets_key\n}", "tokengate {\n secrets_key a b\n}", "tokengate {\n secrets_key a\n secrets_key b\n}"} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
