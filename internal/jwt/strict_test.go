package jwt_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/jwt"
)

// rawHS signs a header and a payload given as JSON text, so that they can
// hold what encoding/json never writes (duplicate or odd-case members),
// with the test HS256 key.
func rawHS(tb testing.TB, header, payload string) string {
	tb.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, key(tb, jwt.HS256).Secret())
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

const hsHeader = `{"alg":"HS256","kid":"kid-HS256","typ":"at+jwt"}`

// TestHeaderNamesAreExact: "ALG" is not alg (RFC 7515 4: names are
// case-sensitive), and a member named twice is refused.
func TestHeaderNamesAreExact(t *testing.T) {
	tests := []struct {
		name, header string
		want         error      // from Parse; nil: parsed
		header2      jwt.Header // when parsed
		verifies     bool
	}{
		{"only ALG", `{"ALG":"HS256","kid":"kid-HS256"}`, jwt.ErrMalformed, jwt.Header{}, false},
		{"Alg and alg", `{"Alg":"none","alg":"HS256"}`, nil, jwt.Header{Alg: "HS256"}, true},
		{"ALG does not override alg", `{"alg":"none","ALG":"HS256"}`, nil, jwt.Header{Alg: "none"}, false},
		{"Kid is not kid", `{"alg":"HS256","Kid":"kid-HS256","TYP":"at+jwt"}`, nil, jwt.Header{Alg: "HS256"}, true},
		{"duplicate alg", `{"alg":"HS256","alg":"HS256"}`, jwt.ErrDuplicate, jwt.Header{}, false},
		{"duplicate alg, other value", `{"alg":"none","kid":"k","alg":"HS256"}`, jwt.ErrDuplicate, jwt.Header{}, false},
		{"duplicate alg, escaped", `{"alg":"HS256","\u0061lg":"HS256"}`, jwt.ErrDuplicate, jwt.Header{}, false},
		{"escaped alg alone", `{"\u0061lg":"HS256"}`, nil, jwt.Header{Alg: "HS256"}, true},
		{"duplicate kid", `{"alg":"HS256","kid":"a","kid":"b"}`, jwt.ErrDuplicate, jwt.Header{}, false},
		{"duplicate unknown member", `{"alg":"HS256","x":1,"x":2}`, jwt.ErrDuplicate, jwt.Header{}, false},
		{"alg not a string", `{"alg":["HS256"]}`, jwt.ErrMalformed, jwt.Header{}, false},
		{"kid null", `{"alg":"HS256","kid":null}`, jwt.ErrMalformed, jwt.Header{}, false},
		{"JWK is just unknown", `{"alg":"HS256","JWK":{}}`, nil, jwt.Header{Alg: "HS256"}, true},
		{"jwk refused", `{"alg":"HS256","jwk":{}}`, jwt.ErrInvalid, jwt.Header{}, false},
		{"array", `["alg","HS256"]`, jwt.ErrMalformed, jwt.Header{}, false},
		{"trailing data", `{"alg":"HS256"} {}`, jwt.ErrMalformed, jwt.Header{}, false},
		{"invalid UTF-8", "{\"alg\":\"HS256\",\"x\xff\":1}", jwt.ErrMalformed, jwt.Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := jwt.Parse(rawHS(t, tt.header, `{"sub":"alice"}`))
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Parse = %+v, %v; want %v", tok, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tok.Header != tt.header2 {
				t.Errorf("header = %+v, want %+v", tok.Header, tt.header2)
			}
			if err := tok.Verify(key(t, jwt.HS256)); (err == nil) != tt.verifies {
				t.Errorf("Verify = %v, want verified %v", err, tt.verifies)
			}
		})
	}
}

// strictClaims has the registered claims a verifier reads.
type strictClaims struct {
	Sub string   `json:"sub"`
	Exp int64    `json:"exp"`
	Aud []string `json:"aud,omitempty"`
	N   json.RawMessage
}

