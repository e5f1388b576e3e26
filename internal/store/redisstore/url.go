package redisstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redacted replaces passwords in Redacted, as net/url's URL.Redacted does.
const redacted = "xxxxx"

// topology is the kind of deployment a URL scheme names.
type topology int

// Topologies.
const (
	single topology = iota
	sentinel
	cluster
)

// scheme describes one accepted URL scheme.
type scheme struct {
	topology    topology
	tls         bool
	defaultPort string
}

// schemes are the accepted URL schemes. go-redis knows only redis:// and
// rediss://; the sentinel and cluster forms, which list several hosts, are
// ours.
var schemes = map[string]scheme{
	"redis":           {single, false, "6379"},
	"rediss":          {single, true, "6379"},
	"redis-sentinel":  {sentinel, false, "26379"},
	"rediss-sentinel": {sentinel, true, "26379"},
	"redis-cluster":   {cluster, false, "6379"},
	"rediss-cluster":  {cluster, true, "6379"},
}

// IsScheme reports whether s (as written, lower case) is an accepted URL
// scheme.
func IsScheme(s string) bool {
	_, ok := schemes[s]
	return ok
}

// Schemes returns the accepted URL schemes, sorted.
func Schemes() []string {
	out := make([]string, 0, len(schemes))
	for s := range schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Query parameters handled here rather than by go-redis.
const (
	paramMaster           = "master"
	paramSentinelUsername = "sentinel_username"
	paramSentinelPassword = "sentinel_password"
)

// secretParams are query parameters whose values Redacted hides.
var secretParams = []string{paramSentinelPassword, "password"}

// ClientOptions are the options of the go-redis client that a URL names;
// exactly one field is set.
type ClientOptions struct {
	// Single is one server (redis://, rediss://).
	Single *redis.Options
	// Failover is a master managed by Sentinels (redis-sentinel://,
	// rediss-sentinel://).
	Failover *redis.FailoverOptions
	// Cluster is a Redis Cluster (redis-cluster://, rediss-cluster://),
	// even when the URL names one seed node.
	Cluster *redis.ClusterOptions
}

// NewClient returns the client the options describe. It does not contact
// the server.
func (o *ClientOptions) NewClient() redis.UniversalClient {
	switch {
	case o.Failover != nil:
		return redis.NewFailoverClient(o.Failover)
	case o.Cluster != nil:
		return redis.NewClusterClient(o.Cluster)
	default:
		return redis.NewClient(o.Single)
	}
}

// ParseURL parses a Redis URL into the options of a go-redis client:
//
//	redis://[user:pass@]host[:port][/db][?opts]
//	rediss://...                                  (the same over TLS)
//	redis-sentinel://[user:pass@]host1[:port1],host2[:port2][/db]?master=NAME[&sentinel_username=U][&sentinel_password=P][&opts]
//	redis-cluster://[user:pass@]host1[:port1],host2[:port2][?opts]
//	rediss-sentinel://..., rediss-cluster://...   (TLS)
//
// user:pass authenticate to the data nodes; sentinel_username and
// sentinel_password to the sentinels. The default port is 6379 (26379 for
// sentinels). A cluster has only database 0, so a cluster URL names none.
// opts are go-redis's query parameters (dial_timeout, pool_size, ...; see
// redis.ParseURL and redis.ParseClusterURL). Special characters in the
// password should be percent-encoded, but a raw '@', ':', '/', '?' or '#'
// is tolerated: the user information ends at the last '@'. A '@' elsewhere
// (in a query value) must therefore be written %40.
//
// Errors never contain the password.
func ParseURL(s string) (*ClientOptions, error) {
	p, err := splitURL(s)
	if err != nil {
		return nil, fmt.Errorf("redisstore: bad Redis URL %q: %w", Redacted(s), err)
	}
	o, err := p.options()
	if err != nil {
		return nil, fmt.Errorf("redisstore: bad Redis URL %q: %w", Redacted(s), err)
	}
	return o, nil
}

// Redacted returns s with its password (and any sentinel_password) replaced
// by "xxxxx", for logs and as a connection identity that never shows a
// secret. It works on malformed URLs too.
func Redacted(s string) string {
	p := rawSplit(s)
	var b strings.Builder
	if p.scheme != "" {
		b.WriteString(p.scheme + "://")
	}
	if p.hasUser {
		b.WriteString(p.user)
		if p.hasPassword {
			b.WriteString(":" + redacted)
		}
		b.WriteString("@")
	}
	b.WriteString(p.hosts + p.path)
	if p.hasQuery {
		b.WriteString("?" + redactQuery(p.query))
	}
	return b.String()
}

// redactQuery hides the values of secretParams in a raw query, keeping
// everything else byte for byte.
func redactQuery(q string) string {
	pairs := strings.Split(q, "&")
	for i, pair := range pairs {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		for _, secret := range secretParams {
			if strings.EqualFold(key, secret) {
				pairs[i] = key + "=" + redacted
			}
		}
	}
	return strings.Join(pairs, "&")
}

// rawURL is a URL cut into its parts without validation. user and password
// are still percent-encoded.
type rawURL struct {
	scheme               string
	user, password       string
	hasUser, hasPassword bool
	hosts                string // comma-separated host[:port] list
	path                 string // "" or starting with '/'
	query                string // without '?'
	hasQuery             bool
}

// rawSplit cuts s into parts. It never fails, so that Redacted can hide
// the password of any string. The user information ends at the last '@'
// after the scheme (so raw special characters in a password cannot leak
// into the host); the host list ends at the next '/', '?' or '#'.
func rawSplit(s string) rawURL {
	var p rawURL
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		p.scheme, rest = s[:i], s[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		p.hasUser = true
		p.user, p.password, p.hasPassword = strings.Cut(rest[:i], ":")
		rest = rest[i+1:]
	}
	rest, _, _ = strings.Cut(rest, "#") // a fragment means nothing here
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	p.hosts, rest = rest[:end], rest[end:]
	p.path, p.query, p.hasQuery = strings.Cut(rest, "?")
	return p
}

// parsedURL is a validated URL.
type parsedURL struct {
	scheme         scheme
	user, password string // decoded
	hasPassword    bool
	addrs          []string // host:port, at least one
	path           string
	query          url.Values
}

// splitURL cuts s into parts and checks the scheme and the host list.
func splitURL(s string) (*parsedURL, error) {
	raw := rawSplit(s)
	if raw.scheme == "" {
		return nil, fmt.Errorf("missing scheme (want %s)", schemeList())
	}
	sch, ok := schemes[strings.ToLower(raw.scheme)]
	if !ok {
		return nil, fmt.Errorf("unknown scheme %q (want %s)", raw.scheme, schemeList())
	}
	p := &parsedURL{scheme: sch, path: raw.path, hasPassword: raw.hasPassword}
	var err error
	if p.user, err = url.PathUnescape(raw.user); err != nil {
		return nil, fmt.Errorf("bad escape in user name: %w", err)
	}
	if p.password, err = url.PathUnescape(raw.password); err != nil {
		return nil, fmt.Errorf("bad escape in password") // no %w: it would quote the password
	}
	if p.addrs, err = parseHosts(raw.hosts, sch); err != nil {
		return nil, err
	}
	if p.query, err = url.ParseQuery(raw.query); err != nil {
		return nil, fmt.Errorf("bad query: %w", err)
	}
	return p, nil
}

// schemeList names the accepted schemes for error messages.
func schemeList() string {
	return "redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster"
}

// parseHosts checks a comma-separated host list and adds default ports.
func parseHosts(list string, sch scheme) ([]string, error) {
	if list == "" {
		return []string{net.JoinHostPort("localhost", sch.defaultPort)}, nil
	}
	hosts := strings.Split(list, ",")
	if sch.topology == single && len(hosts) > 1 {
		return nil, fmt.Errorf("%d hosts in a single-server URL (use redis-sentinel:// or redis-cluster:// for several)", len(hosts))
	}
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addr, err := parseHost(h, sch.defaultPort)
		if err != nil {
			return nil, err
		}
		addrs[i] = addr
	}
	return addrs, nil
}

