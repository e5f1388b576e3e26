// Package oauth serves the OAuth 2.0 HTTP endpoints for machine clients:
// the token endpoint (client credentials, RFC 6749 4.4, and the seed's
// JSON and multipart bodies), token introspection (RFC 7662), revocation
// (RFC 7009) and the JWKS of the signing keys (RFC 7517). The clients are
// in package oauthclient, the access tokens in package accesstoken, and
// whether a token is active is asked of the edge check (Inspector).
package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

// Inspector tells whether a token of any kind is active (gate.Checker).
type Inspector interface {
	Active(ctx context.Context, tok string) (*decision.Decision, bool, error)
}

// Endpoint serves the token, introspection and revocation endpoints.
type Endpoint struct {
	Clients   *oauthclient.Clients
	Tokens    *accesstoken.Tokens
	Users     users.PasswordChecker
	Inspector Inspector
	// Store is where revocation denies access tokens and deletes stored
	// ones.
	Store RevocationStore
	// Limiter counts failed client authentications per client id and per
	// source address (shared with the other secrets).
	Limiter *bruteforce.Limiter
	Audit   *audit.Log
	Realm   string
	// Metrics counts token requests by grant type and result (nil: not
	// counted).
	Metrics *metrics.Set
	// Events gets token.revoked for a stored token revoked here (nil:
	// none).
	Events events.Emitter
}

// RevocationStore is the part of the store that revocation writes to.
type RevocationStore interface {
	store.Denials
	store.Tokens
}

// Request is what the endpoint needs to know about the caller.
type Request struct {
	ClientIP string
	Host     string
}

// params is a token-endpoint style request: form parameters (or the seed's
// JSON body) and the client credentials, from the body or HTTP Basic.
type params struct {
	values   map[string]string
	id       string
	secret   string
	viaBasic bool
	hasCreds bool
}

const maxBody = 64 << 10

// readParams reads a POST body of application/x-www-form-urlencoded (RFC
// 6749) or, where seed, also application/json and multipart/form-data
// with the seed's field names (see body.go), refusing duplicated
// parameters, parameters in the URL, and two client authentication
// methods at once.
func readParams(w http.ResponseWriter, r *http.Request, seed bool) (params, error) {
	p := params{values: map[string]string{}}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return p, apierr.ErrMethodNotAllowed
	}
	if r.URL.RawQuery != "" {
		return p, apierr.BadRequest("parameters must be sent in the request body, not the URL")
	}
	mt, mtParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return p, apierr.ErrBodyTooLarge
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		p.values, err = formBody(body)
	case mt == "multipart/form-data" && seed:
		p.values, err = multipartBody(body, mtParams["boundary"])
	case mt == "application/json" && seed:
		p.values, err = seedJSON(body)
	case seed:
		return p, apierr.BadRequest("content type must be application/x-www-form-urlencoded, multipart/form-data or application/json")
	default:
		return p, apierr.BadRequest("content type must be application/x-www-form-urlencoded")
	}
	if err == nil && seed {
		p.values, err = seedForm(p.values, mt == "application/json")
	}
	if err != nil {
		return p, err
	}
	return p, p.credentials(r)
}

// seedNames are the members a JSON body may have (seed 001's, and the
// optional grant_type and scope).
var seedNames = map[string]bool{"clientId": true, "clientSecret": true, "grant_type": true, "scope": true}

// seedJSON reads {"clientId": ..., "clientSecret": ...} strictly: names
// match exactly (encoding/json would also take "CLIENTSECRET"), each at
// most once (it would keep the last of two), values are strings, and
// nothing follows the object.
func seedJSON(body []byte) (map[string]string, error) {
	bad := apierr.BadRequest(`malformed JSON body: expected {"clientId": ..., "clientSecret": ...}`)
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad
	}
	out := map[string]string{}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return nil, bad
		}
		switch {
		case !seedNames[key]:
			return nil, apierr.InputField(key, errors.New("unknown field"))
		case hasKey(out, key):
			return nil, apierr.Field(key, errors.New("parameter is repeated"))
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, apierr.Field(key, errors.New("must be a string"))
		}
		out[key] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, bad
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad
	}
	return out, nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// credentials takes the client credentials from HTTP Basic (RFC 6749
