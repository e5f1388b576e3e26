// Package leak answers reports of leaked secrets: a public endpoint in the
// shape of GitHub's secret scanning partner program takes a JSON array of
// reported tokens, revokes each one that is ours and still works, and
// tells its owner through the audit log and the token.reported_leaked
// event. The answer is the same for a live token, a revoked one, a made-up
// one and one of another service, so the endpoint tells nobody whether a
// token exists; it never echoes, logs or stores the reported value, only
// its SHA-256.
package leak

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// Limits of a report request.
const (
	// DefaultMaxBytes bounds a request body (64 KiB).
	DefaultMaxBytes = 64 << 10
	// MaxReports is the most tokens one request may report.
	MaxReports = 100
	// MaxURLLen and MaxFieldLen bound the url and the type/source of a
	// report, in characters.
	MaxURLLen   = 2048
	MaxFieldLen = 128
	// DefaultRate is how many requests an address may make per minute
	// when the configuration says nothing.
	DefaultRate = 10
)

// Label is the one label every acknowledgement carries: the report was
// received. It says nothing about whether the token was ours.
const Label = "received"

// Actor names the leak report as the actor of what it changes (events).
const Actor = "leak_report"

// Report is one reported token, as GitHub's secret scanning sends it.
// Members other than these are ignored (the partner format may grow).
type Report struct {
	// Token is the secret that was found.
	Token string `json:"token"`
	// Type is the reporter's name for the kind of secret (free text).
	Type string `json:"type"`
	// URL is where the secret was found.
	URL string `json:"url"`
	// Source is what kind of place that is ("content", "commit", "npm"...).
	Source string `json:"source"`
}

// Ack is the answer for one report: the same for every token, whether it
// existed or not.
type Ack struct {
	// TokenHash is the SHA-256 of the reported token, lowercase hex: the
	// reporter can match it to what it sent; the token itself is never
	// echoed.
	TokenHash string `json:"token_hash"`
	// TokenType is the report's type, as sent.
	TokenType string `json:"token_type"`
	// Label is always "received".
	Label string `json:"label"`
}

// Inspector finds what the edge knows of one of our access tokens
// (gate.Checker): it verifies the signature.
type Inspector interface {
	Lookup(ctx context.Context, tok string) (*decision.Decision, error)
}

// Store is the part of the store a report writes to: tokens are looked
// up and deleted, access tokens denied, OAuth keys found by their secret.
type Store interface {
	store.Tokens
	store.Denials
	store.Clients
}

// Responder serves the leak report endpoint. Inspector, Store and Clients
// are required; the rest may be nil.
type Responder struct {
	Inspector Inspector
	Store     Store
	// Clients switches a key whose secret leaked off (and emits
	// oauth_key.disabled).
	Clients *oauthclient.Clients
	// Audit gets one record per token revoked or key switched off.
	Audit *audit.Log
	// Events gets token.reported_leaked.
	Events events.Emitter
	// Limiter counts requests per client address (nil: no limit).
	Limiter *failrate.Limiter
	// MaxBytes bounds the body (<= 0: DefaultMaxBytes).
	MaxBytes int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Keys, when not empty, are the only keys whose signed reports are
	// taken (GitHub's secret scanning keys, see ParsePublicKeys); an
	// unsigned or wrongly signed report gets 401 and changes nothing.
	Keys []*ecdsa.PublicKey
}

// Request is what the endpoint knows of the caller.
type Request struct {
	// ClientIP is the reporter's address as Caddy computed it.
	ClientIP netip.Addr
	// Host is the site the report was sent to (for the audit log).
	Host string
}

// Serve answers one report request. An error is for the caller to write
// (apierr.For): 405, 415, 413, 401 (a signature is required and missing
// or wrong), 400 naming the problem, 429 with Retry-After, or 503 when
// the store is down.
func (rp *Responder) Serve(w http.ResponseWriter, r *http.Request, req Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return apierr.ErrMethodNotAllowed
	}
	if wait := rp.Limiter.Reserve(req.ClientIP); wait > 0 {
		return &apierr.RateLimited{RetryAfter: wait, Reason: "too many reports from this address, try again later"}
	}
	reports, err := rp.read(w, r)
	if err != nil {
		return err
	}
	redact(reports)
	// A reporter that hangs up does not stop a revocation half-way.
	ctx := context.WithoutCancel(r.Context())
	acks := make([]Ack, len(reports))
	done := make(map[store.TokenHash]bool, len(reports))
	for i, rep := range reports {
		h := token.Hash(rep.Token)
		acks[i] = Ack{TokenHash: store.TokenHash(h).String(), TokenType: rep.Type, Label: Label}
		if done[h] {
			continue
		}
		done[h] = true
		if err := rp.handle(ctx, rep, req); err != nil {
			return err
		}
	}
	jsonbody.Write(w, http.StatusOK, acks)
	return nil
}