// parseHost checks host[:port] ([v6]:port for IPv6) and adds the default
// port when there is none.
func parseHost(h, defaultPort string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host in host list")
	}
	host, port := h, defaultPort
	// A colon after the last ']' (or anywhere, without brackets) starts a
	// port; a bare IPv6 address must be bracketed.
	if i := strings.LastIndex(h, ":"); i > strings.LastIndex(h, "]") {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return "", fmt.Errorf("bad address %q: %w", h, err)
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return "", fmt.Errorf("bad address %q: empty host name", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q in address %q (want 1-65535)", port, h)
	}
	return net.JoinHostPort(host, port), nil
}

// options turns the parsed URL into client options, letting go-redis
// parse its own query parameters.
func (p *parsedURL) options() (*ClientOptions, error) {
	switch p.scheme.topology {
	case sentinel:
		return p.sentinelOptions()
	case cluster:
		return p.clusterOptions()
	default:
		return p.singleOptions()
	}
}

// singleOptions parses a redis:// or rediss:// URL with redis.ParseURL.
func (p *parsedURL) singleOptions() (*ClientOptions, error) {
	o, err := redis.ParseURL(p.goRedisURL())
	if err != nil {
		return nil, err
	}
	o.MaintNotificationsConfig = noMaintNotifications()
	return &ClientOptions{Single: o}, nil
}

