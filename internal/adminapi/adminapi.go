// Package adminapi serves tokengate's administration routes. They are
// mounted on Caddy's admin endpoint, which has no authentication of its
// own: bind it to a unix socket or loopback, or use Caddy's mTLS remote
// admin (see the README).
//
//	GET    /tokengate/users                      list users
//	POST   /tokengate/users                      create a user
//	GET    /tokengate/users/{name}               show one
//	PATCH  /tokengate/users/{name}               change password, roles, token_login, disabled
//	DELETE /tokengate/users/{name}               delete it and all its tokens
//	GET    /tokengate/users/{name}/tokens        list its tokens (last use, recent addresses)
//	PATCH  /tokengate/users/{name}/tokens/{id}   rename one, switch it on/off, set its allowed IPs or expiry
//	DELETE /tokengate/users/{name}/tokens/{id}   revoke one
//	POST   /tokengate/users/{name}/tokens/{id}/rotate  a new secret, the old one kept for {"overlap": "1h"} (optional)
//	POST   /tokengate/store/check[?repair=true]  check (and repair) the store
//	GET    /tokengate/store/stats                store operations so far (for benchmarks), audit and last-use write failures
//	GET    /tokengate/store/export               the whole store as one JSON document, streamed (package backup)
//	POST   /tokengate/store/import               write such a document into an empty store (body up to 256 MiB)
//	GET    /tokengate/oauth/clients              list OAuth keys
//	POST   /tokengate/oauth/clients              add one (the secret is shown once)
//	GET    /tokengate/oauth/clients/{id}         show one
//	PATCH  /tokengate/oauth/clients/{id}         switch on/off, rename, allowed IPs, scopes
//	DELETE /tokengate/oauth/clients/{id}         delete it (its tokens fail at once)
//	POST   /tokengate/oauth/clients/{id}/rotate-secret  a new secret, the old one kept for {"overlap": "1h"} (optional)
//	GET    /tokengate/oauth/signing              algorithm, lifetime, validation key, keys
//	POST   /tokengate/oauth/signing              change them (key changes need "confirm")
//	GET    /tokengate/acl                        list permission grants
//	POST   /tokengate/acl/grant                  grant {role|user, permission, resource}
//	POST   /tokengate/acl/revoke                 revoke one
//	GET    /tokengate/legacy/tokens              legacy migration report: last use, recent addresses, summary
//	                                             (?used_within=30d in use, ?unused_for=90d to revoke)
//	GET    /tokengate/tokens/expiring[?within=30d]  tokens that expire or go dormant soon (token_policy)
//	GET    /tokengate/assertion-keys/{alg}       identity assertion keys (ES256, RS256, EdDSA)
//	POST   /tokengate/assertion-keys/{alg}       rotate them: {"mode": "grace" | "immediate"}
package adminapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/backup"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/users"
)

// Prefix is the root of the admin routes.
const Prefix = "/tokengate/"

// API serves the admin routes.
type API struct {
	Users   *users.Service
	Tokens  *pat.Service
	Store   store.Checker
	Clients *oauthclient.Clients
	Keys    *keyring.Holder
	ACL     *acl.ACL
	Legacy  *legacy.Service
	// AuditFailures counts the audit records that could not be written
	// (nil: none are kept).
	AuditFailures func() uint64
	// LastUseFailures counts the failed flushes of last token uses (nil:
	// none are kept).
	LastUseFailures func() uint64
	// Backup is the whole store, for export and import.
	Backup backup.Store
	// Now is the clock of an export's exported_at (nil: time.Now).
	Now func() time.Time
	// AssertionKeys are the identity assertion keyrings by algorithm.
	AssertionKeys map[string]*keyring.Holder
	// Uses are this node's last uses not yet written, for the expiring
	// listing (nil: none).
	Uses policy.Pending
}

// ServeHTTP routes an admin request. It returns errors for the caller to
// answer (Caddy's admin server writes them as JSON).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(events.WithActor(r.Context(), "admin")) // the events' actor
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, Prefix), "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "store" && parts[1] == "check":
		return a.storeCheck(w, r)
	case len(parts) == 2 && parts[0] == "store" && parts[1] == "stats":
		return a.storeStats(w, r)
	case len(parts) == 2 && parts[0] == "store" && parts[1] == "export":
		return a.storeExport(w, r)
	case len(parts) == 2 && parts[0] == "store" && parts[1] == "import":
		return a.storeImport(w, r)
	case parts[0] == "oauth":
		return a.oauth(w, r, parts[1:])
	case parts[0] == "acl":
		return a.acl(w, r, parts[1:])
	case parts[0] == "assertion-keys":
		return a.assertionKeys(w, r, parts[1:])
	case len(parts) == 2 && parts[0] == "legacy" && parts[1] == "tokens":
		return a.legacyTokens(w, r)
	case len(parts) == 2 && parts[0] == "tokens" && parts[1] == "expiring":
		return a.expiringTokens(w, r)
	case parts[0] != "users":
		return apierr.ErrNotFound
	case len(parts) == 1:
		return a.users(w, r)
	case len(parts) == 2:
		return a.user(w, r, parts[1])
	case len(parts) == 3 && parts[2] == "tokens":
		return a.tokens(w, r, parts[1])
	case len(parts) == 4 && parts[2] == "tokens":
		return a.token(w, r, parts[1], parts[3])
	case len(parts) == 5 && parts[2] == "tokens" && parts[4] == "rotate":
		return a.rotateToken(w, r, parts[1], parts[3])
	}
	return apierr.ErrNotFound
}