// read decodes and checks the body: a JSON array of 1 to MaxReports
// reports, each with a token. Errors name the member, never its value.
func (rp *Responder) read(w http.ResponseWriter, r *http.Request) ([]Report, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, apierr.ErrUnsupportedMedia
	}
	limit := rp.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, jsonbody.Explain(err)
	}
	if len(rp.Keys) > 0 {
		if err := verify(rp.Keys, r.Header, body); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var reports []Report
	if err := dec.Decode(&reports); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field == "" {
			return nil, apierr.BadRequest("request body must be a JSON array of reports")
		}
		return nil, jsonbody.Explain(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, apierr.BadRequest("request body must hold a single JSON array")
	}
	switch {
	case reports == nil:
		return nil, apierr.BadRequest("request body must be a JSON array of reports")
	case len(reports) == 0:
		return nil, apierr.BadRequest("request body must report at least one token")
	case len(reports) > MaxReports:
		return nil, apierr.BadRequest("request body reports %d tokens; at most %d per request", len(reports), MaxReports)
	}
	for i := range reports {
		rep := &reports[i]
		rep.Token = strings.TrimSpace(rep.Token)
		field := func(name string) string { return fmt.Sprintf("[%d].%s", i, name) }
		switch {
		case rep.Token == "":
			return nil, apierr.Field(field("token"), errors.New("is required"))
		case len(rep.Token) > token.MaxLen:
			return nil, apierr.Field(field("token"), fmt.Errorf("must be at most %d bytes", token.MaxLen))
		case !utf8.ValidString(rep.Type) || utf8.RuneCountInString(rep.Type) > MaxFieldLen:
			return nil, apierr.Field(field("type"), fmt.Errorf("must be valid UTF-8 of at most %d characters", MaxFieldLen))
		case !utf8.ValidString(rep.Source) || utf8.RuneCountInString(rep.Source) > MaxFieldLen:
			return nil, apierr.Field(field("source"), fmt.Errorf("must be valid UTF-8 of at most %d characters", MaxFieldLen))
		case !utf8.ValidString(rep.URL) || utf8.RuneCountInString(rep.URL) > MaxURLLen:
			return nil, apierr.Field(field("url"), fmt.Errorf("must be valid UTF-8 of at most %d characters", MaxURLLen))
		}
	}
	return reports, nil
}

// handle acts on one report: a live PAT or legacy token is deleted, an
// access token's jti denied until it expires, an OAuth key whose secret it
// is switched off. Anything else (unknown, revoked, expired, another
// service's) changes nothing. Only a store failure is an error.
func (rp *Responder) handle(ctx context.Context, rep Report, req Request) error {
	ctx = events.WithActor(ctx, Actor)
	tok := rep.Token
	if token.IsClientSecret(tok) {
		return rp.clientSecret(ctx, rep, req)
	}
	switch token.Classify(tok) {
	case token.PAT, token.Legacy:
		return rp.stored(ctx, rep, req)
	case token.JWT:
		return rp.accessToken(ctx, rep, req)
	}
	return nil
}

// stored revokes a personal access token or a legacy token.
func (rp *Responder) stored(ctx context.Context, rep Report, req Request) error {
	h := store.TokenHash(token.Hash(rep.Token))
	g, err := rp.Store.LookupToken(ctx, h)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return apierr.FromStore(err)
	}
	gone, err := rp.Store.DeleteToken(ctx, g.Owner.Name, g.Token.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // revoked meanwhile: someone else told the owner
	case err != nil:
		return apierr.FromStore(err)
	}
	now := rp.now()
	ev := events.ForToken(ctx, events.TokenReportedLeaked, gone, now)
	// The secret reported, which may be one a rotation replaced (still in
	// its overlap: LookupToken finds it) rather than the token's current.
	ev.HashedToken = h.String()
	ev.Data = rp.data(rep, "revoked")
	events.Emit(rp.Events, ev)
	rp.audit(now, req, ev, "", fmt.Sprintf("%s token %s of user %s reported as leaked and revoked", gone.Kind, gone.ID, gone.Owner))
	return nil
}