// TestClaimNamesAreExact: "EXP" is not exp, a claim named twice is
// refused, and the claims are an object.
func TestClaimNamesAreExact(t *testing.T) {
	tests := []struct {
		name, payload string
		want          error // from Parse
		claims        strictClaims
	}{
		{"EXP is not exp", `{"sub":"alice","EXP":99}`, nil, strictClaims{Sub: "alice"}},
		{"EXP does not override exp", `{"exp":1,"EXP":99,"Sub":"root","sub":"alice"}`, nil, strictClaims{Sub: "alice", Exp: 1}},
		{"untagged field by its exact name", `{"N":[1],"n":2}`, nil, strictClaims{N: json.RawMessage(`[1]`)}},
		{"duplicate exp", `{"sub":"alice","exp":1,"exp":99}`, jwt.ErrDuplicate, strictClaims{}},
		{"duplicate exp, escaped", `{"exp":1,"\u0065xp":99}`, jwt.ErrDuplicate, strictClaims{}},
		{"duplicate sub, whitespace", "{ \"sub\" : \"alice\" ,\n\"sub\":\"root\" }", jwt.ErrDuplicate, strictClaims{}},
		{"nested duplicates are the value's business", `{"sub":"alice","x":{"a":1,"a":2},"y":[{"b":1,"b":2}]}`, nil, strictClaims{Sub: "alice"}},
		{"strings hiding brackets", `{"x":"}]{[\"","sub":"alice","y":{"z":"\\"}}`, nil, strictClaims{Sub: "alice"}},
		{"empty object", `{}`, nil, strictClaims{}},
		{"not an object", `["sub","alice"]`, jwt.ErrMalformed, strictClaims{}},
		{"a string", `"sub"`, jwt.ErrMalformed, strictClaims{}},
		{"not JSON", `{"sub":"alice",}`, jwt.ErrMalformed, strictClaims{}},
		{"empty", ``, jwt.ErrMalformed, strictClaims{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := jwt.Parse(rawHS(t, hsHeader, tt.payload))
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Parse = %+v, %v; want %v", tok, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got strictClaims
			if err := tok.Claims(&got); err != nil {
				t.Fatalf("Claims: %v", err)
			}
			if got.Sub != tt.claims.Sub || got.Exp != tt.claims.Exp || string(got.N) != string(tt.claims.N) {
				t.Errorf("claims = %+v, want %+v", got, tt.claims)
			}
			var m map[string]any
			if err := tok.Claims(&m); err != nil {
				t.Fatalf("Claims into a map: %v", err)
			}
			if _, ok := m["EXP"]; strings.Contains(tt.payload, `"EXP"`) && !ok {
				t.Errorf("map %v lost EXP", m)
			}
		})
	}
	t.Run("wrong type", func(t *testing.T) {
		tok, err := jwt.Parse(rawHS(t, hsHeader, `{"exp":"soon"}`))
		if err != nil {
			t.Fatal(err)
		}
		var c strictClaims
		if err := tok.Claims(&c); !errors.Is(err, jwt.ErrMalformed) {
			t.Errorf("Claims = %v, want ErrMalformed", err)
		}
	})
	t.Run("map numbers keep their precision", func(t *testing.T) {
		tok, err := jwt.Parse(rawHS(t, hsHeader, `{"exp":9007199254740993}`))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := tok.Claims(&m); err != nil || m["exp"] != json.Number("9007199254740993") {
			t.Errorf("Claims = %v, %v", m, err)
		}
	})
	t.Run("many members", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{")
		for i := range 200 {
			b.WriteString(`"c` + big.NewInt(int64(i)).String() + `":0,`)
		}
		ok := b.String() + `"sub":"alice"}`
		if _, err := jwt.Parse(rawHS(t, hsHeader, ok)); err != nil {
			t.Errorf("200 distinct members: %v", err)
		}
		dup := b.String() + `"c17":1}`
		if _, err := jwt.Parse(rawHS(t, hsHeader, dup)); !errors.Is(err, jwt.ErrDuplicate) {
			t.Errorf("a duplicate after 200 members: %v", err)
		}
	})
}

func TestUnverifiedIssuerIsExact(t *testing.T) {
	for payload, want := range map[string]string{
		`{"iss":"a"}`:           "a",
		`{"ISS":"a"}`:           "",
		`{"iss":"a","iss":"b"}`: "",
		`{"iss":1}`:             "",
	} {
		if got := jwt.UnverifiedIssuer(rawHS(t, hsHeader, payload)); got != want {
			t.Errorf("UnverifiedIssuer(%s) = %q, want %q", payload, got, want)
		}
	}
}

func TestParseBoundsItsInput(t *testing.T) {
	// The longest token within the limit, and one byte more.
	var within, over string
	for n := 0; len(over) <= jwt.MaxLen; n++ {
		within, over = over, rawHS(t, hsHeader, `{"p":"`+strings.Repeat("a", n)+`"}`)
	}
	if err := verify(within, key(t, jwt.HS256)); err != nil {
		t.Fatalf("a token of %d bytes (limit %d): %v", len(within), jwt.MaxLen, err)
	}
	if _, err := jwt.Parse(over); !errors.Is(err, jwt.ErrMalformed) {
		t.Errorf("a token of %d bytes: %v, want ErrMalformed", len(over), err)
	}
}

