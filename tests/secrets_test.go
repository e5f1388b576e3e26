package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
)

const secretsKeyEnv = "TOKENGATE_SECRETS_KEY"

// secretsConfig is a config with secrets_key (and secrets_key_previous
// when previous is set) given through the environment.
func secretsConfig(current, previous string) gatewayConfig {
	cfg := gatewayConfig{}
	if current != "" {
		cfg.appOptions += "secrets_key {env." + secretsKeyEnv + "}\n"
		cfg.env = append(cfg.env, secretsKeyEnv+"="+current)
	}
	if previous != "" {
		cfg.appOptions += "secrets_key_previous {env." + secretsKeyEnv + "_PREVIOUS}\n"
		cfg.env = append(cfg.env, secretsKeyEnv+"_PREVIOUS="+previous)
	}
	return cfg
}

// generateSecretsKey runs `tokengate secrets-key generate`.
func generateSecretsKey(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binary, "secrets-key", "generate").Output()
	if err != nil {
		t.Fatalf("secrets-key generate: %v\n%s", err, out)
	}
	key := strings.TrimSpace(string(out))
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
		t.Fatalf("secrets-key generate printed %q", out)
	}
	return key
}

// keyID is the id the gateway gives a secrets key: the first 8 bytes of
// its SHA-256, in hex.
func keyID(t *testing.T, key string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// hs256Secret returns the HS256 secret the admin API shows as the
// validation key, and the kid of the signing key.
func hs256Secret(t *testing.T, g *gateway) ([]byte, string) {
	t.Helper()
	r := do(t, http.MethodGet, "http://"+g.admin+"/tokengate/oauth/signing", nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET signing: %d %s", r.status, r.body)
	}
	vk, _ := r.json(t)["validation_key"].(map[string]any)
	k, _ := vk["k"].(string)
	kid, _ := vk["kid"].(string)
	secret, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil || len(secret) < 32 || kid == "" {
		t.Fatalf("validation key %v", vk)
	}
	return secret, kid
}

// storedKeyring reads the keyring as the store keeps it, from outside the
// gateway: the bbolt file's bytes (the gateway stopped), or the Redis
// value that holds it (GET, as redis-cli would).
func storedKeyring(t *testing.T, g *gateway) []byte {
	t.Helper()
	if !strings.HasPrefix(g.store, "redis") {
		g.stop()
		b, err := os.ReadFile(g.store)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return liveKeyring(t, g)
}

// liveKeyring reads the keyring document as the store keeps it now: from
// the bbolt file through the embedded store (the gateway stopped: a file
// keeps old pages, which a write does not overwrite), or with GET.
func liveKeyring(t *testing.T, g *gateway) []byte {
	t.Helper()
	if !strings.HasPrefix(g.store, "redis") {
		g.stop()
		st, err := boltstore.Open(g.store, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		b, err := st.GetDocument(context.Background(), store.DocKeyring)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	values := redisStrings(t, g.store)
	for _, v := range values {
		if bytes.Contains(v, []byte(`"lifetime_seconds"`)) {
			return v
		}
	}
	t.Fatalf("no keyring among %d Redis string values", len(values))
	return nil
}

// redisStrings returns every string value of the Redis at url, by key.
func redisStrings(t *testing.T, url string) map[string][]byte {
	t.Helper()
	c := redisClient(t, url)
	ctx := context.Background()
	out := map[string][]byte{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := c.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if typ != "string" {
			continue
		}
		v, err := c.Get(ctx, key).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[key] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertSealed fails if stored holds secret in any usual spelling, or
// does not show kid and the secrets key id in clear (the document stays
// readable).
func assertSealed(t *testing.T, stored, secret []byte, kid, id string) {
	t.Helper()
	for _, form := range [][]byte{
		secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(base64.RawStdEncoding.EncodeToString(secret)),
		[]byte(base64.RawURLEncoding.EncodeToString(secret)), []byte(hex.EncodeToString(secret)),
	} {
		if bytes.Contains(stored, form) {
			t.Fatal("the store holds the HS256 secret")
		}
	}
	for _, s := range []string{kid, `"key_id":"` + id + `"`} {
		if !bytes.Contains(stored, []byte(s)) {
			t.Fatalf("the stored keyring does not show %s", s)
		}
	}
}

// restart stops g and starts it again on the same store with cfg, with
// fresh logs.
func (g *gateway) restart(up *upstream, cfg gatewayConfig) {
	g.t.Helper()
	g.stop()
	g.logs = &syncBuffer{}
	g.start(up, cfg)
}

// mustNotStart starts g on its store with cfg and expects the process to
// exit non-zero at start, saying why; it returns the logs.
func (g *gateway) mustNotStart(up *upstream, cfg gatewayConfig, want string) string {
	g.t.Helper()
	g.stop()
	g.logs = &syncBuffer{}
	g.launch(up, cfg)
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.t.Fatalf("the gateway did not stop at start; logs:\n%s", g.logs.String())
	}
	if code := g.cmd.ProcessState.ExitCode(); code == 0 {
		g.t.Fatalf("the gateway exited 0; logs:\n%s", g.logs.String())
	}
	logs := g.logs.String()
	if !strings.Contains(logs, want) {
		g.t.Fatalf("the gateway's logs do not say %q:\n%s", want, logs)
	}
	return logs
}

// With secrets_key the store never holds the HS256 secret the admin sees;
// a token issued before a restart verifies after it; a wrong key, or
// none, stops the start with a clear message and changes nothing.
func TestSecretsKeyAtRest(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		key := generateSecretsKey(t)
		cfg := secretsConfig(key, "")
		g := startGateway(t, kind, up, cfg)
		c := addClient(t, g, "svc")
		tok := requestToken(t, g.base, c, nil, "")
		mustPass(t, callEdge(t, g.base, tok), "a fresh token")
		secret, kid := hs256Secret(t, g)
		if kidOf(t, tok) != kid {
			t.Fatal("the token is not signed by the shown key")
		}
		g.waitLog("tokengate started")
		if strings.Contains(g.logs.String(), "signing keys are stored in clear") {
			t.Error("warned about keys in clear with secrets_key set")
		}
		g.assertNoSecrets(key, base64.RawURLEncoding.EncodeToString(secret))
		assertSealed(t, storedKeyring(t, g), secret, kid, keyID(t, key))

		g.restart(up, cfg)
		mustPass(t, callEdge(t, g.base, tok), "a token issued before the restart")
		if again, _ := hs256Secret(t, g); !bytes.Equal(again, secret) {
			t.Fatal("the restart changed the HS256 secret")
		}

		wrong := generateSecretsKey(t)
		logs := g.mustNotStart(up, secretsConfig(wrong, ""), "signing keys are encrypted with another secrets_key (id "+keyID(t, key)+")")
		if strings.Contains(logs, key) || strings.Contains(logs, wrong) {
			t.Error("a secrets key is in the logs")
		}
		g.mustNotStart(up, gatewayConfig{}, "signing keys are encrypted with another secrets_key (id "+keyID(t, key)+"); this gateway has no secrets_key")

		g.restart(up, cfg)
		mustPass(t, callEdge(t, g.base, tok), "a token issued before the refused starts")
		assertSealed(t, storedKeyring(t, g), secret, kid, keyID(t, key))
	})
}

// A store kept in clear is sealed at the first start with secrets_key;
// without one the gateway warns.
func TestSecretsKeySealsClearStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{})
		c := addClient(t, g, "svc")
		tok := requestToken(t, g.base, c, nil, "")
		secret, kid := hs256Secret(t, g)
		g.waitLog("signing keys are stored in clear")
		if stored := liveKeyring(t, g); !bytes.Contains(stored, []byte(base64.StdEncoding.EncodeToString(secret))) {
			t.Fatal("without secrets_key the keyring is not kept as before (material in clear)")
		}
		key := generateSecretsKey(t)
		g.restart(up, secretsConfig(key, ""))
		g.waitLog("sealed the signing keys in clear with secrets_key")
		mustPass(t, callEdge(t, g.base, tok), "a token issued before the keys were sealed")
		assertSealed(t, liveKeyring(t, g), secret, kid, keyID(t, key))
	})
}

