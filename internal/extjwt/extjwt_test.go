package extjwt_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/decision"
	"github.com/tokengate/tokengate/internal/extjwt"
)

const (
	iss = "https://idp.example.com"
	aud = "orders-api"
	kid = "idp-1"
)

var (
	t0     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef")
	// The issuer's RSA key, made once: RSA keys are slow to make.
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// idp serves the issuer's JWKS and counts the fetches.
type idp struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	k, err := jwk.FromRaw(rsaKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.RS256)
	set := jwk.NewSet()
	_ = set.AddKey(k)
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func newVerifier(t *testing.T, c extjwt.Config) *extjwt.Verifier {
	t.Helper()
	c.Issuer, c.Audience = iss, aud
	c.Now = func() time.Time { return t0 }
	v, err := extjwt.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// jwksVerifier is a verifier of the issuer's RS256 tokens through its JWKS.
func jwksVerifier(t *testing.T, c extjwt.Config) (*extjwt.Verifier, *idp) {
	t.Helper()
	p := newIDP(t)
	c.JWKSURL, c.JWKS.Client = p.srv.URL, p.srv.Client()
	return newVerifier(t, c), p
}

// claims are valid claims for the issuer, with changes (a nil value
// removes a claim).
func claims(changes map[string]any) map[string]any {
	c := map[string]any{
		"iss": iss, "aud": aud, "sub": "alice", "jti": "tok-1",
		"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(), "scope": "orders:read orders:write",
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with jwx, with kid in the header and typ at+jwt.
func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	return signTyp(t, "at+jwt", alg, key, kid, claims)
}

// signTyp is sign with another typ ("": none).
func signTyp(t *testing.T, typ string, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	for name, v := range map[string]string{jws.KeyIDKey: kid, jws.TypeKey: typ} {
		if v != "" {
			_ = h.Set(name, v)
		}
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func rs256(t *testing.T, c map[string]any) string { return sign(t, jwa.RS256, rsaKey(), kid, c) }

// unsigned builds a token by hand from a header, claims and signature.
func unsigned(t *testing.T, header string, c map[string]any, sig string) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "." + sig
}

func verify(t *testing.T, v *extjwt.Verifier, tok string) (*decision.Decision, error) {
	t.Helper()
	return v.Verify(context.Background(), tok)
}

func wantAccepted(t *testing.T, v *extjwt.Verifier, tok string) *decision.Decision {
	t.Helper()
	e, err := verify(t, v, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if e.Refusal != nil || e.Missing {
		t.Fatalf("refused: %v", e.Refusal)
	}
	return e
}

// wantRefusal checks a refusal that may be cached: an entry with Refusal
// that maps to 401 and says why.
func wantRefusal(t *testing.T, v *extjwt.Verifier, tok string, want error, why string) {
	t.Helper()
	e, err := verify(t, v, tok)
	if err != nil {
		t.Fatalf("Verify returned an error (not cached): %v; want a cached refusal", err)
	}
	if e == nil || !errors.Is(e.Refusal, want) || !strings.Contains(e.Refusal.Error(), why) {
		t.Fatalf("entry = %+v, want a refusal %v (%s)", e, want, why)
	}
	if p := apierr.For(e.Refusal); p.Status != http.StatusUnauthorized {
		t.Fatalf("refusal %v maps to %d, want 401", e.Refusal, p.Status)
	}
}

func TestJWKSVerifierAccepts(t *testing.T) {
	exp := t0.Add(time.Hour)
	tests := []struct {
		name       string
		config     extjwt.Config
		claims     map[string]any
		user       string
		scopes     []string
		expiresAt  time.Time
		tokenIDSet bool
	}{
		{"sub and scope string", extjwt.Config{}, claims(nil), "alice", []string{"orders:read", "orders:write"}, exp, true},
		{"scp array", extjwt.Config{}, claims(map[string]any{"scope": nil, "scp": []string{"orders:read", "bad scope", ""}}), "alice", []string{"orders:read"}, exp, true},
		{"control characters in scopes", extjwt.Config{}, claims(map[string]any{"scope": "a\x00 b c\x7f"}), "alice", []string{"b"}, exp, true},
		{"control characters in a scope array", extjwt.Config{}, claims(map[string]any{"scope": []string{"a\r", "b"}}), "alice", []string{"b"}, exp, true},
		{"no scope", extjwt.Config{}, claims(map[string]any{"scope": nil, "jti": nil}), "alice", nil, exp, false},
		{"aud array", extjwt.Config{}, claims(map[string]any{"aud": []string{"other", aud}}), "alice", []string{"orders:read", "orders:write"}, exp, true},
		{"custom user claim", extjwt.Config{UserClaim: "email"}, claims(map[string]any{"email": "alice@example.com"}), "alice@example.com", []string{"orders:read", "orders:write"}, exp, true},
		{"custom scope claim", extjwt.Config{ScopeClaim: "permissions"}, claims(map[string]any{"permissions": []string{"a", "b"}}), "alice", []string{"a", "b"}, exp, true},
		{"custom scope claim does not fall back to scp", extjwt.Config{ScopeClaim: "permissions"}, claims(map[string]any{"scp": []string{"a"}}), "alice", nil, exp, true},
		{"expired within the leeway", extjwt.Config{}, claims(map[string]any{"exp": t0.Add(-extjwt.Leeway + time.Second).Unix()}), "alice", []string{"orders:read", "orders:write"}, t0.Add(-extjwt.Leeway + time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := jwksVerifier(t, tt.config)
			e := wantAccepted(t, v, rs256(t, tt.claims))
			if e.Kind != "jwt" || e.User != tt.user || e.Owner != "issuer:"+iss || e.Issuer != iss {
				t.Fatalf("entry kind %q user %q owner %q issuer %q", e.Kind, e.User, e.Owner, e.Issuer)
			}
			if e.ScopeHeader != strings.Join(tt.scopes, " ") {
				t.Fatalf("scopes %q, want %q", e.ScopeHeader, tt.scopes)
			}
			if want := tt.expiresAt.Add(extjwt.Leeway).UnixNano(); e.ExpiresAt != want {
				t.Fatalf("ExpiresAt = %v, want %v", time.Unix(0, e.ExpiresAt), time.Unix(0, want))
			}
			if (e.TokenID == "tok-1") != tt.tokenIDSet {
				t.Fatalf("TokenID = %q", e.TokenID)
			}
		})
	}
}

func TestJWKSVerifierRefuses(t *testing.T) {
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	tests := []struct {
		name string
		tok  func(t *testing.T) string
		want error
		why  string
	}{
		{"wrong iss", func(t *testing.T) string { return rs256(t, claims(map[string]any{"iss": "https://evil.example"})) }, apierr.ErrInvalidToken, "wrong issuer"},
		{"wrong aud string", func(t *testing.T) string { return rs256(t, claims(map[string]any{"aud": "other"})) }, apierr.ErrInvalidToken, "wrong audience"},
		{"wrong aud array", func(t *testing.T) string { return rs256(t, claims(map[string]any{"aud": []string{"a", "b"}})) }, apierr.ErrInvalidToken, "wrong audience"},
		{"no aud", func(t *testing.T) string { return rs256(t, claims(map[string]any{"aud": nil})) }, apierr.ErrInvalidToken, "wrong audience"},
		{"expired", func(t *testing.T) string {
			return rs256(t, claims(map[string]any{"exp": t0.Add(-extjwt.Leeway).Unix()}))
		}, apierr.ErrExpiredToken, "expired"},
		{"missing exp", func(t *testing.T) string { return rs256(t, claims(map[string]any{"exp": nil})) }, apierr.ErrInvalidToken, "no exp"},
		{"exp is a string", func(t *testing.T) string {
			return rs256(t, claims(map[string]any{"exp": "9999999999"}))
		}, apierr.ErrInvalidToken, "no exp"},
		{"missing sub", func(t *testing.T) string { return rs256(t, claims(map[string]any{"sub": nil})) }, apierr.ErrInvalidToken, "no sub"},
		{"sub not a string", func(t *testing.T) string { return rs256(t, claims(map[string]any{"sub": 42})) }, apierr.ErrInvalidToken, "no sub"},
		{"sub with a line break", func(t *testing.T) string {
			return rs256(t, claims(map[string]any{"sub": "alice\r\nX-Auth-User: admin"}))
		}, apierr.ErrInvalidToken, "control characters"},
		{"sub with NUL", func(t *testing.T) string { return rs256(t, claims(map[string]any{"sub": "alice\x00"})) }, apierr.ErrInvalidToken, "control characters"},
		{"alg none", func(t *testing.T) string {
			return unsigned(t, `{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`, claims(nil), "")
		}, apierr.ErrInvalidToken, "algorithm does not match"},
		{"HS256 signed with the RSA public key PEM", func(t *testing.T) string {
			return sign(t, jwa.HS256, pubPEM, kid, claims(nil))
		}, apierr.ErrInvalidToken, "algorithm does not match"},
		{"HS256 signed with the RSA public key DER", func(t *testing.T) string {
			return sign(t, jwa.HS256, pubDER, kid, claims(nil))
		}, apierr.ErrInvalidToken, "algorithm does not match"},
		{"tampered payload", func(t *testing.T) string {
			parts := strings.Split(rs256(t, claims(nil)), ".")
			forged := strings.Split(unsigned(t, `{}`, claims(map[string]any{"sub": "admin"}), ""), ".")
			return parts[0] + "." + forged[1] + "." + parts[2]
		}, apierr.ErrInvalidToken, "signature does not verify"},
		{"not a JWS", func(*testing.T) string { return "abc.def" }, apierr.ErrInvalidToken, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := jwksVerifier(t, extjwt.Config{})
			wantRefusal(t, v, tt.tok(t), tt.want, tt.why)
		})
	}
}

// wantUncachedError checks a refusal that must not be cached: an error,
// no entry.
func wantUncachedError(t *testing.T, v *extjwt.Verifier, tok string, want error, status int) {
	t.Helper()
	e, err := verify(t, v, tok)
	if e != nil || !errors.Is(err, want) {
		t.Fatalf("Verify = %+v, %v; want no entry and an error wrapping %v", e, err, want)
	}
	if p := apierr.For(err); p.Status != status {
		t.Fatalf("status = %d, want %d", p.Status, status)
	}
}

func TestUncachedRefusals(t *testing.T) {
	tests := []struct {
		name string
		tok  func(t *testing.T) string
	}{
		{"unknown kid", func(t *testing.T) string { return sign(t, jwa.RS256, rsaKey(), "idp-2", claims(nil)) }},
		{"no kid", func(t *testing.T) string { return sign(t, jwa.RS256, rsaKey(), "", claims(nil)) }},
		{"not valid yet", func(t *testing.T) string {
			return rs256(t, claims(map[string]any{"nbf": t0.Add(extjwt.Leeway + time.Minute).Unix()}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := jwksVerifier(t, extjwt.Config{})
			wantUncachedError(t, v, tt.tok(t), apierr.ErrInvalidToken, http.StatusUnauthorized)
		})
	}
}

func TestJWKSDownBeforeAnyFetch(t *testing.T) {
	v, p := jwksVerifier(t, extjwt.Config{})
	p.srv.Close()
	wantUncachedError(t, v, rs256(t, claims(nil)), apierr.ErrUnavailable, http.StatusServiceUnavailable)
}

func TestKeysAreFetchedOnce(t *testing.T) {
	v, p := jwksVerifier(t, extjwt.Config{})
	for range 3 {
		wantAccepted(t, v, rs256(t, claims(nil)))
	}
	if n := p.hits.Load(); n != 1 {
		t.Fatalf("the JWKS was fetched %d times, want 1", n)
	}
}

func TestSecretVerifier(t *testing.T) {
	v := newVerifier(t, extjwt.Config{Secret: secret})
	other := []byte("fedcba9876543210fedcba9876543210")
	tests := []struct {
		name string
		tok  func(t *testing.T) string
		why  string // "": accepted
	}{
		{"the secret", func(t *testing.T) string { return sign(t, jwa.HS256, secret, "", claims(nil)) }, ""},
		{"the secret, any kid", func(t *testing.T) string { return sign(t, jwa.HS256, secret, "whatever", claims(nil)) }, ""},
		{"another secret", func(t *testing.T) string { return sign(t, jwa.HS256, other, "", claims(nil)) }, "signature does not verify"},
		{"RS256", func(t *testing.T) string { return rs256(t, claims(nil)) }, "algorithm does not match"},
		{"alg none", func(t *testing.T) string { return unsigned(t, `{"alg":"none","typ":"at+jwt"}`, claims(nil), "") }, "algorithm does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.why == "" {
				if e := wantAccepted(t, v, tt.tok(t)); e.User != "alice" || e.Kind != "jwt" {
					t.Fatalf("entry = %+v", e)
				}
				return
			}
			wantRefusal(t, v, tt.tok(t), apierr.ErrInvalidToken, tt.why)
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		c    extjwt.Config
	}{
		{"both jwks_url and secret", extjwt.Config{Issuer: iss, Audience: aud, JWKSURL: "https://idp.example.com/jwks", Secret: secret}},
		{"neither jwks_url nor secret", extjwt.Config{Issuer: iss, Audience: aud}},
		{"no issuer", extjwt.Config{Audience: aud, Secret: secret}},
		{"no audience", extjwt.Config{Issuer: iss, Secret: secret}},
		{"short secret", extjwt.Config{Issuer: iss, Audience: aud, Secret: []byte("short")}},
		{"http jwks_url", extjwt.Config{Issuer: iss, Audience: aud, JWKSURL: "http://idp.example.com/jwks"}},
		{"loopback http jwks_url without the option", extjwt.Config{Issuer: iss, Audience: aud, JWKSURL: "http://127.0.0.1:8080/jwks"}},
		{"typ with a space", extjwt.Config{Issuer: iss, Audience: aud, Secret: secret, Types: []string{"at jwt"}}},
		{"empty typ", extjwt.Config{Issuer: iss, Audience: aud, Secret: secret, Types: []string{""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := extjwt.New(tt.c); err == nil {
				t.Fatalf("New = %v, want an error", v)
			}
		})
	}
}

func TestCacheKeysAreSaltedPerVerifier(t *testing.T) {
	a, b := newVerifier(t, extjwt.Config{Secret: secret}), newVerifier(t, extjwt.Config{Secret: secret})
	var h [32]byte
	copy(h[:], "a token hash of thirty-two bytes")
	ka, kb := a.CacheKey(h), b.CacheKey(h)
	if ka == h || kb == h || ka == kb {
		t.Fatal("cache keys are not salted apart")
	}
	if a.CacheKey(h) != ka {
		t.Fatal("a verifier's cache key is not stable")
	}
}

// TestTypIsChecked: RFC 8725 3.11. An issuer's ID tokens (typ JWT or
// none) do not pass as access tokens unless the operator lists them.
func TestTypIsChecked(t *testing.T) {
	tests := []struct {
		name     string
		accept   []string
		accepted []string // token typ values accepted ("" is none)
		refused  []string
	}{
		{"default", nil,
			[]string{"at+jwt", "application/at+jwt", "AT+JWT", "Application/AT+JWT"},
			[]string{"", "JWT", "jwt", "application/jwt", "id_token", "text/at+jwt", "at+jwt ", "at+jw\u212at", "none", "secevent+jwt"}},
		{"JWT listed", []string{"at+jwt", "JWT"},
			[]string{"at+jwt", "JWT", "application/jwt"},
			[]string{"", "none", "id+jwt"}},
		{"none listed", []string{"none"},
			[]string{""},
			[]string{"none", "at+jwt", "JWT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, p := jwksVerifier(t, extjwt.Config{Types: tt.accept})
			for _, typ := range tt.refused {
				wantRefusal(t, v, signTyp(t, typ, jwa.RS256, rsaKey(), kid, claims(nil)), apierr.ErrInvalidToken, "typ")
			}
			if n := p.hits.Load(); n != 0 {
				t.Fatalf("a refused typ fetched the JWKS (%d times)", n)
			}
			for _, typ := range tt.accepted {
				wantAccepted(t, v, signTyp(t, typ, jwa.RS256, rsaKey(), kid, claims(nil)))
			}
		})
	}
}