// es256Parts returns the signing input and r, s of an ES256 token.
func es256Parts(t *testing.T, s string) (input string, r, sv *big.Int) {
	t.Helper()
	h, p, sig := parts(t, s)
	raw, err := b64.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		t.Fatalf("signature %q: %v", sig, err)
	}
	return h + "." + p, new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
}

func es256Token(input string, r, s *big.Int) string {
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig)
}

// TestES256OneSpelling: (r, n-s) verifies with ECDSA whenever (r, s)
// does; only the low-S one is accepted, and ours are always low-S.
func TestES256OneSpelling(t *testing.T) {
	k := key(t, jwt.ES256)
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	for i := range 64 { // about half of ECDSA's raw signatures have a high s
		input, r, s := es256Parts(t, sign(t, k, "at+jwt", claims{Sub: "alice", N: i}))
		if s.Cmp(half) > 0 {
			t.Fatalf("Sign made a high-S signature")
		}
		low := es256Token(input, r, s)
		high := es256Token(input, r, new(big.Int).Sub(n, s))
		if err := verify(low, k); err != nil {
			t.Fatalf("the low-S token: %v", err)
		}
		if err := verify(high, k); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("the high-S twin: %v, want ErrBadSignature", err)
		}
		if err := verify(high, k.AcceptHighS()); err != nil {
			t.Fatalf("the high-S twin with AcceptHighS: %v", err)
		}
	}
	input, r, s := es256Parts(t, sign(t, k, "at+jwt", testClaims))
	rawSig := func(b []byte) string { return input + "." + b64.EncodeToString(b) }
	for name, tok := range map[string]string{
		"r = 0":         es256Token(input, new(big.Int), s),
		"s = 0":         es256Token(input, r, new(big.Int)),
		"r + n":         rawSig(append(new(big.Int).Add(r, n).Bytes(), s.FillBytes(make([]byte, 32))...)),
		"r = n":         es256Token(input, n, s),
		"63 bytes":      rawSig(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))[1:]...)),
		"65 bytes":      rawSig(append(append(r.FillBytes(make([]byte, 32)), 0), s.FillBytes(make([]byte, 32))...)),
		"s = n/2 + 1":   es256Token(input, r, new(big.Int).Add(half, big.NewInt(1))),
		"s = n - 1":     es256Token(input, r, new(big.Int).Sub(n, big.NewInt(1))),
		"DER signature": input + "." + derSignature(t, es256Token(input, r, s)[len(input)+1:]),
	} {
		for _, kk := range []*jwt.Key{k, k.AcceptHighS()} {
			if err := verify(tok, kk); !errors.Is(err, jwt.ErrInvalid) {
				t.Errorf("%s: %v, want refused", name, err)
			}
		}
	}
}

// bigOdd is an odd number of bits bits: the shape of an RSA modulus,
// without the cost of making one.
func bigOdd(bits int) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return n.SetBit(n, 0, 1)
}