// Rotation: the new key as secrets_key, the old as secrets_key_previous,
// start (the keyring is sealed with the new key); then the new key alone.
// Tokens keep working throughout; the old key alone no longer opens it.
func TestSecretsKeyRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		oldKey, newKey := generateSecretsKey(t), generateSecretsKey(t)
		g := startGateway(t, kind, up, secretsConfig(oldKey, ""))
		c := addClient(t, g, "svc")
		tok := requestToken(t, g.base, c, nil, "")
		secret, kid := hs256Secret(t, g)

		g.mustNotStart(up, secretsConfig(newKey, ""), "(id "+keyID(t, oldKey)+")")
		g.restart(up, secretsConfig(newKey, oldKey))
		g.waitLog("sealed with secrets_key_previous (id " + keyID(t, oldKey) + ") with secrets_key")
		mustPass(t, callEdge(t, g.base, tok), "a token during the rotation")
		stored := liveKeyring(t, g)
		assertSealed(t, stored, secret, kid, keyID(t, newKey))
		if bytes.Contains(stored, []byte(keyID(t, oldKey))) {
			t.Fatal("the keyring is still sealed with the old key")
		}

		g.restart(up, secretsConfig(newKey, ""))
		mustPass(t, callEdge(t, g.base, tok), "a token after the rotation")
		tok2 := requestToken(t, g.base, c, nil, "")
		mustPass(t, callEdge(t, g.base, tok2), "a token issued after the rotation")
		g.mustNotStart(up, secretsConfig(oldKey, ""), "(id "+keyID(t, newKey)+")")
	})
}

