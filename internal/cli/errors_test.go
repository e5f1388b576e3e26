package cli

import (
	"errors"
	"testing"
)

// TestReadableErrors: admin API errors read in plain words with the
// CLI's flag names, not `HTTP 404: {"error":...}`.
func TestReadableErrors(t *testing.T) {
	admin := func(status, body string) error {
		return errors.New("caddy responded with error: HTTP " + status + ": " + body + "\n")
	}
	tests := []struct {
		uri  string
		err  error
		want string
	}{
		{"/tokengate/users/bob", admin("404", `{"error":"not found"}`), "no such user: bob"},
		{"/tokengate/users/bob/tokens", admin("404", `{"error":"not found"}`), "no such user: bob"},
		{"/tokengate/users/bob/tokens/abc123", admin("404", `{"error":"not found"}`), "token not found: abc123 (of user bob)"},
		{"/tokengate/oauth/clients/tgc_x", admin("404", `{"error":"not found"}`), "no such OAuth key: tgc_x"},
		{"/tokengate/oauth/signing", admin("400", `{"error":"confirm: a key change must be confirmed: set \"confirm\": true (tokens stop working)"}`),
			"--confirm: a key change must be confirmed: set --confirm (tokens stop working)"},
		{"/tokengate/oauth/signing", admin("400", `{"error":"lifetime_seconds: must be between 60 and 86400, not \"lifetime_seconds\": 5"}`),
			"--lifetime: must be between 60 and 86400, not --lifetime 5"},
		{"/tokengate/users/bob", admin("400", `{"error":"the user must have a role, mode or user set"}`), "the user must have a role, mode or user set"},
		{"/tokengate/tokens/expiring?within=0", admin("400", `{"error":"within: must be a duration such as 30d, 72h or 3600 (seconds), up to 100 years"}`),
			"--within: must be a duration such as 30d, 72h or 3600 (seconds), up to 100 years"},
		{"/tokengate/users", admin("409", `{"error":"user already exists"}`), "user already exists"},
		{"/tokengate/users", admin("500", `not json`), "not json"},
		{"/tokengate/users", errors.New("performing request: dial tcp: connection refused"), "performing request: dial tcp: connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := readable(tc.uri, tc.err).Error(); got != tc.want {
				t.Fatalf("readable = %q, want %q", got, tc.want)
			}
		})
	}
}
