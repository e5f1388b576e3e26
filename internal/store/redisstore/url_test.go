package redisstore

import (
	"crypto/tls"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		check func(t *testing.T, o *ClientOptions)
	}{
		{"single defaults", "redis://", func(t *testing.T, co *ClientOptions) {
			o := singleOf(t, co)
			wantAddrs(t, []string{o.Addr}, "localhost:6379")
			if o.DB != 0 || o.TLSConfig != nil {
				t.Errorf("unexpected options %+v", o)
			}
		}},
		{"single full", "redis://bob:s%40cret@cache.example:6380/3?dial_timeout=2s&pool_size=7", func(t *testing.T, co *ClientOptions) {
			o := singleOf(t, co)
			wantAddrs(t, []string{o.Addr}, "cache.example:6380")
			if o.Username != "bob" || o.Password != "s@cret" || o.DB != 3 {
				t.Errorf("user %q password %q db %d", o.Username, o.Password, o.DB)
			}
			if o.DialTimeout != 2*time.Second || o.PoolSize != 7 {
				t.Errorf("dial timeout %v pool size %d", o.DialTimeout, o.PoolSize)
			}
		}},
		{"password only", "redis://:pw@h", func(t *testing.T, co *ClientOptions) {
			o := singleOf(t, co)
			if o.Username != "" || o.Password != "pw" {
				t.Errorf("user %q password %q", o.Username, o.Password)
			}
		}},
		{"raw special characters in password", "redis://u:a/b?c@d@h:1/2", func(t *testing.T, co *ClientOptions) {
			o := singleOf(t, co)
			wantAddrs(t, []string{o.Addr}, "h:1")
			if o.Password != "a/b?c@d" || o.DB != 2 {
				t.Errorf("password %q db %d", o.Password, o.DB)
			}
		}},
		{"ipv6", "redis://[::1]:7000", func(t *testing.T, co *ClientOptions) {
			wantAddrs(t, []string{singleOf(t, co).Addr}, "[::1]:7000")
		}},
		{"tls", "rediss://h/1", func(t *testing.T, co *ClientOptions) {
			o := singleOf(t, co)
			wantAddrs(t, []string{o.Addr}, "h:6379")
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "h" || o.DB != 1 {
				t.Errorf("tls %+v db %d", o.TLSConfig, o.DB)
			}
		}},
		{"sentinel", "redis-sentinel://u:p@s1,s2:26380/2?master=mymaster&sentinel_password=sp&sentinel_username=su&read_timeout=1s", func(t *testing.T, co *ClientOptions) {
			o := failoverOf(t, co)
			wantAddrs(t, o.SentinelAddrs, "s1:26379", "s2:26380")
			if o.MasterName != "mymaster" || o.DB != 2 || o.Username != "u" || o.Password != "p" {
				t.Errorf("master %q db %d user %q password %q", o.MasterName, o.DB, o.Username, o.Password)
			}
			if o.SentinelUsername != "su" || o.SentinelPassword != "sp" || o.ReadTimeout != time.Second {
				t.Errorf("sentinel user %q password %q read timeout %v", o.SentinelUsername, o.SentinelPassword, o.ReadTimeout)
			}
		}},
		{"sentinel tls", "rediss-sentinel://s1,s2?master=m", func(t *testing.T, co *ClientOptions) {
			o := failoverOf(t, co)
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
				t.Errorf("tls %+v, want a config without a fixed server name", o.TLSConfig)
			}
		}},
		{"cluster", "redis-cluster://u:p@n1:7000,n2:7001,n3?max_redirects=5&read_only=true", func(t *testing.T, co *ClientOptions) {
			o := clusterOf(t, co)
			wantAddrs(t, o.Addrs, "n1:7000", "n2:7001", "n3:6379")
			if o.Username != "u" || o.Password != "p" || o.MaxRedirects != 5 || !o.ReadOnly {
				t.Errorf("unexpected options %+v", o)
			}
		}},
		{"cluster one seed", "redis-cluster://n1:7000/", func(t *testing.T, co *ClientOptions) {
			o := clusterOf(t, co) // a cluster client, not one server
			wantAddrs(t, o.Addrs, "n1:7000")
		}},
		{"cluster tls", "rediss-cluster://n1,n2", func(t *testing.T, co *ClientOptions) {
			o := clusterOf(t, co)
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
				t.Errorf("tls %+v", o.TLSConfig)
			}
		}},
		{"scheme case", "REDIS://h", func(t *testing.T, co *ClientOptions) {
			wantAddrs(t, []string{singleOf(t, co).Addr}, "h:6379")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			tt.check(t, o)
		})
	}
}

