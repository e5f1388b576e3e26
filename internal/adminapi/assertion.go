package adminapi

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/keyring"
)

// assertionKeyChange is the body of POST /tokengate/assertion-keys/{alg}.
type assertionKeyChange struct {
	// Mode: "grace" (the published next key signs once it has been
	// public for jwks_max_age; the old key stays published until its
	// assertions expire) or "immediate" (fresh keys sign at once; the old
	// keys are withdrawn at once).
	Mode string `json:"mode"`
}

// assertionKeys serves /tokengate/assertion-keys/{alg}: GET shows the
// identity assertion keys of one algorithm (made on first use), POST
// rotates them.
func (a *API) assertionKeys(w http.ResponseWriter, r *http.Request, parts []string) error {
	if len(parts) != 1 {
		return apierr.ErrNotFound
	}
	h, ok := a.AssertionKeys[parts[0]]
	if !ok {
		return apierr.Field("algorithm", errors.New(`must be ES256, RS256 or EdDSA (HS256 assertions use the site's own hs256_secret)`))
	}
	switch r.Method {
	case http.MethodGet:
		v, err := h.Settings(r.Context())
		return writeOK(w, v, err)
	case http.MethodPost:
		var c assertionKeyChange
		if err := jsonbody.Decode(w, r, &c, 0); err != nil {
			return err
		}
		if c.Mode != keyring.ModeGrace && c.Mode != keyring.ModeImmediate {
			return apierr.Field("mode", errors.New(`must be "grace" (old assertions verify until they expire) or "immediate" (old keys are withdrawn now)`))
		}
		v, err := h.Apply(r.Context(), keyring.Change{Reset: true, Mode: c.Mode, Confirm: true})
		if err == nil {
			jsonbody.Write(w, http.StatusOK, v)
		}
		return err
	}
	return methodNotAllowed(w, "GET, POST")
}
