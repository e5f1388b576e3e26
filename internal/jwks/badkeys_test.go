package jwks_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/jwks"
	"github.com/tokengate/tokengate/internal/jwt"
)

// rawJWK is a JWK written by hand, to hold what no library would make.
func rawJWK(t *testing.T, members map[string]string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(members)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawSet(t *testing.T, keys ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var b64 = base64.RawURLEncoding.EncodeToString

// badKeys are JWKs of the right type for a signing algorithm we support,
// but of the wrong size or shape, each with the reason Parse must give.
func badKeys(t *testing.T) map[string]struct {
	jwk json.RawMessage
	why string
} {
	ed := []byte(edKey(t).Public().(ed25519.PublicKey))
	ec := ecKey(t, elliptic.P256()).Public().(*ecdsa.PublicKey)
	offY := new(big.Int).Add(ec.Y, big.NewInt(1)).FillBytes(make([]byte, 32))
	small := new(big.Int).Lsh(big.NewInt(1), 1023)
	small.SetBit(small, 0, 1)
	n := rsaKeys()[0].N.Bytes()
	type bad = struct {
		jwk json.RawMessage
		why string
	}
	return map[string]bad{
		"ed-short": {rawJWK(t, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "ed-short", "x": b64(ed[:31])}), "Ed25519 key of 31 bytes"},
		"ed-long":  {rawJWK(t, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "ed-long", "alg": "EdDSA", "x": b64(append(ed, 1))}), "Ed25519 key of 33 bytes"},
		"ec-off": {rawJWK(t, map[string]string{"kty": "EC", "crv": "P-256", "kid": "ec-off",
			"x": b64(ec.X.FillBytes(make([]byte, 32))), "y": b64(offY)}), "not on P-256"},
		"rsa-1024": {rawJWK(t, map[string]string{"kty": "RSA", "kid": "rsa-1024", "n": b64(small.Bytes()), "e": "AQAB"}), "1024 bits"},
		"rsa-e1":   {rawJWK(t, map[string]string{"kty": "RSA", "kid": "rsa-e1", "n": b64(n), "e": "AQ"}), "exponent 1"},
	}
}

// TestParseRefusesBadKeysAndKeepsTheRest: a key of the wrong size or
// shape is left out, with the reason, and the good keys stay usable.
func TestParseRefusesBadKeysAndKeepsTheRest(t *testing.T) {
	good := rsaKeys()[1]
	goodJWK, err := json.Marshal(pub(t, good, "good", "RS256"))
	if err != nil {
		t.Fatal(err)
	}
	for kid, bad := range badKeys(t) {
		t.Run(kid, func(t *testing.T) {
			keys, refused, err := jwks.ParseReport(rawSet(t, bad.jwk, goodJWK))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, ok := keys["good"]; !ok || len(keys) != 1 {
				t.Fatalf("Parse kept %v, want only the good key", keys)
			}
			if len(refused) != 1 || refused[0].KID != kid || !refused[0].Bad || !strings.Contains(refused[0].Reason, bad.why) {
				t.Fatalf("refused %+v, want %s refused for %q", refused, kid, bad.why)
			}
		})
	}
}