// accessToken denies one of our access tokens (by its jti) until it
// expires. The signature is checked first, so a forged JWT naming some
// jti denies nothing.
func (rp *Responder) accessToken(ctx context.Context, rep Report, req Request) error {
	en, err := rp.Inspector.Lookup(ctx, rep.Token)
	switch {
	case errors.Is(err, apierr.ErrUnavailable):
		return err
	case err != nil, en == nil, en.Missing, en.Kind != accesstoken.Kind, en.TokenID == "":
		// Not ours, or refused before its claims could be trusted (bad
		// signature, wrong claims, expired, denied already): nothing to do.
		return nil
	}
	now := rp.now()
	if en.ExpiresAt != 0 && now.UnixNano() >= en.ExpiresAt {
		return nil // expired: harmless
	}
	if err := rp.Store.Deny(ctx, store.Denial{JTI: en.TokenID, Until: time.Unix(0, en.ExpiresAt)}); err != nil {
		return apierr.FromStore(err)
	}
	client := strings.TrimPrefix(en.Owner, accesstoken.OwnerPrefix)
	ev := events.Event{
		Type: events.TokenReportedLeaked, Time: now, Actor: Actor, HashedToken: store.TokenHash(token.Hash(rep.Token)).String(),
		Subject: events.Subject{Kind: events.SubjectToken, ID: en.TokenID, TokenKind: accesstoken.Kind, Owner: en.Owner, Label: rp.Clients.Name(ctx, client)},
		Data:    rp.data(rep, "denied"),
	}
	events.Emit(rp.Events, ev)
	rp.audit(now, req, ev, client, fmt.Sprintf("access token %s of OAuth key %s reported as leaked and denied", en.TokenID, client))
	return nil
}

// clientSecret switches off the OAuth key whose secret was reported (its
// current secret, or one a rotation replaced whose overlap runs). It
// is switched off rather than given a new secret: a new secret would have
// to reach the key's administrator, and nobody should get it from an
// anonymous report. Switching off also stops every access token the key
// holds, on every node. An administrator gives the key a new secret
// before switching it on again (switching it on with the leaked secret
// would bring the leak back).
func (rp *Responder) clientSecret(ctx context.Context, rep Report, req Request) error {
	list, err := rp.Store.ListClients(ctx)
	if err != nil {
		return apierr.FromStore(err)
	}
	h := store.TokenHash(token.Hash(rep.Token))
	now := rp.now()
	var found *store.Client
	for i := range list {
		// The secret a rotation replaced counts while it still works.
		if oauthclient.SecretOf(list[i], h, now) {
			found = &list[i]
		}
	}
	if found == nil {
		return nil
	}
	action := "already_switched_off"
	if found.Enabled {
		off := false
		if _, err := rp.Clients.Update(ctx, found.ID, oauthclient.ClientChanges{Enabled: &off}); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, apierr.ErrNotFound) {
				return nil // deleted meanwhile
			}
			return err
		}
		action = "switched_off"
	}
	ev := events.Event{
		Type: events.TokenReportedLeaked, Time: now, Actor: Actor, HashedToken: h.String(),
		Subject: events.Subject{Kind: events.SubjectOAuthKey, ID: found.ID, Label: found.Name},
		Data:    rp.data(rep, action),
	}
	events.Emit(rp.Events, ev)
	rp.audit(now, req, ev, found.ID, fmt.Sprintf("secret of OAuth key %s reported as leaked; key %s", found.ID, strings.ReplaceAll(action, "_", " ")))
	return nil
}

// data is what an event says of the report: where the token was found
// and what was done.
func (rp *Responder) data(rep Report, action string) map[string]any {
	return map[string]any{"action": action, "url": rep.URL, "source": rep.Source, "type": rep.Type}
}

// audit writes one record of a leak handled.
func (rp *Responder) audit(now time.Time, req Request, ev events.Event, clientID, what string) {
	name := ev.Subject.Owner
	if clientID != "" {
		name = ev.Subject.Label // the OAuth key's name
	}
	if src, _ := ev.Data["source"].(string); src != "" {
		what += " (source: " + src + ")"
	}
	if u, _ := ev.Data["url"].(string); u != "" {
		what += " (url: " + u + ")"
	}
	rp.Audit.Write(audit.Record{
		Timestamp: now, Name: name, ClientID: clientID, Hostname: req.Host, IP: ipString(req.ClientIP),
		Level: audit.LevelInfo, RespCode: http.StatusOK, Response: what,
		Event: ev.Type, HashedToken: ev.HashedToken,
	})
}

// Redacted replaces a reported token wherever a reporter put it besides
// "token" (type, url, source), so that it reaches no answer, event or log.
const Redacted = "[redacted]"

// redact cuts every token of the request out of every report's type, url
// and source.
func redact(reports []Report) {
	tokens := make([]string, 0, len(reports))
	for _, rep := range reports {
		tokens = append(tokens, rep.Token)
	}
	// Longest first: the replacer tries its strings in order, and a token
	// that starts another must not leave the other's tail behind.
	slices.SortFunc(tokens, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(tokens))
	for _, tok := range tokens {
		pairs = append(pairs, tok, Redacted)
	}
	r := strings.NewReplacer(pairs...)
	for i := range reports {
		reports[i].Type, reports[i].URL, reports[i].Source = r.Replace(reports[i].Type), r.Replace(reports[i].URL), r.Replace(reports[i].Source)
	}
}

func (rp *Responder) now() time.Time {
	if rp.Now == nil {
		return time.Now().UTC()
	}
	return rp.Now().UTC()
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