// 2.3.1: both parts form-encoded) or from the body, not both.
func (p *params) credentials(r *http.Request) error {
	if len(r.Header["Authorization"]) > 1 {
		return apierr.ErrMultipleCredentials
	}
	bodyID, hasBodyID := p.values["client_id"]
	bodySecret, hasBodySecret := p.values["client_secret"]
	user, pass, basic := r.BasicAuth()
	switch {
	case basic && (hasBodyID || hasBodySecret):
		return apierr.BadRequest("use one client authentication method, not HTTP Basic and body parameters together")
	case basic:
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return apierr.BadRequest("malformed HTTP Basic credentials")
		}
		p.id, p.secret, p.viaBasic, p.hasCreds = id, secret, true, true
	case hasBodyID || hasBodySecret:
		p.id, p.secret, p.hasCreds = bodyID, bodySecret, true
	case r.Header.Get("Authorization") != "":
		return apierr.BadRequest("client authentication must use HTTP Basic")
	}
	return nil
}

// ServeToken answers POST /api-user/oauth/token (RFC 6749 4.4, and the
// seed's JSON body). Every request is written to the audit log.
func (e *Endpoint) ServeToken(w http.ResponseWriter, r *http.Request, req Request) {
	clientID, name, basic, grantType := "", "", false, "missing"
	issued, err := func() (accesstoken.Issued, error) {
		p, err := readParams(w, r, true)
		basic = p.viaBasic
		if err != nil {
			return accesstoken.Issued{}, err
		}
		if strings.HasPrefix(p.id, token.ClientIDPrefix) && len(p.id) <= 64 {
			// Only what has a client id's shape: a secret sent as the id
			// (swapped fields) must not reach the log. The record names
			// the key by its name, whatever the outcome.
			clientID = p.id
		}
		gt, ok := p.values["grant_type"]
		if ok {
			grantType = gt // bounded by Metrics.TokenRequest
		}
		switch {
		case !ok:
			return accesstoken.Issued{}, apierr.Field("grant_type", errors.New("is required"))
		case gt != "client_credentials":
			return accesstoken.Issued{}, apierr.ErrUnsupportedGrantType
		case !p.hasCreds || p.id == "" || p.secret == "":
			return accesstoken.Issued{}, fmt.Errorf("%w: client_id and client_secret are required", apierr.ErrInvalidClient)
		}
		c, err := e.authenticateClient(r.Context(), p.id, p.secret, req.ClientIP)
		name = c.Name
		if err != nil {
			return accesstoken.Issued{}, err
		}
		scopes, err := grantScopes(c, p.values)
		if err != nil {
			return accesstoken.Issued{}, err
		}
		return e.Tokens.Issue(r.Context(), c, scopes)
	}()
	if name == "" && clientID != "" {
		// Refused before the key was read (a locked id or address, a bad
		// body): look its name up (an existing key is in the node's table).
		name = e.Clients.Name(r.Context(), clientID)
	}
	e.Metrics.TokenRequest(grantType, err)
	rec := audit.Record{Name: name, ClientID: clientID, Hostname: r.Host, IP: req.ClientIP, Level: audit.LevelInfo, RespCode: http.StatusOK}
	if err != nil {
		pr := apierr.For(err)
		rec.Level, rec.RespCode, rec.Response = audit.LevelError, pr.Status, pr.Code+": "+pr.Description
		e.Audit.Write(rec)
		e.writeError(w, pr, basic)
		return
	}
	e.Audit.Write(rec)
	w.Header().Set("Pragma", "no-cache")
	jsonbody.Write(w, http.StatusOK, map[string]any{
		"access_token": issued.Token, "token_type": "Bearer", "expires_in": issued.ExpiresIn, "scope": issued.Scope,
	})
}