func (a *API) users(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		list, err := a.Users.List(r.Context())
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusOK, map[string]any{"users": list})
		return nil
	case http.MethodPost:
		var req users.NewUser
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return err
		}
		v, err := a.Users.Create(r.Context(), req)
		if err != nil {
			return err
		}
		jsonbody.Write(w, http.StatusCreated, v)
		return nil
	}
	return methodNotAllowed(w, "GET, POST")
}

func (a *API) user(w http.ResponseWriter, r *http.Request, name string) error {
	switch r.Method {
	case http.MethodGet:
		v, err := a.Users.Get(r.Context(), name)
		return writeOK(w, v, err)
	case http.MethodPatch:
		var c users.Changes
		if err := jsonbody.Decode(w, r, &c, 0); err != nil {
			return err
		}
		v, err := a.Users.Update(r.Context(), name, c)
		return writeOK(w, v, err)
	case http.MethodDelete:
		if err := a.Users.Delete(r.Context(), name); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(w, "GET, PATCH, DELETE")
}

func (a *API) tokens(w http.ResponseWriter, r *http.Request, name string) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	list, err := a.Tokens.List(r.Context(), users.CanonicalName(name))
	if err != nil {
		return err
	}
	jsonbody.Write(w, http.StatusOK, map[string]any{"tokens": list})
	return nil
}

func (a *API) token(w http.ResponseWriter, r *http.Request, name, id string) error {
	switch r.Method {
	case http.MethodPatch:
		var req pat.UpdateRequest
		if err := jsonbody.Decode(w, r, &req, 0); err != nil {
			return err
		}
		v, err := a.Tokens.Update(r.Context(), users.CanonicalName(name), id, req)
		return writeOK(w, v, err)
	case http.MethodDelete:
		if err := a.Tokens.Delete(r.Context(), users.CanonicalName(name), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(w, "PATCH, DELETE")
}

// rotateToken answers POST /tokengate/users/{name}/tokens/{id}/rotate
// ({"overlap": "1h"}, optional): see pat.Service.Rotate.
func (a *API) rotateToken(w http.ResponseWriter, r *http.Request, name, id string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	overlap, err := pat.DecodeOverlap(w, r)
	if err != nil {
		return err
	}
	v, err := a.Tokens.Rotate(r.Context(), users.CanonicalName(name), id, overlap)
	return writeOK(w, v, err)
}

func (a *API) storeCheck(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	report, err := a.Store.Check(r.Context(), r.URL.Query().Get("repair") == "true")
	if err != nil {
		return apierr.FromStore(err)
	}
	if report.Problems == nil {
		report.Problems = []string{}
	}
	jsonbody.Write(w, http.StatusOK, report)
	return nil
}

// storeStats reports how many operations this node sent to the store (when
// the backend counts them: Redis), so that a load harness can report store
// calls per request, how many audit records could not be written and how
// many flushes of last token uses failed.
func (a *API) storeStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	out := map[string]uint64{"audit_write_failures": 0, "last_use_write_failures": 0}
	for name, count := range map[string]func() uint64{
		"audit_write_failures": a.AuditFailures, "last_use_write_failures": a.LastUseFailures,
	} {
		if count != nil {
			out[name] = count()
		}
	}
	st := a.Store
	if d, ok := st.(*store.Deferred); ok {
		st = d.Backend()
	}
	if counter, ok := st.(interface {
		Ops() uint64
		RoundTrips() uint64
	}); ok {
		out["ops"], out["round_trips"] = counter.Ops(), counter.RoundTrips()
	}
	jsonbody.Write(w, http.StatusOK, out)
	return nil
}

// writeOK writes a (value, error) result as 200.
func writeOK[T any](w http.ResponseWriter, v T, err error) error {
	if err != nil {
		return err
	}
	jsonbody.Write(w, http.StatusOK, v)
	return nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return apierr.ErrMethodNotAllowed
}
