package jwt_test

import (
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/tokengate/tokengate/internal/jwt"
)

var algs = []string{jwt.HS256, jwt.RS256, jwt.ES256, jwt.EdDSA}

type claims struct {
	Sub string `json:"sub"`
	N   int    `json:"n"`
}

var testClaims = claims{Sub: "alice", N: 42}

var b64 = base64.RawURLEncoding

// keys holds one generated key per algorithm (RSA generation is slow).
var keys sync.Map

// key returns the shared test key of alg.
func key(tb testing.TB, alg string) *jwt.Key {
	tb.Helper()
	if k, ok := keys.Load(alg); ok {
		return k.(*jwt.Key)
	}
	k, _ := keys.LoadOrStore(alg, generate(tb, "kid-"+alg, alg))
	return k.(*jwt.Key)
}

func generate(tb testing.TB, kid, alg string) *jwt.Key {
	tb.Helper()
	k, err := jwt.Generate(kid, alg)
	if err != nil {
		tb.Fatalf("Generate(%s): %v", alg, err)
	}
	return k
}

func sign(tb testing.TB, k *jwt.Key, typ string, cl any) string {
	tb.Helper()
	s, err := jwt.Sign(k, typ, cl)
	if err != nil {
		tb.Fatalf("Sign(%s): %v", k.Alg, err)
	}
	return s
}

// verify parses and verifies s with k.
func verify(s string, k *jwt.Key) error {
	t, err := jwt.Parse(s)
	if err != nil {
		return err
	}
	return t.Verify(k)
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// parts splits a compact JWS.
func parts(tb testing.TB, s string) (h, p, sig string) {
	tb.Helper()
	ps := strings.Split(s, ".")
	if len(ps) != 3 {
		tb.Fatalf("%q is not a compact JWS", s)
	}
	return ps[0], ps[1], ps[2]
}

// hsToken signs an arbitrary header and payload with an HMAC secret, the
// way an attacker who knows (or guesses) the secret would.
func hsToken(secret []byte, header map[string]any, payload []byte) string {
	hb, _ := json.Marshal(header)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			k := key(t, alg)
			s := sign(t, k, "at+jwt", testClaims)
			tok, err := jwt.Parse(s)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if want := (jwt.Header{Alg: alg, Kid: k.ID, Typ: "at+jwt"}); tok.Header != want {
				t.Errorf("header = %+v, want %+v", tok.Header, want)
			}
			var got claims
			if err := json.Unmarshal(tok.Payload, &got); err != nil || got != testClaims {
				t.Errorf("payload = %s (%v), want %+v", tok.Payload, err, testClaims)
			}
			if err := tok.Verify(k); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestMaterialRoundTrip(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			k := key(t, alg)
			m, err := k.Material()
			if err != nil {
				t.Fatalf("Material: %v", err)
			}
			k2, err := jwt.FromMaterial(k.ID, alg, m)
			if err != nil {
				t.Fatalf("FromMaterial: %v", err)
			}
			if k2.ID != k.ID || k2.Alg != alg {
				t.Errorf("rebuilt key is %s/%s, want %s/%s", k2.ID, k2.Alg, k.ID, alg)
			}
			if m2, err := k2.Material(); err != nil || string(m2) != string(m) {
				t.Errorf("Material of the rebuilt key differs (%v)", err)
			}
			if err := verify(sign(t, k, "", testClaims), k2); err != nil {
				t.Errorf("token of the original does not verify with the rebuilt key: %v", err)
			}
			if err := verify(sign(t, k2, "", testClaims), k); err != nil {
				t.Errorf("token of the rebuilt key does not verify with the original: %v", err)
			}
			j1, _ := k.JWK()
			j2, _ := k2.JWK()
			if string(mustJSON(t, j1)) != string(mustJSON(t, j2)) {
				t.Errorf("JWK differs: %v vs %v", j1, j2)
			}
		})
	}
}

func TestFromMaterialRefusesOtherAlgorithm(t *testing.T) {
	m, err := key(t, jwt.ES256).Material()
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{jwt.RS256, jwt.EdDSA, "none"} {
		t.Run(alg, func(t *testing.T) {
			if _, err := jwt.FromMaterial("kid", alg, m); err == nil {
				t.Errorf("an ES256 key was accepted as %s", alg)
			}
		})
	}
}

