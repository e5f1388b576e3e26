package adminapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/policy"
)

// DefaultWithin is the period of the expiring listing when the request
// does not say.
const DefaultWithin = 30 * 24 * time.Hour

// maxWithin bounds the period of the expiring listing.
const maxWithin = 100 * 365 * 24 * time.Hour

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

// ParseWithin reads the listing's period: a Go duration ("720h"), a
// number of days ("30d") or of seconds ("86400"), positive and at most
// 100 years; anything else is a 400 naming "within".
func ParseWithin(s string) (time.Duration, error) {
	bad := apierr.Field("within", errors.New("must be a duration such as 30d, 72h or 3600 (seconds), up to 100 years"))
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > int64(maxWithin/(24*time.Hour)) {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > int64(maxWithin/time.Second) {
			return 0, bad
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, bad
	}
	if d <= 0 || d > maxWithin {
		return 0, bad
	}
	return d, nil
}
