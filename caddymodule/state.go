package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/cache"
	"github.com/tokengate/tokengate/internal/invalidate"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/oauth"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
)

// statePool keeps the store connection, the cache and their background
// work alive across config reloads: a reload provisions the new config
// before cleaning up the old one, and both refer to the same entry. (The
// embedded store's file lock also means it must not be opened twice.)
var statePool = caddy.NewUsagePool()

func defaultStorePath() string {
	return filepath.Join(caddy.AppDataDir(), "tokengate", "tokengate.db")
}

// storeLocation is a parsed `store` setting.
type storeLocation struct {
	redisURL string // set for Redis
	path     string // set for the embedded store
}

func parseStoreLocation(s string) (storeLocation, error) {
	if strings.HasPrefix(s, "redis") && strings.Contains(s, "://") {
		if _, err := redisstore.ParseURL(s); err != nil {
			return storeLocation{}, err
		}
		return storeLocation{redisURL: s}, nil
	}
	if strings.Contains(s, "://") {
		return storeLocation{}, fmt.Errorf("unsupported store URL scheme in %q: use redis://, rediss://, redis-sentinel://, redis-cluster:// or a file path", redisstore.Redacted(s))
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return storeLocation{}, err
	}
	return storeLocation{path: abs}, nil
}

// String names the location without any password.
func (l storeLocation) String() string {
	if l.redisURL != "" {
		return redisstore.Redacted(l.redisURL)
	}
	return l.path
}

// poolKey identifies the connection. It includes a digest of the full URL
// so that configs differing only in credentials do not share a client,
// while the key itself never holds the password.
func (l storeLocation) poolKey() string {
	if l.redisURL == "" {
		return "file:" + l.path
	}
	sum := sha256.Sum256([]byte(l.redisURL))
	return l.String() + "#" + hex.EncodeToString(sum[:8])
}

// sharedState is what outlives a config: the store, the cache, the checker
// and the background goroutines (invalidation subscription, last-access
// flushing), stopped by Destruct when the last config using it goes away.
type sharedState struct {
	store   store.Store
	cache   *cache.Cache
	uses    *lastuse.Recorder
	clients *oauth.ClientTable
	denied  *oauth.DenyList
	keys    *keyring.Holder
	acl     *acl.ACL
	cancel  context.CancelFunc
	done    chan struct{}
}

func openStore(loc storeLocation) (store.Store, error) {
	if loc.redisURL != "" {
		return redisstore.Open(loc.redisURL, redisstore.Options{})
	}
	return boltstore.Open(loc.path, boltstore.Options{})
}

// newSharedState opens the store and starts the background work. The
// keyring's settings come from the first config; later configs apply
// theirs with keys.Configure.
func newSharedState(loc storeLocation, flushEvery time.Duration, logger *zap.Logger) (*sharedState, error) {
	st, err := openStore(loc)
	if err != nil {
		return nil, err
	}
	s := &sharedState{
		store: st, cache: cache.New(cache.Options{}), uses: lastuse.New(st),
		clients: oauth.NewClientTable(st), denied: oauth.NewDenyList(st),
		keys: keyring.NewHolder(st, keyring.Policy{}, "", 0, nil), acl: acl.New(st), done: make(chan struct{}),
	}
	targets := invalidate.Targets{Cache: s.cache, Clients: s.clients, Denied: s.denied, Keys: s.keys, ACL: s.acl}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := st.Subscribe(ctx, targets.Handle); err != nil {
		cancel()
		_ = st.Close()
		return nil, fmt.Errorf("subscribing to store changes: %v", err)
	}
	go func() {
		defer close(s.done)
		s.uses.Run(ctx, flushEvery, func(err error) {
			logger.Warn("writing last token use failed; will retry", zap.Error(err))
		})
	}()
	return s, nil
}

// Destruct stops the background work (flushing pending last-use records)
// and closes the store.
func (s *sharedState) Destruct() error {
	s.cancel()
	<-s.done
	return s.store.Close()
}
