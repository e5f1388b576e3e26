package caddymodule

import (
	"errors"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/policy"
)

// TestDescribeNamesFieldOnce: an admin error names its field once, also
// when the description starts with it (the token policy's refusal), so
// the CLI says "--expires-in must be at most ...", not "--expires-in:
// --expires-in must be at most ...".
func TestDescribeNamesFieldOnce(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{apierr.Field("expires_in", &policy.LifetimeError{Max: 30 * 24 * time.Hour}), "expires_in must be at most 2592000 seconds (30 days) by the token policy"},
		{apierr.Field("label", errors.New("must not be empty")), "label: must not be empty"},
		{apierr.Field("expires_in", errors.New("expires_inx is odd")), "expires_in: expires_inx is odd"},
	} {
		if got := describe(apierr.For(tt.err)); got != tt.want {
			t.Errorf("describe = %q, want %q", got, tt.want)
		}
	}
}