// noMaintNotifications switches off go-redis's maintenance notifications
// (a Redis Enterprise and Cloud feature: CLIENT MAINT_NOTIFICATIONS). Left
// at go-redis's default, "auto", every new connection sends that
// handshake; open-source Redis refuses it, and go-redis then turns the
// feature off by writing its options from several connections at once (a
// data race the race detector reports, seen on a cluster's parallel
// barriers). Failover clients have it off already.
func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// sentinelOptions parses a redis-sentinel:// URL: the host list names the
// sentinels and the master parameter the monitored master. go-redis
// parses the rest as for one server (redis.ParseURL), and failover copies
// what it parsed.
func (p *parsedURL) sentinelOptions() (*ClientOptions, error) {
	master := p.takeParam(paramMaster)
	if master == "" {
		return nil, fmt.Errorf("a sentinel URL needs ?%s=NAME (the monitored master's name)", paramMaster)
	}
	sentinelUser := p.takeParam(paramSentinelUsername)
	sentinelPassword := p.takeParam(paramSentinelPassword)
	o, err := redis.ParseURL(p.goRedisURL())
	if err != nil {
		return nil, err
	}
	f := failover(o)
	f.SentinelAddrs = p.addrs
	f.MasterName = master
	f.SentinelUsername = sentinelUser
	f.SentinelPassword = sentinelPassword
	clearServerName(f.TLSConfig)
	return &ClientOptions{Failover: f}, nil
}

// failover returns the options of a Sentinel-managed master with every
// field of o that redis.ParseURL sets (see its setupConnParams), one by
// one; o's Network and Addr name one server and have no counterpart.
// TestEveryParsedOptionReachesTheClient checks that none is missed.
func failover(o *redis.Options) *redis.FailoverOptions {
	return &redis.FailoverOptions{
		Username:                o.Username,
		Password:                o.Password,
		DB:                      o.DB,
		TLSConfig:               o.TLSConfig,
		Protocol:                o.Protocol,
		ClientName:              o.ClientName,
		MaxRetries:              o.MaxRetries,
		MinRetryBackoff:         o.MinRetryBackoff,
		MaxRetryBackoff:         o.MaxRetryBackoff,
		DialTimeout:             o.DialTimeout,
		ReadTimeout:             o.ReadTimeout,
		WriteTimeout:            o.WriteTimeout,
		PoolFIFO:                o.PoolFIFO,
		PoolSize:                o.PoolSize,
		PoolTimeout:             o.PoolTimeout,
		MinIdleConns:            o.MinIdleConns,
		MaxIdleConns:            o.MaxIdleConns,
		MaxActiveConns:          o.MaxActiveConns,
		MaxConcurrentDials:      o.MaxConcurrentDials,
		PipelinePoolSize:        o.PipelinePoolSize,
		PipelineReadBufferSize:  o.PipelineReadBufferSize,
		PipelineWriteBufferSize: o.PipelineWriteBufferSize,
		ConnMaxIdleTime:         o.ConnMaxIdleTime,
		ConnMaxLifetime:         o.ConnMaxLifetime,
		ConnMaxLifetimeJitter:   o.ConnMaxLifetimeJitter,
	}
}

// clusterOptions parses a redis-cluster:// URL with redis.ParseClusterURL,
// whose options are the cluster client's own.
func (p *parsedURL) clusterOptions() (*ClientOptions, error) {
	if strings.Trim(p.path, "/") != "" || p.query.Has("db") {
		return nil, fmt.Errorf("a cluster URL cannot select a database (a cluster has only database 0)")
	}
	p.path = ""
	o, err := redis.ParseClusterURL(p.goRedisURL())
	if err != nil {
		return nil, err
	}
	o.Addrs = p.addrs
	o.MaintNotificationsConfig = noMaintNotifications()
	clearServerName(o.TLSConfig)
	return &ClientOptions{Cluster: o}, nil
}

// takeParam removes a parameter that go-redis does not know and returns
// its value.
func (p *parsedURL) takeParam(name string) string {
	v := p.query.Get(name)
	p.query.Del(name)
	return v
}

// goRedisURL rebuilds the URL with the first host only and the base scheme,
// in the form go-redis parses.
func (p *parsedURL) goRedisURL() string {
	u := url.URL{
		Scheme:   "redis",
		Host:     p.addrs[0],
		Path:     p.path,
		RawQuery: p.query.Encode(),
	}
	if p.scheme.tls {
		u.Scheme = "rediss"
	}
	switch {
	case p.hasPassword:
		u.User = url.UserPassword(p.user, p.password)
	case p.user != "":
		u.User = url.User(p.user)
	}
	return u.String()
}

// clearServerName lets every connection of a multi-node client verify the
// certificate against the host it dials (crypto/tls takes the name from
// the address when ServerName is empty) rather than against the first
// host, which go-redis puts there.
func clearServerName(c *tls.Config) {
	if c != nil {
		c.ServerName = ""
	}
}