// authenticateClient checks the credentials with brute-force limits, the
// client's on/off switch and its allowed IPs. With an error, the client
// returned names the key when it was read (for the audit log).
func (e *Endpoint) authenticateClient(ctx context.Context, id, secret, ip string) (store.Client, error) {
	clientKey := e.Limiter.Client(id)
	if len(id) > 64 || !strings.HasPrefix(id, token.ClientIDPrefix) {
		clientKey.Name = "" // not a client id: owns no counter
	}
	var c store.Client
	err := e.Limiter.Guard(ctx, clientKey, e.Limiter.Address(ip), func() (bool, error) {
		var err error
		c, err = e.Clients.Authenticate(ctx, id, secret)
		if errors.Is(err, oauthclient.ErrBadClient) {
			return false, nil
		}
		return err == nil, err
	}, apierr.ErrInvalidClient)
	named := store.Client{ID: c.ID, Name: c.Name}
	switch {
	case err != nil:
		return named, err
	case !c.Enabled:
		return named, fmt.Errorf("%w: the OAuth key is switched off", apierr.ErrInvalidClient)
	case !clientAllowsIP(c, ip):
		return named, fmt.Errorf("%w: requests from this address are not allowed for this OAuth key", apierr.ErrUnauthorizedClient)
	}
	return c, nil
}

// grantScopes narrows the client's scopes to the requested ones.
func grantScopes(c store.Client, values map[string]string) ([]string, error) {
	raw, ok := values["scope"]
	if !ok {
		return c.Scopes, nil
	}
	req, err := scope.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrInvalidScope, err)
	}
	if !scope.Covers(c.Scopes, req) {
		return nil, apierr.ErrInvalidScope
	}
	return req, nil
}

func (e *Endpoint) writeError(w http.ResponseWriter, p apierr.Problem, basic bool) {
	ch := apierr.Challenge{Realm: e.Realm}
	if basic {
		ch.Scheme = "Basic"
	}
	apierr.Write(w, p, ch)
}

// caller is whoever authenticated to introspection or revocation: an
// OAuth client, or a user with their password.
type caller struct {
	client *store.Client
	user   *store.User
}

// authenticateCaller accepts client credentials (Basic with a client id,
// or body parameters) or a user's name and password (Basic).
func (e *Endpoint) authenticateCaller(ctx context.Context, p params, ip string) (caller, error) {
	if !p.hasCreds {
		return caller{}, apierr.ErrUnauthenticated
	}
	if strings.HasPrefix(p.id, token.ClientIDPrefix) {
		c, err := e.authenticateClient(ctx, p.id, p.secret, ip)
		if err != nil {
			return caller{}, err
		}
		return caller{client: &c}, nil
	}
	if !p.viaBasic {
		return caller{}, apierr.ErrInvalidClient
	}
	u, err := e.Users.Authenticate(ctx, p.id, p.secret, ip)
	if err != nil {
		return caller{}, err
	}
	return caller{user: &u}, nil
}

// actor names the caller in events: the user's name, or the OAuth key's
// client id.
func (c caller) actor() string {
	switch {
	case c.client != nil:
		return c.client.ID
	case c.user != nil:
		return c.user.Name
	}
	return ""
}

// owns reports whether the caller may see or revoke the token of this decision.
func (c caller) owns(en *decision.Decision) bool {
	switch {
	case c.client != nil:
		return en.Owner == accesstoken.ClientOwner(c.client.ID)
	case c.user != nil:
		return en.Kind != accesstoken.Kind && en.Owner == c.user.Name
	}
	return false
}