// jwxVerifyKey is what jwx needs to verify a token of k: the HS secret or
// the key parsed from our JWK.
func jwxVerifyKey(t *testing.T, k *jwt.Key) any {
	t.Helper()
	if k.Alg == jwt.HS256 {
		return k.Secret()
	}
	pub, ok := k.JWK()
	if !ok {
		t.Fatalf("no JWK for %s", k.Alg)
	}
	jk, err := jwk.ParseKey(mustJSON(t, pub))
	if err != nil {
		t.Fatalf("jwx cannot parse our JWK: %v", err)
	}
	return jk
}

// jwxSignKey is the private key of k, for jwx.
func jwxSignKey(t *testing.T, k *jwt.Key) any {
	t.Helper()
	if k.Alg == jwt.HS256 {
		return k.Secret()
	}
	m, err := k.Material()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(m)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestJWXInterop(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg+"/ours verified by jwx", func(t *testing.T) {
			k := key(t, alg)
			s := sign(t, k, "at+jwt", testClaims)
			payload, err := jws.Verify([]byte(s), jws.WithKey(jwa.SignatureAlgorithm(alg), jwxVerifyKey(t, k)))
			if err != nil {
				t.Fatalf("jwx refuses our token: %v", err)
			}
			if string(payload) != string(mustJSON(t, testClaims)) {
				t.Errorf("jwx read payload %s", payload)
			}
		})
		t.Run(alg+"/jwx verified by ours", func(t *testing.T) {
			k := key(t, alg)
			payload := mustJSON(t, testClaims)
			s, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), jwxSignKey(t, k)))
			if err != nil {
				t.Fatalf("jwx Sign: %v", err)
			}
			tok, err := jwt.Parse(string(s))
			if err != nil {
				t.Fatalf("Parse of a jwx token: %v", err)
			}
			// As another issuer's key: jwx does not normalise ECDSA's s.
			if err := tok.Verify(k.AcceptHighS()); err != nil {
				t.Errorf("Verify of a jwx token: %v", err)
			}
			if string(tok.Payload) != string(payload) {
				t.Errorf("payload = %s", tok.Payload)
			}
		})
	}
}

// rsaPublicBytes returns the RS256 test key's public key as PKIX DER and
// as PEM: what an attacker can download from the JWKS.
func rsaPublicBytes(t *testing.T) (der, pemBytes []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key(t, jwt.RS256).PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// confused signs an HS256 token whose HMAC secret is secret.
func confused(t *testing.T, secret []byte) string {
	t.Helper()
	hk, err := jwt.FromPublic(key(t, jwt.RS256).ID, jwt.HS256, secret)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, hk, "at+jwt", testClaims)
}

// derSignature re-encodes a 64-byte ES256 signature as ASN.1 DER, as some
// libraries (wrongly, for JWS) send it.
func derSignature(t *testing.T, sig string) string {
	t.Helper()
	raw, err := b64.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		t.Fatalf("not an ES256 signature: %v", err)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(der)
}