// A Redis that is down at start cannot be checked then: once it answers,
// a keyring sealed with another key makes the token endpoint, the JWKS
// and access token checks answer 503 (never a fresh keyring, never a
// 401), and the reason is logged once.
func TestSecretsKeyWrongWhenRedisComesBack(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	key := generateSecretsKey(t)
	g := startGatewayOn(t, srv.URL(), up, secretsConfig(key, ""))
	c := addClient(t, g, "svc")
	tok := requestToken(t, g.base, c, nil, "")
	saved := redisDump(t, srv.URL())
	before := storedKeyring(t, g)
	g.stop()
	srv.Stop()

	g.logs = &syncBuffer{}
	g.start(up, secretsConfig(generateSecretsKey(t), "")) // Redis is down: it starts
	srv.Restart(t)
	redisRestore(t, srv.URL(), saved)
	deadline := time.Now().Add(30 * time.Second)
	for do(t, http.MethodGet, "http://"+g.admin+"/tokengate/oauth/clients", nil, "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the store did not come back; logs:\n%s", g.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 {
		if r := do(t, http.MethodPost, g.base+tokenPath, clientBasic(c.ID, c.Secret), ccGrant); r.status != http.StatusServiceUnavailable {
			t.Fatalf("token endpoint: %d %s", r.status, r.body)
		}
		if r := do(t, http.MethodGet, g.base+jwksPath, nil, ""); r.status != http.StatusServiceUnavailable {
			t.Fatalf("JWKS: %d %s", r.status, r.body)
		}
		if r := callEdge(t, g.base, tok); r.status != http.StatusServiceUnavailable {
			t.Fatalf("edge: %d %s", r.status, r.body)
		}
	}
	if !g.running() {
		t.Fatal("the gateway stopped")
	}
	if after := storedKeyring(t, g); !bytes.Equal(after, before) {
		t.Fatal("the stored keyring changed")
	}
	logs := g.logs.String()
	if n := strings.Count(logs, "the signing keys in the store cannot be opened"); n != 1 {
		t.Errorf("the reason is logged %d times, want once:\n%s", n, logs)
	}
	reason := "signing keys are encrypted with another secrets_key (id " + keyID(t, key) + ")"
	if n := strings.Count(logs, reason); n == 0 || n > 2 {
		// The keyring's line, and the first refused request's; the next
		// requests' lines point at it.
		t.Errorf("the whole reason is in the logs %d times for 9 refused requests:\n%s", n, logs)
	}
}

// redisDump saves every key of the Redis at url (DUMP).
func redisDump(t *testing.T, url string) map[string]string {
	t.Helper()
	c := redisClient(t, url)
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		if out[k], err = c.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// redisRestore writes back what redisDump saved (RESTORE).
func redisRestore(t *testing.T, url string, saved map[string]string) {
	t.Helper()
	c := redisClient(t, url)
	for k, v := range saved {
		if err := c.RestoreReplace(context.Background(), k, 0, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func redisClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
