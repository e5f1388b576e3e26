// Package oauthclient holds the OAuth clients (seed 001's "OAuth keys"):
// adding, changing and removing them, checking a client's secret, and
// this node's copy of the clients the edge has seen (Table).
package oauthclient

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// MaxNameLen bounds a client's name, in characters.
const MaxNameLen = 64

// Clients manages OAuth clients.
type Clients struct {
	store store.Clients
	// table, if set, answers Authenticate from this node's copy of the
	// clients (kept current by EventClient) instead of the store.
	table *Table
	now   func() time.Time
	// dummy is compared against when the client is unknown, so that an
	// unknown id and a wrong secret take the same path.
	dummy store.TokenHash
	// events gets oauth_key.created, .disabled, .enabled, .deleted (nil:
	// none).
	events events.Emitter
}

// SetEvents makes the service emit lifecycle events to e (nil: none).
// Called while wiring, before the service is used.
func (cs *Clients) SetEvents(e events.Emitter) { cs.events = e }

// emit sends an event of typ about c.
func (cs *Clients) emit(ctx context.Context, typ string, c store.Client) {
	events.Emit(cs.events, events.Event{
		Type: typ, Time: cs.now().UTC(), Actor: events.ActorFrom(ctx), HashedToken: c.SecretHash.String(),
		Subject: events.Subject{Kind: events.SubjectOAuthKey, ID: c.ID, Label: c.Name},
	})
}

// NewClients returns a client service; table may be nil; now nil means
// time.Now.
func NewClients(s store.Clients, table *Table, now func() time.Time) *Clients {
	if now == nil {
		now = time.Now
	}
	return &Clients{store: s, table: table, now: now, dummy: sha256.Sum256([]byte("tokengate dummy secret"))}
}

// ClientView is a client as the admin API shows it: never the secret.
type ClientView struct {
	ClientID   string    `json:"clientId"`
	Name       string    `json:"name"`
	AllowedIPs []string  `json:"allowed_ips"`
	Scopes     []string  `json:"scopes"`
	Enabled    bool      `json:"enabled"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// ReplacedValidUntil is when the last secret a rotation replaced
	// stops working (omitted when none still works).
	ReplacedValidUntil *time.Time `json:"replaced_valid_until,omitempty"`
}

// ViewOfClient returns the admin view of c now.
func ViewOfClient(c store.Client) ClientView { return viewAt(c, time.Now()) }

// viewAt returns the admin view of c at now.
func viewAt(c store.Client, now time.Time) ClientView {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return ClientView{ClientID: c.ID, Name: c.Name, AllowedIPs: orEmpty(c.AllowedIPs), Scopes: orEmpty(c.Scopes),
		Enabled: c.Enabled, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ReplacedValidUntil: store.LastUntil(c.PreviousSecrets, now)}
}

// NewClient is a request to add a client.
type NewClient struct {
	Name       string   `json:"name"`
	AllowedIPs []string `json:"allowed_ips"`
	Scopes     []string `json:"scopes"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled"`
}

// CreatedClient is the answer to an add: the only time the secret is shown.
type CreatedClient struct {
	ClientView
	ClientSecret string `json:"clientSecret"`
}

func checkName(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("must not be empty")
	case !utf8.ValidString(s):
		return "", errors.New("must be valid UTF-8")
	case utf8.RuneCountInString(s) > MaxNameLen:
		return "", fmt.Errorf("must be at most %d characters", MaxNameLen)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", errors.New("must not contain control characters")
	}
	return s, nil
}

