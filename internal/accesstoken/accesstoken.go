// Package accesstoken issues and verifies our OAuth access tokens: JWTs
// of RFC 9068 signed with the keyring's keys, checked at the edge against
// this node's copy of the clients and the deny-list of revoked tokens.
package accesstoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
)

// TokenType is the JOSE typ of our access tokens (RFC 9068 2.1). A JWT of
// ours without it (an ID token, say) never passes as an access token.
const TokenType = "at+jwt"

// Kind is the decision Kind and X-Auth-Token-Type of access tokens.
const Kind = "oauth"

// OwnerPrefix namespaces clients in decision owners, apart from user names.
const OwnerPrefix = "client:"

// ClientOwner is the decision Owner of the access tokens of the client
// with this id: what invalidates them when the client changes.
func ClientOwner(clientID string) string { return OwnerPrefix + clientID }

// IsAccessToken returns a predicate that matches the decision of the
// access token with this jti, for cache.InvalidateMatching when the token
// is revoked.
func IsAccessToken(jti string) func(*decision.Decision) bool {
	return func(d *decision.Decision) bool { return d.Kind == Kind && d.TokenID == jti }
}

// Claims are the claims of an access token (RFC 9068 2.2).
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	NotBefore int64    `json:"nbf,omitempty"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
}

// Audience is "aud": a string or an array of strings (RFC 7519 4.1.3).
type Audience []string

// MarshalJSON writes a single audience as a string.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON reads a string or an array.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// Tokens issues and verifies access tokens.
type Tokens struct {
	keys     *keyring.Holder
	clients  *oauthclient.Table
	denied   *DenyList
	issuer   string
	audience string
	now      func() time.Time
}

// NewTokens returns the access token service. issuer and audience are
// the values of iss and aud.
func NewTokens(keys *keyring.Holder, clients *oauthclient.Table, denied *DenyList, issuer, audience string, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{keys: keys, clients: clients, denied: denied, issuer: issuer, audience: audience, now: now}
}

// Issued is a freshly signed access token.
type Issued struct {
	Token     string
	ExpiresIn int64
	Scope     string
	Claims    Claims
}

// Issue signs an access token for client c with scopes.
func (t *Tokens) Issue(ctx context.Context, c store.Client, scopes []string) (Issued, error) {
	ks, err := t.keys.Get(ctx)
	if err != nil {
		return Issued{}, apierr.FromStore(err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Issued{}, err
	}
	now := t.now().Unix()
	life := int64(ks.Doc.Lifetime() / time.Second)
	cl := Claims{
		Issuer: t.issuer, Subject: c.ID, Audience: Audience{t.audience},
		Expiry: now + life, NotBefore: now, IssuedAt: now, ID: hex.EncodeToString(b[:]),
		ClientID: c.ID, Scope: strings.Join(scopes, " "),
	}
	s, err := jwt.Sign(ks.Signer(), TokenType, cl)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Token: s, ExpiresIn: life, Scope: cl.Scope, Claims: cl}, nil
}

// errNotYetValid is returned (uncached) for a token used before its nbf.
var errNotYetValid = fmt.Errorf("%w: the token is not valid yet", apierr.ErrInvalidToken)

// Verify checks an access token and returns its decision for the edge
// cache. A refusal that will not change (bad signature, wrong claims,
// expired) comes back as a decision with Refusal set, so that it is cached;
// an error means "do not cache" (the store is down, or nbf is in the
// future).
func (t *Tokens) Verify(ctx context.Context, raw string) (*decision.Decision, error) {
	cl, err := t.verifyClaims(ctx, raw)
	if err != nil {
		if errors.Is(err, apierr.ErrUnavailable) || errors.Is(err, errNotYetValid) {
			return nil, err
		}
		return &decision.Decision{Refusal: err}, nil
	}
	if denied, err := t.denied.Denied(ctx, cl.ID, t.now()); err != nil {
		return nil, err
	} else if denied {
		return &decision.Decision{Refusal: fmt.Errorf("%w: the token was revoked", apierr.ErrInvalidToken)}, nil
	}
	c, err := t.clients.Get(ctx, cl.ClientID)
	if err != nil {
		return nil, err
	}
	e := &decision.Decision{
		Owner: ClientOwner(cl.ClientID), User: cl.ClientID, TokenID: cl.ID, Kind: Kind,
		ScopeHeader: strings.Join(strings.Fields(cl.Scope), " "),
		ExpiresAt:   time.Unix(cl.Expiry, 0).Add(keyring.Leeway).UnixNano(),
	}
	switch {
	case c == nil:
		e.Refusal = fmt.Errorf("%w: the OAuth key no longer exists", apierr.ErrInvalidToken)
	case !c.Enabled:
		e.Refusal = apierr.ErrClientDisabled
	default:
		e.AllowedIPs = c.IPs
	}
	return e, nil
}

// verifyClaims checks signature, typ, iss, aud and time.
func (t *Tokens) verifyClaims(ctx context.Context, raw string) (Claims, error) {
	invalid := func(why string) error { return fmt.Errorf("%w: %s", apierr.ErrInvalidToken, why) }
	tok, err := jwt.Parse(raw)
	if err != nil {
		return Claims{}, invalid(err.Error())
	}
	if typ := strings.ToLower(tok.Header.Typ); typ != TokenType && typ != "application/"+TokenType {
		return Claims{}, invalid("not an access token (typ)")
	}
	ks, err := t.keys.Get(ctx)
	if err != nil {
		return Claims{}, apierr.FromStore(err)
	}
	key, ok := ks.Verifier(tok.Header.Kid)
	if !ok {
		// Another node may have just changed the keys: look again
		// (at most once a second), as a verifier refetches a JWKS.
		if ks, err = t.keys.Refresh(ctx); err != nil {
			return Claims{}, apierr.FromStore(err)
		}
		if key, ok = ks.Verifier(tok.Header.Kid); !ok {
			return Claims{}, invalid("unknown signing key")
		}
	}
	// The key decides the algorithm; Verify refuses any other.
	if err := tok.Verify(key); err != nil {
		return Claims{}, invalid(err.Error())
	}
	var cl Claims
	// Claims matches member names exactly (json.Unmarshal would read
	// "EXP" as exp); Parse refused duplicate members.
	if err := tok.Claims(&cl); err != nil {
		return Claims{}, invalid("malformed claims")
	}
	now := t.now()
	switch {
	case cl.Issuer != t.issuer:
		return Claims{}, invalid("wrong issuer")
	case !slices.Contains(cl.Audience, t.audience):
		return Claims{}, invalid("wrong audience")
	case cl.ID == "" || cl.ClientID == "" || cl.Expiry == 0:
		return Claims{}, invalid("missing claims")
	case !now.Before(time.Unix(cl.Expiry, 0).Add(keyring.Leeway)):
		return Claims{}, apierr.ErrExpiredToken
	case cl.NotBefore != 0 && now.Add(keyring.Leeway).Before(time.Unix(cl.NotBefore, 0)):
		return Claims{}, errNotYetValid
	}
	return cl, nil
}

// Inspect verifies an access token for introspection and revocation: the
// claims, or an error if it is not (or no longer) one of ours.
func (t *Tokens) Inspect(ctx context.Context, raw string) (Claims, error) {
	return t.verifyClaims(ctx, raw)
}
