// Package events tells the outside world about changes to tokens, OAuth
// keys, signing keys and users: the services describe each change as an
// Event and hand it to an Emitter; Webhook is the emitter that delivers
// events, signed, to a configured URL from a bounded queue; ExpiryScanner
// finds tokens about to expire; Addresses tells when a token is used from
// an address it was not used from recently.
//
// An event never holds a secret: a token appears as its id and its
// hashed_token (the SHA-256 of the secret, lowercase hex, as the store
// keeps it), never as the token.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// Event types. Every type the gateway sends is listed here and in the
// README; a receiver should ignore types it does not know.
const (
	// TokenCreated: a personal access token or a legacy token was issued.
	TokenCreated = "token.created"
	// TokenRevoked: a token was revoked (deleted) by its owner, an
	// administrator, the OAuth revocation endpoint or the legacy cap.
	TokenRevoked = "token.revoked"
	// TokenRotated: a token (or an OAuth key's secret) got a new secret;
	// hashed_token is the new one's, data.previous_hashed_token the one
	// it replaced, data.overlap_seconds how long that one still works.
	TokenRotated = "token.rotated"
	// TokenReportedLeaked: a token was reported as leaked to the leak
	// report endpoint (package leak) and revoked: a PAT or legacy token
	// deleted, an access token denied, or an OAuth key whose secret it is
	// switched off (subject kind oauth_key). Data: action (revoked,
	// denied, switched_off, already_switched_off), url, source, type, as
	// reported.
	TokenReportedLeaked = "token.reported_leaked"
	// TokenNewAddress: a token was used from an address it was not used
	// from within the remembered period (its first use included).
	TokenNewAddress = "token.used_from_new_address"
	// TokenExpiring: a token expires within one of the warning periods
	// (data: expires_at, warning).
	TokenExpiring = "token.expiring"
	// TokenExpired: a token reached its expiry.
	TokenExpired = "token.expired"
	// TokenDormantSoon: a token unused for a while will be switched off
	// by the dormancy rule (package policy) unless it is used (data:
	// last_active_at, dormant_at, warning_seconds).
	TokenDormantSoon = "token.dormant_soon"
	// TokenDormant: a token was switched off by the dormancy rule (data:
	// last_active_at); its owner or an administrator may switch it on.
	TokenDormant = "token.dormant"
	// OAuthKeyCreated: an OAuth key (client) was created.
	OAuthKeyCreated = "oauth_key.created"
	// OAuthKeyDisabled: an OAuth key was switched off.
	OAuthKeyDisabled = "oauth_key.disabled"
	// OAuthKeyEnabled: an OAuth key was switched on again.
	OAuthKeyEnabled = "oauth_key.enabled"
	// OAuthKeyDeleted: an OAuth key was deleted.
	OAuthKeyDeleted = "oauth_key.deleted"
	// SigningKeyRotated: the signing key was rotated or reset, or its
	// algorithm changed (data: mode, algorithm).
	SigningKeyRotated = "signing_key.rotated"
	// UserTokenLoginChanged: a user's token_login was switched (data:
	// token_login).
	UserTokenLoginChanged = "user.token_login_changed"
)

// Subject kinds.
const (
	SubjectToken    = "token"
	SubjectOAuthKey = "oauth_key"
	SubjectKeyring  = "signing_key"
	SubjectUser     = "user"
)

// Event is one change, as sent to the webhook (JSON).
type Event struct {
	// ID is unique per event ("evt_" + 32 hex): a receiver that sees an
	// id twice (a retry whose answer was lost) drops the second.
	ID string `json:"id"`
	// Type is one of the constants above.
	Type string `json:"type"`
	// Time is when the change was made (UTC).
	Time time.Time `json:"time"`
	// Actor is who made the change when known: a user name, "admin" (the
	// admin API and CLI) or "system" (the gateway itself).
	Actor string `json:"actor,omitempty"`
	// Subject is what changed.
	Subject Subject `json:"subject"`
	// HashedToken is the SHA-256 of the token's secret in lowercase hex,
	// for token events: what a receiver can match against a token it holds
	// without the gateway ever sending the token.
	HashedToken string `json:"hashed_token,omitempty"`
	// Data holds the type's details (never a secret).
	Data map[string]any `json:"data,omitempty"`
}

// Subject names what an event is about.
type Subject struct {
	// Kind is SubjectToken, SubjectOAuthKey, SubjectKeyring or SubjectUser.
	Kind string `json:"kind"`
	// ID is the token id, the OAuth key's client_id, the key id or the
	// user name.
	ID string `json:"id,omitempty"`
	// TokenKind is "pat" or "legacy" for tokens.
	TokenKind string `json:"token_kind,omitempty"`
	// Owner is the user that owns a token.
	Owner string `json:"owner,omitempty"`
	// Label is a token's label or an OAuth key's name.
	Label string `json:"label,omitempty"`
}

// Emitter takes events. Emit never blocks on delivery and never fails:
// delivery is the emitter's business. A nil Emitter in a service means no
// events (see Emit).
type Emitter interface {
	Emit(Event)
}

// Emit gives ev to e; a nil e does nothing, so services built without
// events (tests, the CLI) need nothing.
func Emit(e Emitter, ev Event) {
	if e != nil {
		e.Emit(ev)
	}
}

// NewID returns a fresh event id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never returns an error (Go 1.24+: it crashes the program instead)
	return "evt_" + hex.EncodeToString(b[:])
}

// delivering reports whether e sends events anywhere: an emitter that can
// tell (Webhook.Enabled) and says no does not. The expiry scan and the
// address check claim events in the store only while they go out.
func delivering(e Emitter) bool {
	en, ok := e.(interface{ Enabled() bool })
	return !ok || en.Enabled()
}

// ForToken returns an event of typ about t, made by actor.
func ForToken(ctx context.Context, typ string, t store.Token, at time.Time) Event {
	return Event{
		Type: typ, Time: at, Actor: ActorFrom(ctx), HashedToken: t.Hash.String(),
		Subject: Subject{Kind: SubjectToken, ID: t.ID, TokenKind: t.Kind, Owner: t.Owner, Label: t.Label},
	}
}

type actorKey struct{}

// WithActor returns ctx carrying who acts (a user name, "admin"), which
// the events made under it name as their actor.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor put in ctx, or "".
func ActorFrom(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Func is an Emitter made of a function (tests, adapters).
type Func func(Event)

// Emit calls f.
func (f Func) Emit(e Event) { f(e) }