// Create adds a client and returns its id and secret.
func (cs *Clients) Create(ctx context.Context, req NewClient) (CreatedClient, error) {
	name, err := checkName(req.Name)
	if err != nil {
		return CreatedClient{}, apierr.Field("name", err)
	}
	ips, err := iplist.Parse(req.AllowedIPs)
	if err != nil {
		return CreatedClient{}, apierr.Field("allowed_ips", err)
	}
	scopes, err := scope.Normalize(req.Scopes)
	if err != nil {
		return CreatedClient{}, apierr.Field("scopes", err)
	}
	id, err := token.NewClientID()
	if err != nil {
		return CreatedClient{}, err
	}
	secret, err := token.NewClientSecret()
	if err != nil {
		return CreatedClient{}, err
	}
	now := cs.now().UTC().Truncate(time.Microsecond)
	c := store.Client{
		ID: id, Name: name, SecretHash: token.Hash(secret), AllowedIPs: ips.Strings(), Scopes: scopes,
		Enabled: req.Enabled == nil || *req.Enabled, CreatedAt: now, UpdatedAt: now,
	}
	if err := cs.store.CreateClient(ctx, c); err != nil {
		return CreatedClient{}, apierr.FromStore(err)
	}
	cs.emit(ctx, events.OAuthKeyCreated, c)
	return CreatedClient{ClientView: ViewOfClient(c), ClientSecret: secret}, nil
}

// List returns every client.
func (cs *Clients) List(ctx context.Context) ([]ClientView, error) {
	list, err := cs.store.ListClients(ctx)
	if err != nil {
		return nil, apierr.FromStore(err)
	}
	out := make([]ClientView, len(list))
	for i, c := range list {
		out[i] = ViewOfClient(c)
	}
	return out, nil
}

// Get returns one client.
func (cs *Clients) Get(ctx context.Context, id string) (ClientView, error) {
	c, err := cs.store.GetClient(ctx, id)
	if err != nil {
		return ClientView{}, apierr.FromStore(err)
	}
	return ViewOfClient(c), nil
}

// ClientChanges is a partial update; nil fields are left alone.
type ClientChanges struct {
	Name       *string   `json:"name"`
	Enabled    *bool     `json:"enabled"`
	AllowedIPs *[]string `json:"allowed_ips"`
	Scopes     *[]string `json:"scopes"`
}

