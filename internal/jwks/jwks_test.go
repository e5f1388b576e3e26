package jwks_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tokengate/tokengate/internal/jwks"
	"github.com/tokengate/tokengate/internal/jwt"
)

const (
	floor  = 30 * time.Second
	maxAge = time.Hour
)

// RSA keys are slow to make; every test shares these.
var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newJWK makes a JWK of raw (a public or private key, or an HMAC secret)
// with the given members ("" leaves one out).
func newJWK(t *testing.T, raw any, kid, alg, use string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{jwk.KeyIDKey: kid, jwk.KeyUsageKey: use} {
		if v != "" {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if alg != "" {
		if err := k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg)); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// pub is the JWK of a signer's public key.
func pub(t *testing.T, s crypto.Signer, kid, alg string) jwk.Key {
	t.Helper()
	return newJWK(t, s.Public(), kid, alg, "sig")
}

func setOf(t *testing.T, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// issuer serves a JWKS and counts the requests it gets.
type issuer struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	status int
	body   []byte
}

func newIssuer(t *testing.T, body []byte) *issuer {
	t.Helper()
	is := &issuer{status: http.StatusOK, body: body}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		status, body := is.status, is.body
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) serve(status int, body []byte) {
	is.mu.Lock()
	is.status, is.body = status, body
	is.mu.Unlock()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newFetcher(is *issuer) (*jwks.Fetcher, *clock) {
	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	f, err := jwks.New(is.srv.URL, jwks.Options{
		Client: is.srv.Client(), Floor: floor, MaxAge: maxAge, Now: clk.Now, AllowHTTPLoopback: true,
	})
	if err != nil {
		panic(err)
	}
	return f, clk
}

func key(f *jwks.Fetcher, kid string) (*jwt.Key, error) { return f.Key(context.Background(), kid) }

func wantKey(t *testing.T, f *jwks.Fetcher, kid string) *jwt.Key {
	t.Helper()
	k, err := key(f, kid)
	if err != nil {
		t.Fatalf("Key(%q): %v", kid, err)
	}
	if k.ID != kid {
		t.Fatalf("Key(%q) returned key %q", kid, k.ID)
	}
	return k
}

func wantErr(t *testing.T, f *jwks.Fetcher, kid string, want error) {
	t.Helper()
	if k, err := key(f, kid); !errors.Is(err, want) {
		t.Fatalf("Key(%q) = %v, %v; want %v", kid, k, err, want)
	}
}

func wantHits(t *testing.T, is *issuer, n int64) {
	t.Helper()
	if got := is.hits.Load(); got != n {
		t.Fatalf("the issuer was asked %d times, want %d", got, n)
	}
}

func TestKeyFindsEachKid(t *testing.T) {
	rk, ek, dk := rsaKeys()[0], ecKey(t, elliptic.P256()), edKey(t)
	is := newIssuer(t, setOf(t, pub(t, rk, "rsa", "RS256"), pub(t, ek, "ec", "ES256"), pub(t, dk, "ed", "")))
	f, _ := newFetcher(is)
	tests := []struct {
		kid, alg string
		public   crypto.PublicKey
	}{
		{"rsa", jwt.RS256, rk.Public()},
		{"ec", jwt.ES256, ek.Public()},
		{"ed", jwt.EdDSA, dk.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			k := wantKey(t, f, tt.kid)
			got, ok := k.PublicKey().(interface{ Equal(crypto.PublicKey) bool })
			if k.Alg != tt.alg || !ok || !got.Equal(tt.public) {
				t.Fatalf("key %q: alg %s, public key %v", tt.kid, k.Alg, k.PublicKey())
			}
		})
	}
	wantHits(t, is, 1)
}

func TestUnknownKidRefetchesAtMostOncePerFloor(t *testing.T) {
	rk, next := rsaKeys()[0], ecKey(t, elliptic.P256())
	is := newIssuer(t, setOf(t, pub(t, rk, "old", "RS256")))
	f, clk := newFetcher(is)
	wantKey(t, f, "old")
	wantHits(t, is, 1)

	clk.Advance(floor)
	wantErr(t, f, "made-up-1", jwks.ErrUnknownKey)
	wantHits(t, is, 2) // an unknown kid refetches
	wantErr(t, f, "made-up-2", jwks.ErrUnknownKey)
	wantHits(t, is, 2) // but not again within the floor

	// The issuer rolls over to a new key.
	is.serve(http.StatusOK, setOf(t, pub(t, rk, "old", "RS256"), pub(t, next, "new", "ES256")))
	clk.Advance(floor - time.Second)
	wantErr(t, f, "new", jwks.ErrUnknownKey)
	wantHits(t, is, 2)
	clk.Advance(time.Second)
	wantKey(t, f, "new")
	wantKey(t, f, "old")
	wantHits(t, is, 3)
}

func TestKnownKidDoesNotRefetchWhileFresh(t *testing.T) {
	is := newIssuer(t, setOf(t, pub(t, rsaKeys()[0], "k", "")))
	f, clk := newFetcher(is)
	wantKey(t, f, "k")
	clk.Advance(maxAge - time.Second)
	wantKey(t, f, "k")
	wantHits(t, is, 1)
	clk.Advance(time.Second)
	wantKey(t, f, "k")
	wantHits(t, is, 2) // refreshed after MaxAge
}

// pad makes a set whose body is n bytes long by adding white space.
func pad(set []byte, n int) []byte {
	return append(append(bytes.TrimSuffix(set, []byte("}")), bytes.Repeat([]byte(" "), n-len(set))...), '}')
}

func TestFailingIssuerKeepsKnownKeys(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, is *issuer)
	}{
		{"down", func(_ *testing.T, is *issuer) { is.srv.Close() }},
		{"garbage", func(_ *testing.T, is *issuer) { is.serve(http.StatusOK, []byte("<html>oops</html>")) }},
		{"500", func(_ *testing.T, is *issuer) { is.serve(http.StatusInternalServerError, nil) }},
		{"no usable key", func(t *testing.T, is *issuer) {
			is.serve(http.StatusOK, setOf(t, newJWK(t, []byte("0123456789abcdef0123456789abcdef"), "new", "HS256", "")))
		}},
		{"oversized", func(t *testing.T, is *issuer) {
			is.serve(http.StatusOK, pad(setOf(t, pub(t, ecKey(t, elliptic.P256()), "new", "")), 1<<20+1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, setOf(t, pub(t, rsaKeys()[0], "known", "RS256")))
			f, clk := newFetcher(is)
			wantKey(t, f, "known")
			tt.breakIt(t, is)
			clk.Advance(maxAge) // the known set is stale: the next look-up refetches
			wantKey(t, f, "known")
			if tt.name != "down" {
				wantHits(t, is, 2) // the refetch was tried, and failed
			}
			wantErr(t, f, "new", jwks.ErrUnknownKey)
			clk.Advance(floor)
			wantErr(t, f, "new", jwks.ErrUnknownKey)
			wantKey(t, f, "known")
		})
	}
}

func TestNoFetchEverIsUnavailable(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   func(t *testing.T) []byte
		down   bool
	}{
		{"down", http.StatusOK, nil, true},
		{"404", http.StatusNotFound, nil, false},
		{"garbage", http.StatusOK, func(*testing.T) []byte { return []byte(`{"keys":`) }, false},
		{"empty set", http.StatusOK, func(*testing.T) []byte { return []byte(`{"keys":[]}`) }, false},
		{"oversized", http.StatusOK, func(t *testing.T) []byte { return pad(setOf(t, pub(t, rsaKeys()[0], "k", "")), 1<<20+1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, nil)
			var body []byte
			if tt.body != nil {
				body = tt.body(t)
			}
			is.serve(tt.status, body)
			if tt.down {
				is.srv.Close()
			}
			f, clk := newFetcher(is)
			wantErr(t, f, "k", jwks.ErrUnavailable)
			clk.Advance(floor)
			wantErr(t, f, "k", jwks.ErrUnavailable)
		})
	}
}