func TestAttacksRefused(t *testing.T) {
	der, pemBytes := rsaPublicBytes(t)
	hs := key(t, jwt.HS256)
	payload := mustJSON(t, testClaims)
	good := func(alg string) string { return sign(t, key(t, alg), "at+jwt", testClaims) }
	withHeader := func(extra map[string]any) string {
		h := map[string]any{"alg": jwt.HS256, "kid": hs.ID, "typ": "at+jwt"}
		for k, v := range extra {
			h[k] = v
		}
		return hsToken(hs.Secret(), h, payload)
	}
	// The helper itself makes valid tokens: what it signs is refused
	// for its header only.
	if err := verify(withHeader(nil), hs); err != nil {
		t.Fatalf("control token refused: %v", err)
	}

	type attack struct {
		name  string
		token func() string
		alg   string // the key it is verified with
		want  error
	}
	var cases []attack
	for _, alg := range algs {
		cases = append(cases,
			attack{"alg none/" + alg, func() string {
				return b64.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + b64.EncodeToString(payload) + "."
			}, alg, jwt.ErrAlgMismatch},
			attack{"tampered payload/" + alg, func() string {
				h, _, sig := parts(t, good(alg))
				return h + "." + b64.EncodeToString(mustJSON(t, claims{Sub: "admin", N: 42})) + "." + sig
			}, alg, jwt.ErrBadSignature},
			attack{"tampered header/" + alg, func() string {
				_, p, sig := parts(t, good(alg))
				h := b64.EncodeToString(mustJSON(t, jwt.Header{Alg: alg, Kid: "kid-" + alg, Typ: "JWT"}))
				return h + "." + p + "." + sig
			}, alg, jwt.ErrBadSignature},
			attack{"wrong key/" + alg, func() string {
				return sign(t, generate(t, "kid-"+alg, alg), "at+jwt", testClaims)
			}, alg, jwt.ErrBadSignature},
			attack{"padding in signature/" + alg, func() string { return good(alg) + "==" }, alg, jwt.ErrMalformed},
			attack{"two dots in signature/" + alg, func() string {
				h, p, sig := parts(t, good(alg))
				return h + "." + p + "." + sig[:10] + "." + sig[10:]
			}, alg, jwt.ErrMalformed},
		)
	}
	cases = append(cases,
		attack{"HS256 with RSA public key PEM as secret", func() string { return confused(t, pemBytes) }, jwt.RS256, jwt.ErrAlgMismatch},
		attack{"HS256 with RSA public key DER as secret", func() string { return confused(t, der) }, jwt.RS256, jwt.ErrAlgMismatch},
		attack{"alg none capitalised", func() string {
			return b64.EncodeToString([]byte(`{"alg":"None"}`)) + "." + b64.EncodeToString(payload) + "."
		}, jwt.HS256, jwt.ErrAlgMismatch},
		attack{"padding in header", func() string {
			h, p, sig := parts(t, good(jwt.HS256))
			return h + "=." + p + "." + sig
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"standard base64 characters", func() string {
			h, p, sig := parts(t, good(jwt.HS256))
			return h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(sig) + "+/"
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"space in signature", func() string {
			h, p, sig := parts(t, good(jwt.HS256))
			return h + "." + p + "." + sig[:8] + " " + sig[8:]
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"line break in signature", func() string {
			h, p, sig := parts(t, good(jwt.HS256))
			return h + "." + p + "." + sig[:8] + "\n" + sig[8:]
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"carriage return in payload", func() string {
			h, p, sig := parts(t, good(jwt.HS256))
			return h + "." + p[:4] + "\r" + p[4:] + "." + sig
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"only two parts", func() string {
			h, p, _ := parts(t, good(jwt.HS256))
			return h + "." + p
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"header not JSON", func() string {
			_, p, sig := parts(t, good(jwt.HS256))
			return b64.EncodeToString([]byte("alg=HS256")) + "." + p + "." + sig
		}, jwt.HS256, jwt.ErrMalformed},
		attack{"ES256 signature in DER", func() string {
			h, p, sig := parts(t, good(jwt.ES256))
			return h + "." + p + "." + derSignature(t, sig)
		}, jwt.ES256, jwt.ErrBadSignature},
		attack{"ES256 signature of 63 bytes", func() string {
			h, p, sig := parts(t, good(jwt.ES256))
			raw, _ := b64.DecodeString(sig)
			return h + "." + p + "." + b64.EncodeToString(raw[1:])
		}, jwt.ES256, jwt.ErrBadSignature},
		attack{"ES256 signature of 65 bytes", func() string {
			h, p, sig := parts(t, good(jwt.ES256))
			raw, _ := b64.DecodeString(sig)
			return h + "." + p + "." + b64.EncodeToString(append([]byte{0}, raw...))
		}, jwt.ES256, jwt.ErrBadSignature},
	)
	for _, member := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
		cases = append(cases, attack{"header " + member, func() string {
			var v any = "https://attacker.example/keys"
			switch member {
			case "jwk":
				v = map[string]any{"kty": "oct", "k": b64.EncodeToString([]byte("attacker secret"))}
			case "x5c":
				v = []string{"MIIB"}
			case "crit":
				v = []string{"exp"}
			}
			return withHeader(map[string]any{member: v})
		}, jwt.HS256, jwt.ErrInvalid})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := verify(c.token(), key(t, c.alg))
			if !errors.Is(err, c.want) || !errors.Is(err, jwt.ErrInvalid) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestJWKHasNoPrivateFields(t *testing.T) {
	wantKty := map[string]string{jwt.RS256: "RSA", jwt.ES256: "EC", jwt.EdDSA: "OKP"}
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			k := key(t, alg)
			j, ok := k.JWK()
			if alg == jwt.HS256 {
				if ok || j != nil {
					t.Errorf("JWK() = %v, %v for HS256, want nil, false", j, ok)
				}
				return
			}
			if !ok {
				t.Fatalf("JWK() = false for %s", alg)
			}
			// Through JSON, as the JWKS is served.
			var m map[string]any
			if err := json.Unmarshal(mustJSON(t, j), &m); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
				if _, ok := m[f]; ok {
					t.Errorf("JWK has private field %q", f)
				}
			}
			if m["kty"] != wantKty[alg] || m["kid"] != k.ID || m["alg"] != alg || m["use"] != "sig" {
				t.Errorf("JWK = %v", m)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	var ks []*jwt.Key
	for _, alg := range algs {
		k := key(f, alg)
		ks = append(ks, k)
		f.Add(sign(f, k, "at+jwt", testClaims))
	}
	for _, s := range []string{"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30.e30", "=.=.=", "\n.\n.\n"} {
		f.Add(s)
	}
	// Strict JOSE: odd-case, duplicate and escaped names, a high-S twin,
	// and a token just over the length bound.
	for _, hp := range [][2]string{
		{`{"ALG":"HS256"}`, `{}`},
		{`{"alg":"none","ALG":"HS256"}`, `{"sub":"alice"}`},
		{`{"alg":"HS256","alg":"HS256"}`, `{}`},
		{`{"alg":"HS256","\u0061lg":"HS256"}`, `{}`},
		{hsHeader, `{"exp":1,"exp":2}`},
		{hsHeader, `{"EXP":1,"exp":2,"x":{"a":1,"a":2}}`},
		{hsHeader, `[{"sub":"alice"}]`},
		{hsHeader, `{"s":"\"}{","t":[1,{"u":null}]}`},
		{hsHeader, `{"sub":"al\u0069ce","exp":1e3}`},
		{hsHeader, `{"sub":null,"exp":-0}`},
	} {
		f.Add(rawHS(f, hp[0], hp[1]))
	}
	es := sign(f, key(f, jwt.ES256), "at+jwt", testClaims)
	if raw, err := b64.DecodeString(es[strings.LastIndexByte(es, '.')+1:]); err == nil && len(raw) == 64 {
		s := new(big.Int).SetBytes(raw[32:])
		s.Sub(elliptic.P256().Params().N, s)
		s.FillBytes(raw[32:])
		f.Add(es[:strings.LastIndexByte(es, '.')+1] + b64.EncodeToString(raw))
	}
	f.Add(rawHS(f, hsHeader, `{"p":"`+strings.Repeat("a", jwt.MaxLen)+`"}`))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := jwt.Parse(s)
		if err != nil {
			if !errors.Is(err, jwt.ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What Parse accepts, encoding/json reads as an object with the
		// same (unique) names; Claims never fails on a map.
		var loose map[string]json.RawMessage
		var strict map[string]any
		if err := json.Unmarshal(tok.Payload, &loose); err != nil {
			t.Fatalf("Parse accepted claims encoding/json refuses: %v", err)
		}
		if err := tok.Claims(&strict); err != nil || len(strict) != len(loose) {
			t.Fatalf("Claims = %d members (%v), encoding/json %d", len(strict), err, len(loose))
		}
		for name := range loose {
			if _, ok := strict[name]; !ok {
				t.Fatalf("Claims lost member %q", name)
			}
		}
		if len(s) > jwt.MaxLen {
			t.Fatalf("Parse accepted %d bytes", len(s))
		}
		// A struct gets what encoding/json makes of the exact member.
		var got struct {
			Sub string `json:"sub"`
			Exp int64  `json:"exp"`
		}
		errStrict := tok.Claims(&got)
		var sub string
		var exp int64
		errSub, errExp := json.Unmarshal(loose["sub"], &sub), json.Unmarshal(loose["exp"], &exp)
		if loose["sub"] == nil {
			errSub = nil
		}
		if loose["exp"] == nil {
			errExp = nil
		}
		if (errStrict == nil) != (errSub == nil && errExp == nil) || errStrict == nil && (got.Sub != sub || got.Exp != exp) {
			t.Fatalf("Claims = %+v, %v; encoding/json sub %q (%v), exp %d (%v)", got, errStrict, sub, errSub, exp, errExp)
		}
		for _, k := range ks {
			if err := tok.Verify(k); err != nil && !errors.Is(err, jwt.ErrInvalid) {
				t.Fatalf("Verify error %v does not wrap ErrInvalid", err)
			}
		}
	})
}

func benchmarkVerify(b *testing.B, alg string) {
	k := key(b, alg)
	s := sign(b, k, "at+jwt", testClaims)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := jwt.Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		if err := tok.Verify(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) { benchmarkVerify(b, jwt.HS256) }
func BenchmarkVerifyRS256(b *testing.B) { benchmarkVerify(b, jwt.RS256) }
func BenchmarkVerifyES256(b *testing.B) { benchmarkVerify(b, jwt.ES256) }
func BenchmarkVerifyEdDSA(b *testing.B) { benchmarkVerify(b, jwt.EdDSA) }
