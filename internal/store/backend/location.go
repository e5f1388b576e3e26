// Package backend turns the `store` setting into a store: it parses the
// location (a Redis URL or a file path for the embedded store), refusing
// what looks like a mistyped URL, and opens and attaches the backend to a
// store.Deferred (the embedded store at once, Redis in the background until
// its server answers).
package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
)

// Location is a parsed `store` setting: a Redis URL or the absolute path
// of the embedded store's file.
type Location struct {
	redisURL string // set for Redis
	path     string // set for the embedded store
	// ping is redisstore.Options.PingInterval (0: its default).
	ping time.Duration
	// durability is what Redis writes wait for (nil: redisstore's default
	// for the URL).
	durability *redisstore.Durability
}

// WithPingInterval returns l with the interval at which a Redis store
// pings its own subscription (redisstore.Options.PingInterval; 0: the
// default). It does not change PoolKey; the embedded store ignores it.
func (l Location) WithPingInterval(d time.Duration) Location {
	l.ping = d
	return l
}

// WithDurability returns l whose Redis writes wait for replicas as d says
// (nil: the default, see redisstore.Options.Durability). It refuses
// replicas for the embedded store (it has none).
func (l Location) WithDurability(d *redisstore.Durability) (Location, error) {
	if d == nil {
		l.durability = nil
		return l, nil
	}
	if d.Replicas > 0 && l.redisURL == "" {
		return l, errors.New("the embedded store has no replicas to wait for; set replicas to 0 or use Redis")
	}
	if d.Replicas < 0 || d.Timeout < 0 {
		return l, errors.New("replicas and timeout must not be negative")
	}
	dd := *d
	l.durability = &dd
	return l, nil
}

