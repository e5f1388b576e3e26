package pat

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/users"
)

// API serves the token routes on the guarded site:
//
//	GET    {prefix}        list the caller's tokens
//	POST   {prefix}        create one (the secret is in the answer, once)
//	PATCH  {prefix}/{id}   rename, switch on/off, set allowed IPs or the expiry
//	DELETE {prefix}/{id}   revoke
//
// The caller authenticates with user name and password (HTTP Basic) and
// must have token_login.
type API struct {
	Service *Service
	Auth    users.PasswordChecker
	// Prefix is the route, e.g. "/api-user/tokens".
	Prefix string
	// Metrics counts the password checks (nil: not counted).
	Metrics *metrics.Set
}

// Matches reports whether path is one of the API's routes.
func (a *API) Matches(path string) bool {
	return path == a.Prefix || strings.HasPrefix(path, a.Prefix+"/")
}

// Serve answers a request whose path Matches. clientAddr is the client IP
// as Caddy computed it. It returns an error without writing anything when
// the request fails; the caller writes it (with a Basic challenge).
func (a *API) Serve(w http.ResponseWriter, r *http.Request, clientAddr string) error {
	id, hasID := strings.CutPrefix(r.URL.Path, a.Prefix+"/")
	if hasID && (id == "" || strings.Contains(id, "/")) {
		return apierr.ErrNotFound
	}
	if err := a.checkMethod(w, r.Method, hasID); err != nil {
		return err
	}
	if len(r.Header["Authorization"]) > 1 {
		return apierr.ErrMultipleCredentials
	}
	name, password, ok := r.BasicAuth()
	if !ok {
		return apierr.ErrUnauthenticated
	}
	u, err := a.Auth.Authenticate(r.Context(), name, password, clientAddr)
	a.Metrics.SignIn(metrics.SignInTokensAPI, err)
	if err != nil {
		return err
	}
	if !u.TokenLogin {
		return fmt.Errorf("%w: token login is not allowed for this user", apierr.ErrForbidden)
	}
	ctx := events.WithActor(r.Context(), u.Name)
	switch {
	case !hasID && r.Method == http.MethodGet:
		views, err := a.Service.List(ctx, u.Name)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, map[string]any{"tokens": views})
	case !hasID:
		var req CreateRequest
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return err
		}
		created, err := a.Service.Create(ctx, u.Name, req)
		if err != nil {
			return err
		}
		w.Header().Set("Location", a.Prefix+"/"+created.ID)
		jsonbody.Write(w, http.StatusCreated, created)
	case r.Method == http.MethodPatch:
		var req UpdateRequest
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return err
		}
		view, err := a.Service.Update(ctx, u.Name, id, req)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, view)
	default:
		if err := a.Service.Delete(ctx, u.Name, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// checkMethod answers 405 (with Allow) before any authentication work.
func (a *API) checkMethod(w http.ResponseWriter, method string, hasID bool) error {
	allow := "GET, POST"
	ok := method == http.MethodGet || method == http.MethodPost
	if hasID {
		allow = "PATCH, DELETE"
		ok = method == http.MethodPatch || method == http.MethodDelete
	}
	if !ok {
		w.Header().Set("Allow", allow)
		return apierr.ErrMethodNotAllowed
	}
	return nil
}