// singleOf, failoverOf and clusterOf return the options of the one client
// kind the URL must name, failing if another is set too.
func singleOf(t *testing.T, o *ClientOptions) *redis.Options {
	t.Helper()
	if o.Single == nil || o.Failover != nil || o.Cluster != nil {
		t.Fatalf("options %+v, want a single-server client only", o)
	}
	return o.Single
}

func failoverOf(t *testing.T, o *ClientOptions) *redis.FailoverOptions {
	t.Helper()
	if o.Single != nil || o.Failover == nil || o.Cluster != nil {
		t.Fatalf("options %+v, want a failover client only", o)
	}
	return o.Failover
}

func clusterOf(t *testing.T, o *ClientOptions) *redis.ClusterOptions {
	t.Helper()
	if o.Single != nil || o.Failover != nil || o.Cluster == nil {
		t.Fatalf("options %+v, want a cluster client only", o)
	}
	return o.Cluster
}

func wantAddrs(t *testing.T, addrs []string, want ...string) {
	t.Helper()
	if strings.Join(addrs, ",") != strings.Join(want, ",") {
		t.Errorf("Addrs = %q, want %q", addrs, want)
	}
}

// everyOption sets every query parameter that go-redis v9.23 parses for
// one server (redis.ParseURL) to a value that is not the default, and
// that a client keeps as it is.
const everyOption = "protocol=2&client_name=tg&max_retries=4&min_retry_backoff=9ms&max_retry_backoff=900ms" +
	"&dial_timeout=6s&read_timeout=7s&write_timeout=8s&pool_fifo=true&pool_size=11&pool_timeout=12s" +
	"&min_idle_conns=2&max_idle_conns=5&max_active_conns=20&max_concurrent_dials=3" +
	"&pipeline_pool_size=4&pipeline_read_buffer_size=4096&pipeline_write_buffer_size=8192" +
	"&conn_max_idle_time=13m&conn_max_lifetime=2h&conn_max_lifetime_jitter=1m"

// everyClusterOption is everyOption for a cluster (redis.ParseClusterURL),
// which knows some parameters of its own.
const everyClusterOption = everyOption + "&max_redirects=5&read_only=true&route_by_latency=true" +
	"&route_by_latency_tolerance=3ms&route_randomly=true&dialer_retries=3&dialer_retry_timeout=40ms" +
	"&failing_timeout_seconds=17"

// TestEveryParsedOptionReachesTheClient parses a URL that sets every
// query parameter go-redis knows, for each kind of client, and checks
// that every field go-redis set from it reaches the options of the client
// made, with its value (a copy that left one out, or one whose type
// differs, as the reflective copy this replaced did, fails here).
func TestEveryParsedOptionReachesTheClient(t *testing.T) {
	ref, err := redis.ParseURL("rediss://u:p@h:1/3?skip_verify=true&" + everyOption)
	if err != nil {
		t.Fatal(err)
	}
	refCluster, err := redis.ParseClusterURL("rediss://u:p@h:1?" + everyClusterOption)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
		ref  any
		// got returns the options of the client made.
		got func(t *testing.T, o *ClientOptions) any
		// except are fields that name where to connect, checked elsewhere.
		except []string
	}{
		{"single", "rediss://u:p@h:1/3?skip_verify=true&" + everyOption, ref, func(t *testing.T, o *ClientOptions) any {
			return singleOf(t, o)
		}, nil},
		{"failover", "rediss-sentinel://u:p@s1,s2/3?master=m&skip_verify=true&" + everyOption, ref, func(t *testing.T, o *ClientOptions) any {
			return failoverOf(t, o)
		}, []string{"Network", "Addr"}},
		{"failover client", "rediss-sentinel://u:p@s1,s2/3?master=m&skip_verify=true&" + everyOption, ref, func(t *testing.T, o *ClientOptions) any {
			c := o.NewClient().(*redis.Client)
			t.Cleanup(func() { c.Close() })
			return c.Options()
		}, []string{"Addr", "Dialer", "OnConnect", "Limiter"}},
		{"cluster", "rediss-cluster://u:p@h:1?" + everyClusterOption, refCluster, func(t *testing.T, o *ClientOptions) any {
			return clusterOf(t, o)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			want, got := reflect.ValueOf(tt.ref).Elem(), reflect.ValueOf(tt.got(t, o)).Elem()
			for i := range want.NumField() {
				f := want.Type().Field(i)
				w := want.Field(i)
				if !f.IsExported() || w.IsZero() || slices.Contains(tt.except, f.Name) {
					continue
				}
				g := got.FieldByName(f.Name)
				switch {
				case !g.IsValid():
					t.Errorf("%s = %v was parsed, but %s has no such field", f.Name, w, got.Type())
				case f.Name == "TLSConfig":
					wantTLS(t, w.Interface().(*tls.Config), g.Interface().(*tls.Config))
				case f.Name == "Addrs":
				case !reflect.DeepEqual(g.Interface(), w.Interface()):
					t.Errorf("%s = %v, want %v as parsed", f.Name, g, w)
				}
			}
		})
	}
}

