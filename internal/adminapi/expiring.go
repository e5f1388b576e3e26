package adminapi

import (
	"net/http"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/policy"
)

// DefaultWithin is the period of the expiring listing when the request
// does not say.
const DefaultWithin = 30 * 24 * time.Hour

// expiringTokens answers GET /tokengate/tokens/expiring?within=30d: the
// tokens that expire or go dormant within the period (package policy's
// Expiring, under the policy the token service applies).
func (a *API) expiringTokens(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	within := DefaultWithin
	if s := r.URL.Query().Get("within"); s != "" || r.URL.Query().Has("within") {
		var err error
		if within, err = ParseWithin(s); err != nil {
			return err
		}
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	rows, err := policy.Expiring(r.Context(), a.Backup, a.Uses, a.Tokens.Policy(), within, now().UTC())
	return writeOK(w, map[string]any{"within_seconds": int64(within / time.Second), "tokens": rows}, apierr.FromStore(err))
}

// ParseWithin reads the listing's period (policy.ParsePeriod); a bad one
// is a 400 naming "within".
func ParseWithin(s string) (time.Duration, error) {
	d, err := policy.ParsePeriod(s)
	if err != nil {
		return 0, apierr.Field("within", err)
	}
	return d, nil
}
