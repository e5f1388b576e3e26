// Package gate is the edge check: it takes a request's credential (the
// bearer token, or a legacy token from a legacy source), tells its kind
// by shape, looks it up through the decision cache (one store round trip
// per miss, shared by concurrent misses), and enforces expiry, on/off
// flags, the owner's token_login, the IP allow-list and required scopes.
package gate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/nodecopy"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// AccessTokens verifies JWT access tokens without store I/O in the steady
// state (accesstoken.Tokens). A refusal that will not change comes back as an
// decision with Refusal set, to be cached; an error is not cached.
type AccessTokens interface {
	Verify(ctx context.Context, raw string) (*decision.Decision, error)
}

// External verifies another issuer's JWTs for a site (package extjwt).
// Its results are cached under CacheKey(hash), apart from other sites'.
type External interface {
	Issuer() string
	CacheKey(h [32]byte) [32]byte
	Verify(ctx context.Context, raw string) (*decision.Decision, error)
}

// Checker checks bearer tokens. It is safe for concurrent use.
type Checker struct {
	store store.Tokens
	cache *cache.Cache
	uses  *lastuse.Recorder
	jwts  AccessTokens
	now   func() time.Time
	// lastUseEvery: a token's use is queued at most this often per node.
	lastUseEvery int64
	loads        nodecopy.Flights[*decision.Decision]
	// failures limits look-ups that miss the cache and fail, per address.
	failures *failrate.Limiter
	// stale is Options.StaleWindow.
	stale time.Duration
	// metrics counts decisions and cache look-ups (nil: not counted).
	metrics *metrics.Set
}

// Options configure a Checker.
type Options struct {
	// LastUseEvery is the least time between two recorded uses of one token
	// on this node (default 1s).
	LastUseEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AccessTokens verifies JWTs; nil: JWTs are refused as unsupported.
	AccessTokens AccessTokens
	// FailedLookups limits, per client address, look-ups that miss the
	// cache and find no good token (nil: no limit). Past it, such
	// look-ups are answered with apierr.RateLimited before any I/O;
	// cached tokens, good or bad, are never limited.
	FailedLookups *failrate.Limiter
	// StaleWindow: while the store's circuit breaker is open
	// (breaker.ErrOpen), a good decision whose cache TTL ran out less than
	// StaleWindow ago is still used (see cache.Cache.GetStale: never a
	// negative entry). Default 0: fail closed at once.
	StaleWindow time.Duration
	// Metrics counts every Check (result, reason, token kind, latency)
	// and the cache look-ups; nil: nothing is counted.
	Metrics *metrics.Set
}

// New returns a Checker.
func New(s store.Tokens, c *cache.Cache, uses *lastuse.Recorder, o Options) *Checker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LastUseEvery <= 0 {
		o.LastUseEvery = time.Second
	}
	return &Checker{store: s, cache: c, uses: uses, jwts: o.AccessTokens, now: o.Now, lastUseEvery: int64(o.LastUseEvery),
		failures: o.FailedLookups, stale: o.StaleWindow, metrics: o.Metrics}
}

// Request is what the edge check needs to know about a request.
type Request struct {
	// Token is the bearer token ("" if none).
	Token string
	// ClientIP is the client address as Caddy computed it (honouring
	// trusted_proxies only); invalid if unknown.
	ClientIP netip.Addr
	// Required scopes.
	Required []string
	// Host is the site requested, recorded with the last use.
	Host string
	// Legacy is Credential.Legacy: the token came from a legacy source,
	// where only a legacy token is accepted (ErrUnsupportedToken).
	Legacy bool
	// External lists the other issuers whose JWTs this site accepts.
	External []External
}

// Check decides a request. The error is one of apierr's edge errors,
// possibly wrapped with detail for the log (never the token).
func (c *Checker) Check(ctx context.Context, req Request) (identity.Identity, error) {
	e, err := c.Decide(ctx, req)
	if err != nil {
		return identity.Identity{}, err
	}
	return e.Identity(), nil
}

// Decide is Check returning the decision the request is accepted with
// (shared, cached: read it, never change it), for what is derived from a
// decision and kept per decision (the identity assertion).
func (c *Checker) Decide(ctx context.Context, req Request) (*decision.Decision, error) {
	if c.metrics == nil {
		e, _, err := c.check(ctx, req)
		return e, err
	}
	start := time.Now()
	e, o, err := c.check(ctx, req)
	c.metrics.Decision(err, metrics.KindOf(req.Token != "", o.kind, o.decisionKind), o.cached, time.Since(start))
	return e, err
}

// outcome is what check tells Check for the metrics: the token's shape,
// its decision's kind (whose JWT it was), and whether the decision came
// from the cache.
type outcome struct {
	kind         token.Kind
	decisionKind string
	cached       bool
}