// TestParseRefusesAKidUsedTwice: two keys under one kid are both left
// out; which of them a token means cannot be told.
func TestParseRefusesAKidUsedTwice(t *testing.T) {
	ks := rsaKeys()
	keys, refused, err := jwks.ParseReport(setOf(t, pub(t, ks[0], "twice", ""), pub(t, ks[1], "good", ""),
		pub(t, ks[1], "twice", ""), pub(t, edKey(t), "twice", "")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, ok := keys["good"]; !ok || len(keys) != 1 {
		t.Fatalf("Parse kept %v, want only the good key", keys)
	}
	if len(refused) != 1 || refused[0].KID != "twice" || !refused[0].Bad {
		t.Fatalf("refused %+v", refused)
	}
}

// TestFetcherLogsRefusedKeysOnce: the log says which kid was refused and
// why, once for as long as the issuer serves it.
func TestFetcherLogsRefusedKeysOnce(t *testing.T) {
	bad := badKeys(t)["ed-short"]
	goodJWK, err := json.Marshal(pub(t, edKey(t), "good", ""))
	if err != nil {
		t.Fatal(err)
	}
	is := newIssuer(t, rawSet(t, bad.jwk, goodJWK))
	core, logs := observer.New(zapcore.DebugLevel)
	clk := &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	f, err := jwks.New(is.srv.URL, jwks.Options{
		Client: is.srv.Client(), Floor: floor, MaxAge: maxAge, Now: clk.Now, Logger: zap.New(core), AllowHTTPLoopback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	warnings := func() []observer.LoggedEntry {
		return logs.FilterLevelExact(zapcore.WarnLevel).FilterField(zap.String("kid", "ed-short")).AllUntimed()
	}
	wantKey(t, f, "good")
	wantErr(t, f, "ed-short", jwks.ErrUnknownKey)
	if w := warnings(); len(w) != 1 || !strings.Contains(w[0].ContextMap()["reason"].(string), bad.why) {
		t.Fatalf("warnings %+v, want one naming the kid and why", w)
	}
	// Fetched again (the unknown kid, after the floor): no new warning.
	clk.Advance(floor)
	wantErr(t, f, "ed-short", jwks.ErrUnknownKey)
	wantHits(t, is, 2)
	if w := warnings(); len(w) != 1 {
		t.Fatalf("%d warnings for the same key, want 1", len(w))
	}
	// Once fixed and broken again, it is news again.
	is.serve(200, setOf(t, pub(t, edKey(t), "good", "")))
	clk.Advance(floor)
	wantErr(t, f, "ed-short", jwks.ErrUnknownKey)
	is.serve(200, rawSet(t, bad.jwk, goodJWK))
	clk.Advance(floor)
	wantErr(t, f, "ed-short", jwks.ErrUnknownKey)
	if w := warnings(); len(w) != 2 {
		t.Fatalf("%d warnings, want 2", len(w))
	}
}

// TestExternalES256MayHaveAHighS: another issuer's signer need not
// normalise s (jwx does not), so its keys accept both halves.
func TestExternalES256MayHaveAHighS(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	keys, err := jwks.Parse(setOf(t, pub(t, ec, "ec", "ES256")))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := jwt.FromPublic("ec", jwt.ES256, ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	tok := highSToken(t, ec, "ec")
	parsed, err := jwt.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(keys["ec"]); err != nil {
		t.Errorf("a high-S token of another issuer: %v", err)
	}
	if err := parsed.Verify(mine); err == nil {
		t.Error("a key from FromPublic alone accepted a high S")
	}
}

// highSToken is an ES256 token signed by k whose s is above n/2.
func highSToken(t *testing.T, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	input := b64([]byte(`{"alg":"ES256","kid":"`+kid+`"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	if s.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		s.Sub(n, s)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// TestParseKeepsTheSetDespiteUnreadableKeys: one key that cannot be read
// at all (an unknown kty, a missing member) used to fail the whole set;
// it is refused on its own (RFC 7517 5).
func TestParseKeepsTheSetDespiteUnreadableKeys(t *testing.T) {
	goodJWK, err := json.Marshal(pub(t, edKey(t), "good", ""))
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{
		"unknown kty":   `{"kty":"XYZ","kid":"b"}`,
		"no kty":        `{"kid":"b"}`,
		"RSA without e": `{"kty":"RSA","kid":"b","n":"AQAB"}`,
		"alg a number":  `{"kty":"RSA","kid":"b","n":"AQAB","e":"AQAB","alg":5}`,
		"Ed448":         `{"kty":"OKP","crv":"Ed448","kid":"b","x":"AQAB"}`,
		"not an object": `"b"`,
	} {
		t.Run(name, func(t *testing.T) {
			keys, refused, err := jwks.ParseReport(rawSet(t, json.RawMessage(raw), goodJWK))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, ok := keys["good"]; !ok || len(keys) != 1 || len(refused) != 1 {
				t.Fatalf("Parse kept %v, refused %+v", keys, refused)
			}
			if raw != `"b"` && refused[0].KID != "b" {
				t.Errorf("refused %+v does not name the kid", refused[0])
			}
		})
	}
}