// ServeIntrospect answers RFC 7662 introspection. An OAuth client may
// introspect any token (it is a resource server); a user only their own.
func (e *Endpoint) ServeIntrospect(w http.ResponseWriter, r *http.Request, req Request) {
	p, err := readParams(w, r, false)
	if err != nil {
		e.writeError(w, apierr.For(err), p.viaBasic)
		return
	}
	who, err := e.authenticateCaller(r.Context(), p, req.ClientIP)
	if err != nil {
		e.writeError(w, apierr.For(err), p.viaBasic)
		return
	}
	tok, ok := p.values["token"]
	if !ok || tok == "" {
		e.writeError(w, apierr.For(apierr.Field("token", errors.New("is required"))), p.viaBasic)
		return
	}
	en, active, err := e.Inspector.Active(r.Context(), tok)
	if err != nil {
		e.writeError(w, apierr.For(err), p.viaBasic)
		return
	}
	if !active || (who.client == nil && !who.owns(en)) {
		jsonbody.Write(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	jsonbody.Write(w, http.StatusOK, e.describe(r.Context(), tok, en))
}

// describe builds an active introspection answer.
func (e *Endpoint) describe(ctx context.Context, tok string, en *decision.Decision) map[string]any {
	out := map[string]any{"active": true, "token_type": "Bearer", "scope": en.ScopeHeader, "tokengate_kind": en.Kind}
	if en.Kind == accesstoken.Kind {
		if cl, err := e.Tokens.Inspect(ctx, tok); err == nil {
			out["client_id"], out["sub"], out["iss"], out["aud"] = cl.ClientID, cl.Subject, cl.Issuer, cl.Audience
			out["exp"], out["iat"], out["nbf"], out["jti"] = cl.Expiry, cl.IssuedAt, cl.NotBefore, cl.ID
		}
		return out
	}
	out["username"], out["sub"], out["jti"] = en.User, en.User, en.TokenID
	if en.ExpiresAt != 0 {
		out["exp"] = time.Unix(0, en.ExpiresAt).Unix()
	}
	return out
}

// ServeRevoke answers RFC 7009 revocation: a client revokes access tokens
// issued to it; a user revokes their own personal and legacy tokens. An
// unknown or invalid token is answered 200, as the RFC says.
func (e *Endpoint) ServeRevoke(w http.ResponseWriter, r *http.Request, req Request) {
	err := func() error {
		p, err := readParams(w, r, false)
		if err != nil {
			return err
		}
		who, err := e.authenticateCaller(r.Context(), p, req.ClientIP)
		if err != nil {
			return err
		}
		tok, ok := p.values["token"]
		if !ok || tok == "" {
			return apierr.Field("token", errors.New("is required"))
		}
		en, _, err := e.Inspector.Active(r.Context(), tok)
		switch {
		case err != nil:
			return err
		case en == nil || en.Missing || en.Owner == "":
			return nil // not a token of ours (any more): nothing to do
		case !who.owns(en):
			return fmt.Errorf("%w: the token was not issued to you", apierr.ErrUnauthorizedClient)
		case en.Kind == accesstoken.Kind:
			return apierr.FromStore(e.Store.Deny(r.Context(), store.Denial{JTI: en.TokenID, Until: time.Unix(0, en.ExpiresAt)}))
		}
		gone, err := e.Store.DeleteToken(r.Context(), en.Owner, en.TokenID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return apierr.FromStore(err)
		}
		ev := events.ForToken(r.Context(), events.TokenRevoked, gone, time.Now().UTC())
		ev.Actor, ev.Data = who.actor(), map[string]any{"via": "oauth_revoke"}
		events.Emit(e.Events, ev)
		return nil
	}()
	if err != nil {
		basic := r.Header.Get("Authorization") != ""
		e.writeError(w, apierr.For(err), basic)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// clientAllowsIP applies the key's allow-list to the caller's address. A
// list that does not parse admits nobody; "" or garbage parses to the zero
// Addr, which only an empty list admits.
func clientAllowsIP(c store.Client, ip string) bool {
	l, err := iplist.Parse(c.AllowedIPs)
	addr, _ := netip.ParseAddr(ip)
	return err == nil && l.Allows(addr)
}