// check is Check, also saying how it went.
func (c *Checker) check(ctx context.Context, req Request) (*decision.Decision, outcome, error) {
	if req.Token == "" {
		return nil, outcome{}, apierr.ErrNoToken
	}
	o := outcome{kind: token.Classify(req.Token)}
	e, h, cached, err := c.lookup(ctx, o.kind, req.Token, req.ClientIP, req.External)
	o.cached = cached
	if err != nil {
		return nil, o, err
	}
	o.decisionKind = e.Kind
	now := c.now().UnixNano()
	if err := usable(e, now); err != nil {
		return nil, o, err
	}
	switch {
	case !e.AllowsIP(req.ClientIP):
		return nil, o, apierr.ErrIPNotAllowed
	case !scope.CoversString(e.ScopeHeader, req.Required):
		return nil, o, apierr.ErrInsufficientScope
	}
	if err := admit(req.Legacy, e.Kind); err != nil {
		return nil, o, err
	}
	c.recordUse(e, now, req, h)
	return e, o, nil
}

// Active reports whether tok is a token of ours that would be accepted
// (ignoring the caller's address and scopes), with its decision:
// what introspection (RFC 7662) answers. A malformed or unknown token is
// inactive, not an error; errors mean the store is unavailable.
func (c *Checker) Active(ctx context.Context, tok string) (*decision.Decision, bool, error) {
	e, err := c.Lookup(ctx, tok)
	switch {
	case errors.Is(err, apierr.ErrUnavailable):
		return nil, false, err
	case err != nil:
		return nil, false, nil
	}
	return e, usable(e, c.now().UnixNano()) == nil, nil
}

// usable applies what does not depend on the request.
func usable(e *decision.Decision, now int64) error {
	switch {
	case e.Missing:
		return apierr.ErrInvalidToken
	case e.Refusal != nil:
		return e.Refusal
	case e.ExpiresAt != 0 && now >= e.ExpiresAt:
		return apierr.ErrExpiredToken
	}
	return nil
}

// Lookup returns the decision for a token of ours (a PAT, a legacy
// token or one of our access tokens), told by its shape, through the
// cache. Malformed tokens are refused before any I/O; a cache hit costs a
// hash and a map read, without allocation.
func (c *Checker) Lookup(ctx context.Context, tok string) (*decision.Decision, error) {
	e, _, _, err := c.lookup(ctx, token.Classify(tok), tok, netip.Addr{}, nil)
	return e, err
}

// lookup is Lookup for a token of shape kind, for a client at addr
// (invalid: not limited), on a site that also accepts the external
// issuers. It also says whether the decision came from the cache.
func (c *Checker) lookup(ctx context.Context, kind token.Kind, tok string, addr netip.Addr, external []External) (*decision.Decision, [32]byte, bool, error) {
	switch {
	case kind == token.Malformed:
		return nil, [32]byte{}, false, apierr.ErrMalformedToken
	case kind == token.JWT && c.jwts == nil && len(external) == 0:
		return nil, [32]byte{}, false, apierr.ErrUnsupportedToken
	}
	h := token.Hash(tok)
	e, cached, err := c.lookupCached(ctx, kind, tok, h, addr, external)
	if c.metrics != nil {
		c.metrics.CacheLookup(cached, cached && e.Negative())
	}
	return e, h, cached, err
}

// lookupCached is lookup for a well-formed token.
func (c *Checker) lookupCached(ctx context.Context, kind token.Kind, tok string, h [32]byte, addr netip.Addr, external []External) (*decision.Decision, bool, error) {
	e, hit := c.cache.Get(h)
	// Entries under h are our own verdicts. A refusal there may be our
	// verifier's opinion of another issuer's token, which a site that
	// accepts that issuer must not take as final.
	if hit && (kind != token.JWT || len(external) == 0 || e.Refusal == nil) {
		return e, true, nil
	}
	switch {
	case kind != token.JWT:
		e, err := c.fill(ctx, addr, h, c.loadStored)
		return e, false, err
	case len(external) > 0:
		for _, x := range external {
			if e, ok := c.cache.Get(x.CacheKey(h)); ok {
				return e, true, nil
			}
		}
		iss := jwt.UnverifiedIssuer(tok)
		for _, x := range external {
			if x.Issuer() == iss {
				e, err := c.fill(ctx, addr, x.CacheKey(h), func(ctx context.Context, _ [32]byte) (*decision.Decision, error) { return x.Verify(ctx, tok) })
				return e, false, err
			}
		}
	}
	if hit {
		return e, true, nil
	}
	if c.jwts == nil {
		return nil, false, fmt.Errorf("%w: unknown issuer", apierr.ErrInvalidToken)
	}
	e, err := c.fill(ctx, addr, h, func(ctx context.Context, _ [32]byte) (*decision.Decision, error) { return c.jwts.Verify(ctx, tok) })
	return e, false, err
}