// Update changes a client: name, on/off, allowed IPs, scopes.
func (cs *Clients) Update(ctx context.Context, id string, ch ClientChanges) (ClientView, error) {
	var name string
	var ips iplist.List
	var scopes []string
	var err error
	if ch.Name != nil {
		if name, err = checkName(*ch.Name); err != nil {
			return ClientView{}, apierr.Field("name", err)
		}
	}
	if ch.AllowedIPs != nil {
		if ips, err = iplist.Parse(*ch.AllowedIPs); err != nil {
			return ClientView{}, apierr.Field("allowed_ips", err)
		}
	}
	if ch.Scopes != nil {
		if scopes, err = scope.Normalize(*ch.Scopes); err != nil {
			return ClientView{}, apierr.Field("scopes", err)
		}
	}
	var wasEnabled bool // as the write that succeeded found it
	c, err := cs.store.UpdateClient(ctx, id, func(c *store.Client) error {
		wasEnabled = c.Enabled
		if ch.Name != nil {
			c.Name = name
		}
		if ch.Enabled != nil {
			c.Enabled = *ch.Enabled
		}
		if ch.AllowedIPs != nil {
			c.AllowedIPs = ips.Strings()
		}
		if ch.Scopes != nil {
			c.Scopes = scopes
		}
		c.UpdatedAt = cs.now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if err != nil {
		return ClientView{}, apierr.FromStore(err)
	}
	switch {
	case wasEnabled && !c.Enabled:
		cs.emit(ctx, events.OAuthKeyDisabled, c)
	case !wasEnabled && c.Enabled:
		cs.emit(ctx, events.OAuthKeyEnabled, c)
	}
	return ViewOfClient(c), nil
}

// Delete removes a client; its tokens fail from the next request on.
func (cs *Clients) Delete(ctx context.Context, id string) error {
	c, err := cs.store.DeleteClient(ctx, id)
	if err != nil {
		return apierr.FromStore(err)
	}
	cs.emit(ctx, events.OAuthKeyDeleted, c)
	return nil
}

// Name returns the name of the client with id, or "" when there is none
// (or the store cannot say), for the audit log.
func (cs *Clients) Name(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	c, err := cs.lookup(ctx, id)
	if err != nil {
		return ""
	}
	return c.Name
}

// lookup reads a client through the table when there is one.
func (cs *Clients) lookup(ctx context.Context, id string) (store.Client, error) {
	if cs.table == nil {
		return cs.store.GetClient(ctx, id)
	}
	c, err := cs.table.Get(ctx, id)
	switch {
	case err != nil:
		return store.Client{}, err
	case c == nil:
		return store.Client{}, store.ErrNotFound
	}
	return c.Client, nil
}

// ErrBadClient is the one answer for an unknown id, a wrong secret and a
// secret of the wrong shape (RFC 6749 5.2 invalid_client).
var ErrBadClient = errors.New("client authentication failed")

// Authenticate checks a client id and secret. The secret's shape and
// checksum are checked first (no store look-up for garbage); the hash is
// compared in constant time.
func (cs *Clients) Authenticate(ctx context.Context, id, secret string) (store.Client, error) {
	if !token.IsClientSecret(secret) || !strings.HasPrefix(id, token.ClientIDPrefix) || len(id) > 64 {
		return store.Client{}, ErrBadClient
	}
	c, err := cs.lookup(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c = store.Client{SecretHash: cs.dummy} // the same work as for a known id
	case err != nil:
		return store.Client{}, apierr.FromStore(err)
	}
	if !SecretOf(c, token.Hash(secret), cs.now()) || err != nil {
		return store.Client{}, ErrBadClient
	}
	return c, nil
}

// SecretOf reports whether h is the hash of a secret of c at now: its
// current secret, or one a rotation replaced whose overlap has not ended.
// Every hash is compared, in constant time.
func SecretOf(c store.Client, h store.TokenHash, now time.Time) bool {
	ok := subtle.ConstantTimeCompare(h[:], c.SecretHash[:]) == 1
	for _, p := range c.PreviousSecrets {
		if subtle.ConstantTimeCompare(h[:], p.Hash[:]) == 1 && now.Before(p.Until) {
			ok = true
		}
	}
	return ok
}

// RotatedSecret is the answer to a secret rotation: the only time the new
// secret is shown.
type RotatedSecret struct {
	ClientView
	ClientSecret string `json:"clientSecret"`
}

// RotateSecret gives a client a new secret and keeps the one it had
// working for overlap (0: it fails at once; the caller bounds it). The
// secrets earlier rotations replaced keep their own ends, so rotating
// again during an overlap never cuts the newest secret short. Access
// tokens already issued are not affected (revoke them, or switch the key
// off, for a leak). Every node's copy of the client is dropped (its
// EventClient).
func (cs *Clients) RotateSecret(ctx context.Context, id string, overlap time.Duration) (RotatedSecret, error) {
	secret, err := token.NewClientSecret()
	if err != nil {
		return RotatedSecret{}, err
	}
	now := cs.now().UTC().Truncate(time.Microsecond)
	var old store.TokenHash
	c, err := cs.store.UpdateClient(ctx, id, func(c *store.Client) error {
		old = c.SecretHash
		c.PreviousSecrets, _ = store.RotatePrevious(c.PreviousSecrets, c.SecretHash, now, now.Add(overlap))
		c.SecretHash = token.Hash(secret)
		c.UpdatedAt = now
		return nil
	})
	if err != nil {
		return RotatedSecret{}, apierr.FromStore(err)
	}
	events.Emit(cs.events, events.Event{
		Type: events.TokenRotated, Time: now, Actor: events.ActorFrom(ctx), HashedToken: c.SecretHash.String(),
		Subject: events.Subject{Kind: events.SubjectOAuthKey, ID: c.ID, Label: c.Name},
		Data:    map[string]any{"previous_hashed_token": old.String(), "overlap_seconds": int64(overlap / time.Second)},
	})
	return RotatedSecret{ClientView: viewAt(c, now), ClientSecret: secret}, nil
}