// TestFromPublicChecksKeys: a key of the wrong size or shape is refused
// when it is made, saying why, so that Verify never meets one.
func TestFromPublicChecksKeys(t *testing.T) {
	rsaPub := key(t, jwt.RS256).PublicKey().(*rsa.PublicKey)
	ecPub := key(t, jwt.ES256).PublicKey().(*ecdsa.PublicKey)
	edPub := key(t, jwt.EdDSA).PublicKey().(ed25519.PublicKey)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	withE := func(e int) *rsa.PublicKey { return &rsa.PublicKey{N: rsaPub.N, E: e} }
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).Set(ecPub.X), Y: new(big.Int).Add(ecPub.Y, big.NewInt(1))}
	tests := []struct {
		name, alg string
		pub       any
		why       string
	}{
		{"Ed25519 of 31 bytes", jwt.EdDSA, edPub[:31], "31 bytes"},
		{"Ed25519 of 33 bytes", jwt.EdDSA, append(append(ed25519.PublicKey{}, edPub...), 0), "33 bytes"},
		{"Ed25519 empty", jwt.EdDSA, ed25519.PublicKey{}, "0 bytes"},
		{"Ed25519 for ES256", jwt.ES256, edPub, "not for ES256"},
		{"RSA of 1024 bits", jwt.RS256, &rsa.PublicKey{N: bigOdd(1024), E: 65537}, "1024 bits"},
		{"RSA of 2047 bits", jwt.RS256, &rsa.PublicKey{N: bigOdd(2047), E: 65537}, "2047 bits"},
		{"RSA of 8193 bits", jwt.RS256, &rsa.PublicKey{N: bigOdd(8193), E: 65537}, "8193 bits"},
		{"RSA of 16384 bits", jwt.RS256, &rsa.PublicKey{N: bigOdd(16384), E: 65537}, "16384 bits"},
		{"RSA even modulus", jwt.RS256, &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2048), E: 65537}, "odd"},
		{"RSA no modulus", jwt.RS256, &rsa.PublicKey{E: 65537}, "odd"},
		{"RSA e = 1", jwt.RS256, withE(1), "exponent 1"},
		{"RSA e = 2", jwt.RS256, withE(2), "exponent 2"},
		{"RSA e = 65536", jwt.RS256, withE(65536), "exponent 65536"},
		{"RSA e = 2^31+1", jwt.RS256, withE(1<<31 + 1), "exponent"},
		{"RSA e negative", jwt.RS256, withE(-3), "exponent"},
		{"RSA for EdDSA", jwt.EdDSA, rsaPub, "not for EdDSA"},
		{"P-384 for ES256", jwt.ES256, &p384.PublicKey, "P-256"},
		{"point off the curve", jwt.ES256, offCurve, "not on P-256"},
		{"point at infinity", jwt.ES256, &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int), Y: new(big.Int)}, "not on P-256"},
		{"no point", jwt.ES256, &ecdsa.PublicKey{Curve: elliptic.P256()}, "no point"},
		{"EC for RS256", jwt.RS256, ecPub, "not for RS256"},
		{"private key", jwt.RS256, &rsa.PrivateKey{PublicKey: *rsaPub}, "not a public key"},
		{"nil", jwt.RS256, nil, "not a public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := jwt.FromPublic("bad", tt.alg, tt.pub)
			if !errors.Is(err, jwt.ErrBadKey) || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "bad") {
				t.Fatalf("FromPublic = %v, %v; want ErrBadKey naming the kid and %q", k, err, tt.why)
			}
		})
	}
	for _, tt := range []struct {
		name, alg string
		pub       any
	}{
		{"RSA 2048, e 65537", jwt.RS256, rsaPub},
		{"RSA e = 3", jwt.RS256, withE(3)},
		{"RSA of 8192 bits", jwt.RS256, &rsa.PublicKey{N: bigOdd(8192), E: 65537}},
		{"P-256", jwt.ES256, ecPub},
		{"Ed25519", jwt.EdDSA, edPub},
	} {
		if _, err := jwt.FromPublic("good", tt.alg, tt.pub); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestFromMaterialChecksKeys: a stored private key is held to the same
// rules as a published public key.
func TestFromMaterialChecksKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := jwt.FromMaterial("small", jwt.RS256, der); !errors.Is(err, jwt.ErrBadKey) || !strings.Contains(err.Error(), "1024 bits") {
		t.Errorf("FromMaterial of RSA 1024 = %v, %v; want ErrBadKey", k, err)
	}
}

// accessClaims are the claims of one of our access tokens.
type accessClaims struct {
	Iss   string   `json:"iss"`
	Sub   string   `json:"sub"`
	Aud   []string `json:"aud"`
	Exp   int64    `json:"exp"`
	Nbf   int64    `json:"nbf"`
	Iat   int64    `json:"iat"`
	Jti   string   `json:"jti"`
	CID   string   `json:"client_id"`
	Scope string   `json:"scope"`
}

var benchClaims = accessClaims{"https://gw.example", "k1", []string{"api"}, 1e9, 1e9, 1e9, "0123456789abcdef0123456789abcdef", "k1", "read write"}

// BenchmarkParse is the parse of a typical access token (no signature
// check): the strict walk of header and claims.
func BenchmarkParse(b *testing.B) {
	s := sign(b, key(b, jwt.HS256), "at+jwt", benchClaims)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseClaims adds reading the claims into a struct.
func BenchmarkParseClaims(b *testing.B) {
	s := sign(b, key(b, jwt.HS256), "at+jwt", benchClaims)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := jwt.Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		var c accessClaims
		if err := tok.Claims(&c); err != nil {
			b.Fatal(err)
		}
	}
}
