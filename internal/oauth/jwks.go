package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/keyring"
)

// KeySource gives this node's copy of the keyring (keyring.Holder).
type KeySource interface {
	Get(ctx context.Context) (*keyring.Keys, error)
}

// JWKS publishes the public signing keys: the next, active and retiring
// ones, so that a verifier knows a key before it signs and after it
// stops.
type JWKS struct {
	Keys KeySource
	// MaxAge is the Cache-Control max-age of the set: the time a new key
	// waits before it signs (keyring.Policy.PublishDelay).
	MaxAge time.Duration
}

// Serve answers GET and HEAD. It returns an error (unwritten) on failure.
func (j *JWKS) Serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return apierr.ErrMethodNotAllowed
	}
	ks, err := j.Keys.Get(r.Context())
	if err != nil {
		return apierr.FromStore(err)
	}
	body, err := json.Marshal(ks.JWKS())
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/jwk-set+json")
	hdr.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(j.MaxAge/time.Second)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}