func TestBodyJustUnderTheLimitIsAccepted(t *testing.T) {
	is := newIssuer(t, pad(setOf(t, pub(t, rsaKeys()[0], "k", "")), 1<<20))
	f, _ := newFetcher(is)
	wantKey(t, f, "k")
}

func TestParseSkipsUnusableKeys(t *testing.T) {
	rk := rsaKeys()[0]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  func(t *testing.T) jwk.Key
	}{
		{"no kid", func(t *testing.T) jwk.Key { return newJWK(t, ecKey(t, elliptic.P256()).Public(), "", "ES256", "sig") }},
		{"use enc", func(t *testing.T) jwk.Key { return newJWK(t, rk.Public(), "x", "", "enc") }},
		{"oct key", func(t *testing.T) jwk.Key {
			return newJWK(t, []byte("0123456789abcdef0123456789abcdef"), "x", "HS256", "sig")
		}},
		{"private RSA key", func(t *testing.T) jwk.Key { return newJWK(t, rk, "x", "RS256", "sig") }},
		{"private EC key", func(t *testing.T) jwk.Key { return newJWK(t, ecKey(t, elliptic.P256()), "x", "ES256", "") }},
		{"private Ed25519 key", func(t *testing.T) jwk.Key { return newJWK(t, edKey(t), "x", "", "") }},
		{"RSA key declared ES256", func(t *testing.T) jwk.Key { return pub(t, rk, "x", "ES256") }},
		{"RSA key declared RS512", func(t *testing.T) jwk.Key { return pub(t, rk, "x", "RS512") }},
		{"EC key declared RS256", func(t *testing.T) jwk.Key { return pub(t, ecKey(t, elliptic.P256()), "x", "RS256") }},
		{"Ed25519 key declared ES256", func(t *testing.T) jwk.Key { return pub(t, edKey(t), "x", "ES256") }},
		{"P-384 key", func(t *testing.T) jwk.Key { return pub(t, ecKey(t, elliptic.P384()), "x", "") }},
		{"RSA key of 1024 bits", func(t *testing.T) jwk.Key { return pub(t, small, "x", "RS256") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.key(t)
			keys, err := jwks.Parse(setOf(t, bad, pub(t, rk, "good", "RS256")))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, ok := keys["good"]; len(keys) != 1 || !ok {
				t.Fatalf("Parse kept %v, want only the good key", keys)
			}
			if _, err := jwks.Parse(setOf(t, bad)); err == nil {
				t.Fatal("a set with no usable key parsed")
			}
		})
	}
}

func TestParseRefusesMalformedSets(t *testing.T) {
	for _, body := range []string{``, `null`, `{"keys":[]}`, `{"keys":`, `[1,2]`, `not json`} {
		t.Run(body, func(t *testing.T) {
			if keys, err := jwks.Parse([]byte(body)); err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", body, keys)
			}
		})
	}
}
