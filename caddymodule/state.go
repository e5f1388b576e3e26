package caddymodule

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/assertion"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/backend"
	"github.com/tokengate/tokengate/internal/streak"
)

// statePool keeps the store connection, the cache and their background
// work alive across config reloads: a reload provisions the new config
// before cleaning up the old one, and both refer to the same entry. (The
// embedded store's file lock also means it must not be opened twice.)
var statePool = caddy.NewUsagePool()

func defaultStorePath() string {
	return filepath.Join(caddy.AppDataDir(), "tokengate", "tokengate.db")
}

// sharedState is what outlives a config: the store (with its circuit
// breaker), the cache, the checker and the background goroutines
// (invalidation subscription, last-access flushing, the breaker's probe),
// stopped by Destruct when the last config using it goes away.
//
// Making it opens nothing: the store is a store.Deferred, attached by
// start (App.Start), so that `tokengate validate` neither locks nor creates
// anything and a Redis that is down at start-up does not stop the server.
type sharedState struct {
	loc     backend.Location
	store   *store.Deferred
	cache   *cache.Cache
	uses    *lastuse.Recorder
	clients *oauthclient.Table
	denied  *accesstoken.DenyList
	keys    *keyring.Holder
	// assertionKeys are the identity assertion keyrings, one per
	// asymmetric algorithm (each its own store document).
	assertionKeys map[string]*keyring.Holder
	acl           *acl.ACL
	// metrics are the collectors, registered in every config's registry
	// (App.Provision), so that counters outlive reloads as the state does.
	metrics *metrics.Set
	// webhook delivers lifecycle events (its queue outlives reloads);
	// expiry looks for tokens about to expire. Each config's Start
	// configures both (no events block: off).
	webhook   *events.Webhook
	expiry    *events.ExpiryScanner
	addresses *events.Addresses
	// addressChecks follows the failures of addresses' checks, run after
	// each last-use flush.
	addressChecks streak.Streak
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	// dormancy applies the token policy's dormancy rule (each config's
	// Start configures it; no token_policy: off).
	dormancy *policy.Scanner

	mu      sync.Mutex
	started bool
	// ping is the newest config's invalidation_ping (0: the default).
	ping time.Duration
}

// newSharedState builds the state on a store that is not open yet. The
// keyring's settings come from the first config; later configs apply
// theirs with keys.Configure.
func newSharedState(loc backend.Location) (*sharedState, error) {
	st := store.NewDeferred()
	s := &sharedState{
		loc: loc, store: st, cache: cache.New(cache.Options{}), uses: lastuse.New(st),
		clients: oauthclient.NewTable(st), denied: accesstoken.NewDenyList(st),
		keys: keyring.NewHolder(st, keyring.Policy{}, "", 0, nil), acl: acl.New(st),
	}
	s.assertionKeys = map[string]*keyring.Holder{}
	for _, alg := range []string{jwt.ES256, jwt.RS256, jwt.EdDSA} {
		// Lifetime: the longest an assertion lives, so that a retiring key
		// verifies until the last assertion it signed has expired.
		s.assertionKeys[alg] = keyring.NewDocumentHolder(st, assertion.DocumentName(alg), keyring.Policy{}, alg, assertion.MaxLifetime, nil)
	}
	s.metrics = metrics.New(metrics.Funcs{
		CacheEntries:   func() float64 { return float64(s.cache.Len()) },
		CacheEvictions: func() float64 { return float64(s.cache.Evictions()) },
		BreakerOpen: func() float64 {
			if st.Breaker().Open() {
				return 1
			}
			return 0
		},
		BreakerOpens: func() float64 { return float64(st.Breaker().Opens()) },
		WebhookQueue: func() float64 { return float64(s.webhook.Len()) },
		TaskFailures: map[string]func() float64{
			"last_use_flush":    func() float64 { return float64(s.uses.Failures()) },
			"new_address_check": func() float64 { return float64(s.addressChecks.Failures()) },
			"expiry_scan":       func() float64 { return float64(s.expiry.Failures()) },
			"dormancy_scan":     func() float64 { return float64(s.dormancy.Failures()) },
		},
	})
	s.webhook = events.NewWebhook(s.metrics, nil)
	s.expiry = events.NewExpiryScanner(st, s.webhook, nil)
	s.addresses = events.NewAddresses(st, s.webhook, 0)
	s.dormancy = policy.NewScanner(st, s.uses, s.webhook, nil)
	s.keys.SetEvents(s.webhook)
	st.SetObserver(s.metrics)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	targets := invalidate.Targets{Cache: s.cache, Clients: s.clients, Denied: s.denied, Keys: s.keys, ACL: s.acl, Metrics: s.metrics,
		AssertionKeys: s.invalidateAssertionKeys}
	if err := st.Subscribe(s.ctx, targets.Handle); err != nil {
		s.cancel()
		return nil, fmt.Errorf("subscribing to store changes: %v", err)
	}
	return s, nil
}

// invalidateAssertionKeys drops this node's copy of the assertion
// keyring in document doc ("": every one).
func (s *sharedState) invalidateAssertionKeys(doc string) {
	for alg, h := range s.assertionKeys {
		if doc == "" || doc == assertion.DocumentName(alg) {
			h.Invalidate()
		}
	}
}

// start opens the store (see backend.Connect) and starts the background
// work, once for all the configs sharing the state; after a failure the
// next config's start tries again.
func (s *sharedState) start(flushEvery time.Duration, logger *zap.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil
	}
	if err := backend.Connect(s.ctx, s.store, s.loc.WithPingInterval(s.ping), logger, &s.wg); err != nil {
		return err
	}
	s.started = true
	s.uses.OnWritten(func(ctx context.Context, batch []store.LastUse) {
		s.addressChecks.Record(s.addresses.Written(ctx, batch), logger, "checking tokens' addresses for the used_from_new_address event")
	})
	s.wg.Add(5)
	go func() {
		defer s.wg.Done()
		s.dormancy.Run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.webhook.Run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.expiry.Run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.uses.Run(s.ctx, flushEvery, logger)
	}()
	go func() {
		defer s.wg.Done()
		s.store.Probe(s.ctx) // the circuit breaker's probe
	}()
	return nil
}

// pingSetter is a store whose subscription pings itself (Redis).
type pingSetter interface {
	SetPingInterval(time.Duration)
}

// setPingInterval applies a config's invalidation_ping: to the store when
// it is open (a reload), else when start opens it.
func (s *sharedState) setPingInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ping = d
	if ps, ok := s.store.Backend().(pingSetter); ok {
		ps.SetPingInterval(d)
	}
}

// Destruct stops the background work (flushing pending last-use records)
// and closes the store.
func (s *sharedState) Destruct() error {
	s.cancel()
	s.wg.Wait()
	return s.store.Close()
}
