package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/store/redisstore"
)

func TestParseRedisKeepsPasswordOut(t *testing.T) {
	loc, err := Parse("redis://:s3cret@127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if !loc.IsRedis() || strings.Contains(loc.String(), "s3cret") || strings.Contains(loc.PoolKey(), "s3cret") {
		t.Fatalf("password leaks: %q %q", loc.String(), loc.PoolKey())
	}
	other, _ := Parse("redis://:other@127.0.0.1:6379/0")
	if other.PoolKey() == loc.PoolKey() {
		t.Fatal("different credentials share a pool key")
	}
}

func TestWithDurability(t *testing.T) {
	sentinel, err := Parse("redis-sentinel://127.0.0.1:26379?master=m")
	if err != nil {
		t.Fatal(err)
	}
	one := &redisstore.Durability{Replicas: 1}
	waiting, err := sentinel.WithDurability(one)
	if err != nil {
		t.Fatal(err)
	}
	if waiting.PoolKey() == sentinel.PoolKey() {
		t.Error("another durability shares the store of the default")
	}
	if _, err := sentinel.WithDurability(&redisstore.Durability{Replicas: -1}); err == nil {
		t.Error("negative replicas accepted")
	}
	cluster, _ := Parse("redis-cluster://127.0.0.1:7000")
	if _, err := cluster.WithDurability(one); err != nil {
		t.Errorf("replicas on a cluster: %v", err)
	}
	if _, err := cluster.WithDurability(&redisstore.Durability{}); err != nil {
		t.Errorf("replicas 0 on a cluster: %v", err)
	}
	file, _ := Parse("/tmp/tg.db")
	if _, err := file.WithDurability(one); err == nil {
		t.Error("replicas on the embedded store accepted")
	}
	if off, err := file.WithDurability(&redisstore.Durability{}); err != nil || off.PoolKey() != file.PoolKey() {
		t.Errorf("replicas 0 on the embedded store: %v, pool key %q, want %q", err, off.PoolKey(), file.PoolKey())
	}
}

func TestParseFilePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"./data/tg.db":         filepath.Join(wd, "data", "tg.db"),
		"../tg.db":             filepath.Join(filepath.Dir(wd), "tg.db"),
		"/var/lib/tg/tg.db":    "/var/lib/tg/tg.db",
		"./redis:backup.db":    filepath.Join(wd, "redis:backup.db"),
		"./data//tokengate.db": filepath.Join(wd, "data", "tokengate.db"),
		"/srv/redis//tg.db":    "/srv/redis/tg.db",
		"./tokengate-redis.db": filepath.Join(wd, "tokengate-redis.db"),
	} {
		loc, err := Parse(in)
		if err != nil || loc.IsRedis() || loc.String() != want {
			t.Errorf("Parse(%q) = %q, %v; want file %q", in, loc.String(), err, want)
		}
	}
}

// A value that looks like a mistyped URL is refused with a hint naming the
// scheme probably meant, never taken for a file in the working directory.
func TestParseMistypedURLHint(t *testing.T) {
	cases := []struct{ in, hint string }{
		{"redis//host", "redis://host"},
		{"redis:/host", "redis://host"},
		{"rediss:/h", "rediss://h"},
		{"redis:host:6379", "redis://host:6379"},
		{"redis-sentinal://a,b?master=m", "redis-sentinel://"},
		{"redis-clustr://h", "redis-cluster://"},
		{"Redis://host", "redis://"},
		{"REDISS://host", "rediss://"},
		{"foo://host", "redis://"},
		{"http://cache:6379", "redis://"},
		{"127.0.0.1:6379", "redis://127.0.0.1:6379"},
		{"localhost:6379", "redis://localhost:6379"},
		{"C:", "redis://"},
		{"", "empty"},
	}
	for _, c := range cases {
		loc, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", c.in, loc)
			continue
		}
		if !strings.Contains(err.Error(), c.hint) {
			t.Errorf("Parse(%q): %v; want a hint with %q", c.in, err, c.hint)
		}
	}
}

func TestParseErrorsHidePasswords(t *testing.T) {
	for _, in := range []string{"redis//u:s3cret@host", "redis:/:s3cret@host", "redis-sentinal://:s3cret@h?master=m", "http://u:s3cret@h"} {
		_, err := Parse(in)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
}

// A bare word may be a host written without redis://: it is refused with
// both readings as hints, never made a file in the working directory.
func TestParseBareWordIsAmbiguous(t *testing.T) {
	for in, hint := range map[string]string{
		"redis":              "./redis for a file in the working directory, or redis://redis",
		"localhost":          "redis://localhost",
		"redis.internal":     "./redis.internal",
		"redis/0":            "redis://redis/0",
		"data/tg.db":         "./data/tg.db",
		"//127.0.0.1:6379":   "redis://127.0.0.1:6379",
		"tokengate-redis.db": "./tokengate-redis.db",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), hint) {
			t.Errorf("Parse(%q) = %v, want an error with the hint %q", in, err, hint)
		}
	}
}
