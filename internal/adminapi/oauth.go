package adminapi

import (
	"net/http"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
)

// oauth routes /tokengate/oauth/... (parts after "oauth").
func (a *API) oauth(w http.ResponseWriter, r *http.Request, parts []string) error {
	switch {
	case len(parts) == 1 && parts[0] == "signing":
		return a.signing(w, r)
	case len(parts) == 1 && parts[0] == "clients":
		return a.clients(w, r)
	case len(parts) == 2 && parts[0] == "clients":
		return a.client(w, r, parts[1])
	case len(parts) == 3 && parts[0] == "clients" && parts[2] == "rotate-secret":
		return a.rotateSecret(w, r, parts[1])
	}
	return apierr.ErrNotFound
}

func (a *API) clients(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		list, err := a.Clients.List(r.Context())
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, map[string]any{"clients": list})
		return nil
	case http.MethodPost:
		var req oauthclient.NewClient
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return err
		}
		created, err := a.Clients.Create(r.Context(), req)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusCreated, created)
		return nil
	}
	return methodNotAllowed(w, "GET, POST")
}

func (a *API) client(w http.ResponseWriter, r *http.Request, id string) error {
	switch r.Method {
	case http.MethodGet:
		v, err := a.Clients.Get(r.Context(), id)
		return writeOK(w, v, err)
	case http.MethodPatch:
		var ch oauthclient.ClientChanges
		if err := jsonbody.Decode(w, r, &ch, 0); err != nil {
			return err
		}
		v, err := a.Clients.Update(r.Context(), id, ch)
		return writeOK(w, v, err)
	case http.MethodDelete:
		if err := a.Clients.Delete(r.Context(), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(w, "GET, PATCH, DELETE")
}

// rotateSecret answers POST /tokengate/oauth/clients/{id}/rotate-secret
// ({"overlap": "1h"}, optional): a new client secret, the old one
// accepted for the overlap.
func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request, id string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	overlap, err := pat.DecodeOverlap(w, r)
	if err != nil {
		return err
	}
	v, err := a.Clients.RotateSecret(r.Context(), id, overlap)
	return writeOK(w, v, err)
}

func (a *API) signing(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		v, err := a.Keys.Settings(r.Context())
		return writeOK(w, v, err)
	case http.MethodPost:
		var c keyring.Change
		if err := jsonbody.Decode(w, r, &c, 0); err != nil {
			return err
		}
		v, err := a.Keys.Apply(r.Context(), c)
		return writeOK(w, v, err)
	}
	return methodNotAllowed(w, "GET, POST")
}