// recordUse queues a last-use write at most once per lastUseEvery per
// stored token and address on this node: a use from an address not
// recorded within the interval is recorded at once (so the recent
// addresses see a token's every address, a thief's one request among a
// fleet's many too), repeated uses from one address once per interval
// (see decision.UseMemory: a fleet of up to four addresses costs no more
// than one).
func (c *Checker) recordUse(e *decision.Decision, now int64, req Request, h [32]byte) {
	if e.Kind != store.KindPAT && e.Kind != store.KindLegacy {
		// Access tokens and external JWTs have no stored record to update.
		return
	}
	if !e.Uses.Due(decision.AddrPrint(req.ClientIP), now, c.lastUseEvery) {
		return
	}
	// The hash (the cache key, store.TokenHash's SHA-256 of the token) is
	// for the "used from a new address" event.
	// The site is the client's Host, bounded and printable (store.CleanHost).
	u := store.LastUse{Owner: e.Owner, TokenID: e.TokenID, At: time.Unix(0, now).UTC(), Host: store.CleanHost(req.Host), Hash: h}
	if req.ClientIP.IsValid() {
		u.IP = req.ClientIP.String()
	}
	c.uses.Record(u)
}

// fill calls load for h after a cache miss, on behalf of a client at addr,
// and caches the result. A client past its limit of failed look-ups is
// refused before any I/O; a look-up that finds a token that could be good
// (or fails on our side) is not counted against it, while one that finds
// nothing or a forgery (an unknown key id too) is.
func (c *Checker) fill(ctx context.Context, addr netip.Addr, h [32]byte, load func(context.Context, [32]byte) (*decision.Decision, error)) (*decision.Decision, error) {
	if wait := c.failures.Reserve(addr); wait > 0 {
		return nil, &apierr.RateLimited{RetryAfter: wait}
	}
	e, err := c.fillShared(ctx, h, load)
	if err != nil && c.stale > 0 && errors.Is(err, breaker.ErrOpen) {
		// The store is known to be down: an answer that was good a little
		// while ago is used, within the configured window only.
		if old, ok := c.cache.GetStale(h, c.stale); ok {
			e, err = old, nil
		}
	}
	if failed := errors.Is(err, apierr.ErrInvalidToken) || (err == nil && e.Negative()); !failed {
		c.failures.Refund(addr)
	}
	return e, err
}

// fillShared loads and caches h; concurrent misses for the same hash in
// one generation of the cache share one load, detached from the first
// caller's context (its cancellation must not fail the requests that
// share the read). A miss after an invalidation does not share a load
// begun before it, which may have read what the invalidation announced
// was replaced.
func (c *Checker) fillShared(ctx context.Context, h [32]byte, load func(context.Context, [32]byte) (*decision.Decision, error)) (*decision.Decision, error) {
	gen := c.cache.Generation()
	return c.loads.Do(ctx, gen, string(h[:]), func(lctx context.Context) (*decision.Decision, error) {
		// A miss that reaches Do just after another look-up of h finished
		// (and filled the cache) must not load again.
		if e, ok := c.cache.Get(h); ok {
			return e, nil
		}
		e, err := load(lctx, h)
		if err != nil {
			return nil, err
		}
		c.cache.Fill(h, e, gen)
		return e, nil
	})
}

// loadStored reads a PAT or legacy token from the store.
func (c *Checker) loadStored(ctx context.Context, h [32]byte) (*decision.Decision, error) {
	g, err := c.store.LookupToken(ctx, store.TokenHash(h))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &decision.Decision{Missing: true}, nil
	case err != nil:
		// %w: the store's error says whether its breaker is open and when
		// to come back.
		return nil, fmt.Errorf("%w: %w", apierr.ErrUnavailable, err)
	}
	return decisionFor(g), nil
}

// decisionFor turns a store grant into its decision.
func decisionFor(g store.Grant) *decision.Decision {
	t := g.Token
	e := &decision.Decision{
		Owner:       t.Owner,
		User:        t.Owner,
		TokenID:     t.ID,
		Kind:        t.Kind,
		ScopeHeader: strings.Join(t.Scopes, " "),
		Refusal:     refusal(g),
	}
	if !t.ExpiresAt.IsZero() {
		e.ExpiresAt = t.ExpiresAt.UnixNano()
	}
	// A previous secret (a rotation's overlap) expires at the overlap's
	// end: the cached decision is refused from then on, on every node,
	// whatever the cache's TTL.
	if !g.PreviousUntil.IsZero() && (e.ExpiresAt == 0 || g.PreviousUntil.UnixNano() < e.ExpiresAt) {
		e.ExpiresAt = g.PreviousUntil.UnixNano()
	}
	allowed, err := iplist.Parse(t.AllowedIPs)
	if err != nil {
		// A stored list that does not parse must not widen access.
		e.Refusal = fmt.Errorf("%w: stored IP allow-list is invalid", apierr.ErrIPNotAllowed)
	}
	e.AllowedIPs = allowed
	return e
}

// refusal says why a token must be refused whatever the request, or nil.
func refusal(g store.Grant) error {
	switch {
	case g.Owner.Disabled:
		return fmt.Errorf("%w: the user is disabled", apierr.ErrLoginNotAllowed)
	case !g.Owner.TokenLogin:
		return apierr.ErrLoginNotAllowed
	case !g.Token.Enabled:
		return apierr.ErrTokenDisabled
	}
	return nil
}
