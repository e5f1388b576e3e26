package pat

import (
	"fmt"
	"net/http"
	"strings"
	"time"

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
//	POST   {prefix}/{id}/rotate  a new secret, the old one kept for an overlap
//
// The caller authenticates with user name and password (HTTP Basic) and
// must have token_login. Two routes are authenticated by the token the
// request presents instead (when Self is set):
//
//	GET    {prefix}/self         the presented token
//	POST   {prefix}/self/rotate  rotate the presented token
type API struct {
	Service *Service
	Auth    users.PasswordChecker
	// Self checks the token a request presents (Bearer, or a legacy
	// source) as the edge does and names it; nil: no self routes.
	Self func(r *http.Request) (Presented, error)
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
	id, rotate := strings.CutSuffix(id, "/rotate")
	if hasID && (id == "" || strings.Contains(id, "/")) {
		return apierr.ErrNotFound
	}
	if id == SelfID && a.Self != nil {
		return a.serveSelf(w, r, rotate)
	}
	if rotate {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			return apierr.ErrMethodNotAllowed
		}
	} else if err := a.checkMethod(w, r.Method, hasID); err != nil {
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
	case rotate:
		overlap, err := DecodeOverlap(w, r)
		if err != nil {
			return err
		}
		rotated, err := a.Service.Rotate(ctx, u.Name, id, overlap)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, rotated)
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

// SelfID is the path segment of the self routes ({prefix}/self): token
// ids are hex and never spell it.
const SelfID = "self"

// IsSelf reports whether path is one of the self routes, which a caller
// authenticates with the token it presents (a Bearer challenge).
func (a *API) IsSelf(path string) bool {
	return a.Self != nil && (path == a.Prefix+"/"+SelfID || path == a.Prefix+"/"+SelfID+"/rotate")
}

// serveSelf answers GET {prefix}/self and POST {prefix}/self/rotate.
func (a *API) serveSelf(w http.ResponseWriter, r *http.Request, rotate bool) error {
	want := http.MethodGet
	if rotate {
		want = http.MethodPost
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		return apierr.ErrMethodNotAllowed
	}
	p, err := a.Self(r)
	if err != nil {
		return err
	}
	ctx := events.WithActor(r.Context(), p.Owner)
	if !rotate {
		view, err := a.Service.Self(ctx, p)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, view)
		return nil
	}
	overlap, err := DecodeOverlap(w, r)
	if err != nil {
		return err
	}
	rotated, err := a.Service.RotateSelf(ctx, p, overlap)
	if err != nil {
		return err
	}
	jsonbody.Write(w, http.StatusOK, rotated)
	return nil
}

// DecodeOverlap reads a rotation's optional body ({"overlap": "1h"}, see
// RotateRequest); an empty body asks for DefaultOverlap. The admin API's
// rotations read theirs with it too.
func DecodeOverlap(w http.ResponseWriter, r *http.Request) (time.Duration, error) {
	var req RotateRequest
	if r.ContentLength > 0 || (r.ContentLength < 0 && r.Header.Get("Content-Type") != "") {
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return 0, err
		}
	}
	return ParseOverlap(req.Overlap)
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
