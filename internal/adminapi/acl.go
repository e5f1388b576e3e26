package adminapi

import (
	"net/http"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/legacy"
)

// acl routes /tokengate/acl, /tokengate/acl/grant and /tokengate/acl/revoke.
func (a *API) acl(w http.ResponseWriter, r *http.Request, parts []string) error {
	if len(parts) == 0 {
		if r.Method != http.MethodGet {
			return methodNotAllowed(w, "GET")
		}
		grants, err := a.ACL.List(r.Context())
		return writeOK(w, map[string]any{"grants": grants}, err)
	}
	if len(parts) != 1 || (parts[0] != "grant" && parts[0] != "revoke") {
		return apierr.ErrNotFound
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	var g acl.Grant
	if err := jsonbody.Decode(w, r, &g, 0); err != nil {
		return err
	}
	change := a.ACL.Grant
	if parts[0] == "revoke" {
		change = a.ACL.Revoke
	}
	grants, err := change(r.Context(), g)
	return writeOK(w, map[string]any{"grants": grants}, err)
}

// legacyTokens serves GET /tokengate/legacy/tokens: the migration report
// (legacy.Report), filtered by ?used_within= and ?unused_for=.
func (a *API) legacyTokens(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	f, err := legacy.ParseReportFilter(r.URL.Query())
	if err != nil {
		return err
	}
	rep, err := a.Legacy.Report(r.Context(), f)
	return writeOK(w, rep, err)
}
