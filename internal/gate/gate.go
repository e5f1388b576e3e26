// Package gate is the edge check: it takes a bearer token, tells its kind
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

	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/identity"
	"github.com/tokengate/tokengate/internal/iplist"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/scope"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

// lookupTimeout bounds one store look-up shared by concurrent requests.
const lookupTimeout = 5 * time.Second

// Checker checks bearer tokens. It is safe for concurrent use.
type Checker struct {
	store store.Store
	cache *cache.Cache
	uses  *lastuse.Recorder
	now   func() time.Time
	// lastUseEvery: a token's use is queued at most this often per node.
	lastUseEvery int64
	group        singleflight.Group
}

// Options configure a Checker.
type Options struct {
	// LastUseEvery is the least time between two recorded uses of one token
	// on this node (default 1s).
	LastUseEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns a Checker.
func New(s store.Store, c *cache.Cache, uses *lastuse.Recorder, o Options) *Checker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LastUseEvery <= 0 {
		o.LastUseEvery = time.Second
	}
	return &Checker{store: s, cache: c, uses: uses, now: o.Now, lastUseEvery: int64(o.LastUseEvery)}
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
}

// Check decides a request. The error is one of apierr's edge errors,
// possibly wrapped with detail for the log (never the token).
func (c *Checker) Check(ctx context.Context, req Request) (identity.Identity, error) {
	if req.Token == "" {
		return identity.Identity{}, apierr.ErrNoToken
	}
	switch token.Classify(req.Token) {
	case token.PAT, token.Legacy:
	case token.JWT:
		return identity.Identity{}, apierr.ErrUnsupportedToken
	default:
		return identity.Identity{}, apierr.ErrMalformedToken
	}
	h := token.Hash(req.Token)
	e, err := c.entry(ctx, h)
	if err != nil {
		return identity.Identity{}, err
	}
	now := c.now().UnixNano()
	switch {
	case e.Missing:
		return identity.Identity{}, apierr.ErrInvalidToken
	case e.Refusal != nil:
		return identity.Identity{}, e.Refusal
	case e.ExpiresAt != 0 && now >= e.ExpiresAt:
		return identity.Identity{}, apierr.ErrExpiredToken
	case !e.AllowsIP(req.ClientIP):
		return identity.Identity{}, apierr.ErrIPNotAllowed
	case !scope.Covers(e.Scopes, req.Required):
		return identity.Identity{}, apierr.ErrInsufficientScope
	}
	c.recordUse(e, now, req.ClientIP)
	return identity.Identity{User: e.Owner, TokenType: e.Kind, TokenID: e.TokenID, Scopes: e.ScopeHeader}, nil
}

// recordUse queues a last-use write at most once per lastUseEvery per
// token on this node.
func (c *Checker) recordUse(e *cache.Entry, now int64, ip netip.Addr) {
	last := e.LastUse.Load()
	if now-last < c.lastUseEvery || !e.LastUse.CompareAndSwap(last, now) {
		return
	}
	u := store.LastUse{Owner: e.Owner, TokenID: e.TokenID, At: time.Unix(0, now).UTC()}
	if ip.IsValid() {
		u.IP = ip.String()
	}
	c.uses.Record(u)
}

// entry returns the cached decision inputs for h, reading the store on a
// miss. Concurrent misses for the same hash share one store read.
func (c *Checker) entry(ctx context.Context, h [32]byte) (*cache.Entry, error) {
	if e, ok := c.cache.Get(h); ok {
		return e, nil
	}
	v, err, _ := c.group.Do(string(h[:]), func() (any, error) {
		// A miss that reaches Do just after another look-up of h finished
		// (and filled the cache) must not read the store again.
		if e, ok := c.cache.Get(h); ok {
			return e, nil
		}
		// Detached from the first caller's context: its cancellation must
		// not fail the requests that share this read.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		gen := c.cache.Generation()
		g, err := c.store.LookupToken(lctx, store.TokenHash(h))
		var e *cache.Entry
		switch {
		case errors.Is(err, store.ErrNotFound):
			e = &cache.Entry{Missing: true}
		case err != nil:
			return nil, fmt.Errorf("%w: %v", apierr.ErrUnavailable, err)
		default:
			e = EntryFor(g)
		}
		c.cache.Fill(h, e, gen)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cache.Entry), nil
}

// EntryFor turns a store grant into cached decision inputs.
func EntryFor(g store.Grant) *cache.Entry {
	t := g.Token
	e := &cache.Entry{
		Owner:       t.Owner,
		TokenID:     t.ID,
		Kind:        t.Kind,
		Scopes:      t.Scopes,
		ScopeHeader: strings.Join(t.Scopes, " "),
		Refusal:     Refusal(g),
	}
	if !t.ExpiresAt.IsZero() {
		e.ExpiresAt = t.ExpiresAt.UnixNano()
	}
	allowed, err := iplist.Parse(t.AllowedIPs)
	if err != nil {
		// A stored list that does not parse must not widen access.
		e.Refusal = fmt.Errorf("%w: stored IP allow-list is invalid", apierr.ErrIPNotAllowed)
	}
	e.AllowedIPs = allowed
	return e
}

// Refusal says why a token must be refused whatever the request, or nil.
func Refusal(g store.Grant) error {
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

// HandleEvent drops the cached entries an Event concerns. Pass it to
// store.Subscribe.
func (c *Checker) HandleEvent(ev store.Event) {
	switch ev.Kind {
	case store.EventToken:
		c.cache.Invalidate(ev.Hash)
	case store.EventUser:
		c.cache.InvalidateOwner(ev.Owner)
	default:
		c.cache.Clear()
	}
}