// schemeLike matches a leading URL scheme, with whatever follows it.
var schemeLike = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)(://|:|//)`)

// Parse reads a `store` setting. A URL with one of the Redis schemes is
// checked with redisstore.ParseURL. Anything that looks like a URL but is
// not one of those (an unknown or misspelt scheme, "redis//host",
// "redis:/host", "host:6379") is refused with a hint naming the scheme
// probably meant, rather than taken for a file name. Anything else is a
// file path for the embedded store: absolute, or relative to the working
// directory when it starts with ./ or ../ (a bare word such as "redis",
// "localhost" or "redis.internal/0" is more likely a host than a file, so
// it is refused with both readings as hints). A ':' before the first '/'
// of a path is refused, except in a Windows volume name ("C:\...").
//
// Error messages never hold a password: the value is quoted redacted.
func Parse(s string) (Location, error) {
	if strings.TrimSpace(s) == "" {
		return Location{}, fmt.Errorf("the store location is empty")
	}
	if strings.Contains(s, "://") {
		sch, _, _ := strings.Cut(s, "://")
		if redisstore.IsScheme(sch) {
			if _, err := redisstore.ParseURL(s); err != nil {
				return Location{}, err
			}
			return Location{redisURL: s}, nil
		}
	}
	if err := notAURL(s); err != nil {
		return Location{}, err
	}
	if err := notABareWord(s); err != nil {
		return Location{}, err
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Location{}, err
	}
	return Location{path: abs}, nil
}

// notAURL refuses a path that looks like a URL that is not one of ours.
func notAURL(s string) error {
	if filepath.VolumeName(s) != "" {
		return nil
	}
	m := schemeLike.FindStringSubmatch(s)
	if m == nil {
		first, _, _ := strings.Cut(s, "/")
		if strings.Contains(first, ":") {
			return hostPortError(s)
		}
		return nil
	}
	word, sep := m[1], m[2]
	guess, near := nearestScheme(word)
	if sep == "//" && !near {
		return nil // a path such as "data//tokengate.db"
	}
	quoted := redisstore.Redacted(s)
	switch {
	case near && sep == "://":
		return fmt.Errorf("unknown store URL scheme %q in %q: did you mean %s://? (accepted: %s, or a file path)",
			word, quoted, guess, strings.Join(redisstore.Schemes(), ", "))
	case near:
		return fmt.Errorf("store %q is neither a URL nor a file path: did you mean %s://%s?", quoted, guess, strings.TrimLeft(quoted[len(word)+len(sep):], "/"))
	case sep == "://":
		return fmt.Errorf("unsupported store URL scheme %q in %q: the store is Redis, redis://host:port (or %s), or a file path for the embedded store",
			word, quoted, strings.Join(redisstore.Schemes()[1:], ", "))
	}
	return hostPortError(s)
}

// notABareWord refuses a relative path that does not start with ./ or ../
// (it may be a host name written without redis://), and a path starting
// with "//" (a URL without its scheme).
func notABareWord(s string) error {
	quoted := redisstore.Redacted(s)
	switch {
	case strings.HasPrefix(s, "//"):
		return fmt.Errorf("store %q looks like a URL without its scheme: did you mean redis:%s?", quoted, quoted)
	case filepath.IsAbs(s) || filepath.VolumeName(s) != "" ||
		strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || s == "." || s == "..":
		return nil
	}
	return fmt.Errorf("store %q is ambiguous: write ./%s for a file in the working directory, or redis://%s for a Redis server", quoted, quoted, quoted)
}

// hostPortError refuses s, which has a ':' before its first '/'.
func hostPortError(s string) error {
	quoted := redisstore.Redacted(s)
	return fmt.Errorf("store %q looks like host:port or a URL without \"//\", not a file path: did you mean redis://%s? (a file name with ':' must start with ./)", quoted, quoted)
}

// nearestScheme returns the accepted scheme closest to word (compared in
// lower case) and whether it is close enough to be a typing mistake.
func nearestScheme(word string) (string, bool) {
	word = strings.ToLower(word)
	best, dist := "", -1
	for _, s := range redisstore.Schemes() {
		if d := editDistance(word, s); dist < 0 || d < dist {
			best, dist = s, d
		}
	}
	return best, dist <= 2
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// IsRedis reports whether the location is a Redis URL.
func (l Location) IsRedis() bool { return l.redisURL != "" }

// String names the location without any password.
func (l Location) String() string {
	if l.redisURL != "" {
		return redisstore.Redacted(l.redisURL)
	}
	return l.path
}

// PoolKey identifies the connection. It includes a digest of the full URL
// so that configs differing only in credentials do not share a client,
// while the key itself never holds the password.
func (l Location) PoolKey() string {
	if l.redisURL == "" {
		return "file:" + l.path
	}
	sum := sha256.Sum256([]byte(l.redisURL))
	key := l.String() + "#" + hex.EncodeToString(sum[:8])
	if d := l.durability; d != nil {
		// Another durability needs another store (its writes wait
		// differently); the embedded store's key never changes, as its
		// file may be opened once only.
		key += fmt.Sprintf("#durability=%d/%v", d.Replicas, d.Timeout)
	}
	return key
}

// open opens the backend. For Redis nothing is contacted yet (the first
// call does), and logger gets its subscription's outages; the embedded
// store creates and locks its file.
func (l Location) open(logger *zap.Logger) (store.Store, error) {
	if l.redisURL != "" {
		return redisstore.Open(l.redisURL, redisstore.Options{
			Logger:       logger,
			PingInterval: l.ping,
			Durability:   l.durability,
			OnNewPrimary: newPrimaryLogger(logger),
		})
	}
	return boltstore.Open(l.path, boltstore.Options{})
}

// newPrimaryLogger logs a Sentinel or Cluster failover as the store saw
// it: once per new primary, with what the replay of recent revocations
// did.
func newPrimaryLogger(logger *zap.Logger) func(old, new string, r redisstore.ReplayReport) {
	return func(old, new string, r redisstore.ReplayReport) {
		fields := []zap.Field{zap.String("old_primary", old), zap.String("new_primary", new),
			zap.Int("replayed", r.Replayed), zap.Int("replay_failed", r.Failed)}
		if r.NotDurable != nil {
			// applied, but the new primary has no replica to acknowledge them yet
			fields = append(fields, zap.NamedError("replay_not_durable", r.NotDurable))
		}
		if r.Failed > 0 {
			logger.Error("Redis primary changed (failover); some recent revocations could not be written again on the new primary; caches emptied",
				append(fields, zap.Errors("errors", r.Errors))...)
			return
		}
		logger.Warn("Redis primary changed (failover); recent revocations written again on the new primary; caches emptied", fields...)
	}
}