// wantTLS checks that got is parsed's TLS settings (the server name is
// cleared for a multi-node client, which verifies each host it dials).
func wantTLS(t *testing.T, parsed, got *tls.Config) {
	t.Helper()
	if got == nil || got.InsecureSkipVerify != parsed.InsecureSkipVerify || got.MinVersion != parsed.MinVersion {
		t.Errorf("TLSConfig = %+v, want %+v", got, parsed)
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"no scheme", "localhost:6379", "missing scheme"},
		{"unknown scheme", "http://h", `unknown scheme "http"`},
		{"sentinel without master", "redis-sentinel://s1,s2/0", "needs ?master=NAME"},
		{"bad port", "redis://h:port", `bad port "port"`},
		{"port out of range", "redis-cluster://a:1,b:70000", `bad port "70000"`},
		{"zero port", "redis://h:0", `bad port "0"`},
		{"db in cluster path", "redis-cluster://a,b/1", "cannot select a database"},
		{"db in cluster query", "redis-cluster://a,b?db=1", "cannot select a database"},
		{"several hosts for one server", "redis://a,b", "2 hosts in a single-server URL"},
		{"empty host in list", "redis-cluster://a,,b", "empty host"},
		{"bare ipv6", "redis://::1", "bad address"},
		{"bad db", "redis://h/x", "invalid database number"},
		{"unknown option", "redis://h?bogus=1", "unexpected option: bogus"},
		{"bad password escape", "redis://u:%zz@h", "bad escape in password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseURL(tt.url)
			if err == nil {
				t.Fatalf("ParseURL(%q) succeeded", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseURL(%q) error %q, want it to contain %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestParseURLErrorHidesPassword(t *testing.T) {
	_, err := ParseURL("redis://u:hunter2@h:bad?sentinel_password=hunter3")
	if err == nil || strings.Contains(err.Error(), "hunter") {
		t.Fatalf("error %v shows the password", err)
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://u:p@h:6379/0", "redis://u:xxxxx@h:6379/0"},
		{"redis://:p@h", "redis://:xxxxx@h"},
		{"redis://u@h", "redis://u@h"},
		{"rediss://u:a/b@c@h/1?dial_timeout=1", "rediss://u:xxxxx@h/1?dial_timeout=1"},
		{"redis-sentinel://u:p@a,b/0?master=m&sentinel_password=sp", "redis-sentinel://u:xxxxx@a,b/0?master=m&sentinel_password=xxxxx"},
		{"redis-cluster://a:1,b:2", "redis-cluster://a:1,b:2"},
		{"u:p@h", "u:xxxxx@h"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := Redacted(tt.in); got != tt.want {
			t.Errorf("Redacted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestNoMaintNotifications: every client the URLs make has go-redis's
// maintenance notifications off, so no connection sends the handshake
// open-source Redis refuses (and go-redis's racy fallback never runs).
func TestNoMaintNotifications(t *testing.T) {
	for _, u := range []string{"redis://h:6379/0", "rediss://h:6379", "redis-cluster://h1:6379,h2:6379"} {
		o, err := ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		var m *maintnotifications.Config
		switch {
		case o.Single != nil:
			m = o.Single.MaintNotificationsConfig
		case o.Cluster != nil:
			m = o.Cluster.MaintNotificationsConfig
		}
		if m == nil || m.Mode != maintnotifications.ModeDisabled {
			t.Errorf("%s: maintenance notifications %+v, want disabled", u, m)
		}
	}
}
