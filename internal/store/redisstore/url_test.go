package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		check func(t *testing.T, o *redis.UniversalOptions)
	}{
		{"single defaults", "redis://", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "localhost:6379")
			if o.DB != 0 || o.TLSConfig != nil || o.MasterName != "" || o.IsClusterMode {
				t.Errorf("unexpected options %+v", o)
			}
		}},
		{"single full", "redis://bob:s%40cret@cache.example:6380/3?dial_timeout=2s&pool_size=7", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "cache.example:6380")
			if o.Username != "bob" || o.Password != "s@cret" || o.DB != 3 {
				t.Errorf("user %q password %q db %d", o.Username, o.Password, o.DB)
			}
			if o.DialTimeout != 2*time.Second || o.PoolSize != 7 {
				t.Errorf("dial timeout %v pool size %d", o.DialTimeout, o.PoolSize)
			}
		}},
		{"password only", "redis://:pw@h", func(t *testing.T, o *redis.UniversalOptions) {
			if o.Username != "" || o.Password != "pw" {
				t.Errorf("user %q password %q", o.Username, o.Password)
			}
		}},
		{"raw special characters in password", "redis://u:a/b?c@d@h:1/2", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "h:1")
			if o.Password != "a/b?c@d" || o.DB != 2 {
				t.Errorf("password %q db %d", o.Password, o.DB)
			}
		}},
		{"ipv6", "redis://[::1]:7000", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "[::1]:7000")
		}},
		{"tls", "rediss://h/1", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "h:6379")
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "h" || o.DB != 1 {
				t.Errorf("tls %+v db %d", o.TLSConfig, o.DB)
			}
		}},
		{"sentinel", "redis-sentinel://u:p@s1,s2:26380/2?master=mymaster&sentinel_password=sp&sentinel_username=su&read_timeout=1s", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "s1:26379", "s2:26380")
			if o.MasterName != "mymaster" || o.DB != 2 || o.Username != "u" || o.Password != "p" {
				t.Errorf("master %q db %d user %q password %q", o.MasterName, o.DB, o.Username, o.Password)
			}
			if o.SentinelUsername != "su" || o.SentinelPassword != "sp" || o.ReadTimeout != time.Second {
				t.Errorf("sentinel user %q password %q read timeout %v", o.SentinelUsername, o.SentinelPassword, o.ReadTimeout)
			}
		}},
		{"sentinel tls", "rediss-sentinel://s1,s2?master=m", func(t *testing.T, o *redis.UniversalOptions) {
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
				t.Errorf("tls %+v, want a config without a fixed server name", o.TLSConfig)
			}
		}},
		{"cluster", "redis-cluster://u:p@n1:7000,n2:7001,n3?max_redirects=5&read_only=true", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "n1:7000", "n2:7001", "n3:6379")
			if !o.IsClusterMode || o.Username != "u" || o.Password != "p" || o.MaxRedirects != 5 || !o.ReadOnly {
				t.Errorf("unexpected options %+v", o)
			}
		}},
		{"cluster one seed", "redis-cluster://n1:7000/", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "n1:7000")
			if !o.IsClusterMode {
				t.Error("one-seed cluster URL is not in cluster mode")
			}
		}},
		{"cluster tls", "rediss-cluster://n1,n2", func(t *testing.T, o *redis.UniversalOptions) {
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
				t.Errorf("tls %+v", o.TLSConfig)
			}
		}},
		{"scheme case", "REDIS://h", func(t *testing.T, o *redis.UniversalOptions) {
			wantAddrs(t, o, "h:6379")
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

func wantAddrs(t *testing.T, o *redis.UniversalOptions, want ...string) {
	t.Helper()
	if strings.Join(o.Addrs, ",") != strings.Join(want, ",") {
		t.Errorf("Addrs = %q, want %q", o.Addrs, want)
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
