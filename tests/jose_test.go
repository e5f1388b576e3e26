package tests

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

var rawURL = base64.RawURLEncoding

// edSigned is a token with the header and claims given as JSON text (so
// that they can hold what no JSON encoder writes), signed with k.
func edSigned(k ed25519.PrivateKey, header, claims string) string {
	input := rawURL.EncodeToString([]byte(header)) + "." + rawURL.EncodeToString([]byte(claims))
	return input + "." + rawURL.EncodeToString(ed25519.Sign(k, []byte(input)))
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// edJWK is the JWK of an Ed25519 public key given as bytes of any length.
func edJWK(kid string, x []byte) map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": rawURL.EncodeToString(x)}
}

// TestJOSEBadKeyAndStrictParsing: an external issuer's JWKS holds an
// Ed25519 key of 31 bytes beside a good one. Tokens naming the good key
// work; the bad kid is refused with 401 (it used to panic in
// ed25519.Verify), the log says which kid and why, and the gateway keeps
// running. Tokens whose only alg is "ALG", or with a member named twice,
// are refused even when the good key signed them. Our own ES256 access
// tokens are low-S, and their high-S twin is refused.
func TestJOSEBadKeyAndStrictParsing(t *testing.T) {
	good, badPriv := newEd25519(t), newEd25519(t)
	goodPub := good.Public().(ed25519.PublicKey)
	badPub := badPriv.Public().(ed25519.PublicKey)
	set, err := json.Marshal(map[string]any{"keys": []any{edJWK("ed-bad", badPub[:31]), edJWK("ed-good", goodPub)}})
	if err != nil {
		t.Fatal(err)
	}
	jwks := startJWKS(t)
	jwks.serveRaw(set)

	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{
		appOptions: "signing ES256",
		siteOptions: `external_jwt {
			issuer https://idp.test
			audience my-api
			jwks_url ` + jwks.URL + `/jwks
			allow_http_loopback
			refresh_floor 1s
		}`,
	})
	call := func(t *testing.T, tok string) response {
		return do(t, http.MethodGet, g.base+"/reports", bearer(tok), "")
	}
	exp := time.Now().Add(10 * time.Minute).Unix()
	jti := 0
	claimsJSON := func(extra string) string {
		jti++
		return fmt.Sprintf(`{"iss":"https://idp.test","aud":"my-api","sub":"svc-billing","jti":"j%d","exp":%d%s}`, jti, exp, extra)
	}
	const goodHeader = `{"alg":"EdDSA","kid":"ed-good","typ":"at+jwt"}`
	accepted := func(t *testing.T, tok string) {
		t.Helper()
		if r := call(t, tok); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	refused := func(t *testing.T, what, tok string) {
		t.Helper()
		before := up.count()
		if r := call(t, tok); r.status != http.StatusUnauthorized || r.json(t)["error"] != "invalid_token" {
			t.Errorf("%s: status %d: %s", what, r.status, r.body)
		}
		if up.count() != before {
			t.Errorf("%s reached the upstream", what)
		}
	}

	t.Run("good key of a set with a bad one", func(t *testing.T) {
		accepted(t, edSigned(good, goodHeader, claimsJSON("")))
	})

	t.Run("bad key", func(t *testing.T) {
		badTok := edSigned(badPriv, `{"typ":"at+jwt","alg":"EdDSA","kid":"ed-bad"}`, claimsJSON(""))
		for range 3 {
			refused(t, "a token naming the 31-byte key", badTok)
		}
		if !g.running() {
			t.Fatalf("the gateway died:\n%s", g.logs.String())
		}
		accepted(t, edSigned(good, goodHeader, claimsJSON("")))
		deadline := time.Now().Add(5 * time.Second)
		for !logged(g, "refusing a key", `"kid":"ed-bad"`, "Ed25519 key of 31 bytes") {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say which key was refused and why:\n%s", g.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("strict JOSE", func(t *testing.T) {
		for what, tok := range map[string]string{
			"only ALG":           edSigned(good, `{"typ":"at+jwt","ALG":"EdDSA","kid":"ed-good"}`, claimsJSON("")),
			"ALG beside alg":     edSigned(good, `{"typ":"at+jwt","alg":"none","ALG":"EdDSA","kid":"ed-good"}`, claimsJSON("")),
			"duplicate alg":      edSigned(good, `{"typ":"at+jwt","alg":"EdDSA","alg":"EdDSA","kid":"ed-good"}`, claimsJSON("")),
			"duplicate kid":      edSigned(good, `{"typ":"at+jwt","alg":"EdDSA","kid":"ed-bad","kid":"ed-good"}`, claimsJSON("")),
			"duplicate exp":      edSigned(good, goodHeader, claimsJSON(`,"exp":1`)),
			"duplicate sub":      edSigned(good, goodHeader, claimsJSON(`,"sub":"admin"`)),
			"EXP instead of exp": edSigned(good, goodHeader, strings.Replace(claimsJSON(""), `"exp"`, `"EXP"`, 1)),
		} {
			refused(t, what, tok)
		}
		// An unknown member is ignored: "Kid" beside kid, "EXP" beside exp.
		// (Go's JSON decoder took "Kid" for kid: this token named the bad
		// key and brought the old gateway down.)
		accepted(t, edSigned(good, `{"typ":"at+jwt","alg":"EdDSA","kid":"ed-good","Kid":"ed-bad"}`, claimsJSON(`,"EXP":1`)))
	})

	t.Run("our ES256 tokens have one spelling", func(t *testing.T) {
		c := addClient(t, g, "es", "--scope", "read")
		n := elliptic.P256().Params().N
		half := new(big.Int).Rsh(n, 1)
		for range 4 { // a signer that does not normalise s fails 15 times in 16
			tok := requestToken(t, g.base, c, nil, "")
			i := strings.LastIndexByte(tok, '.')
			sig, err := rawURL.DecodeString(tok[i+1:])
			if err != nil || len(sig) != 64 {
				t.Fatalf("ES256 signature of %d bytes: %v", len(sig), err)
			}
			s := new(big.Int).SetBytes(sig[32:])
			if s.Cmp(half) > 0 {
				t.Fatal("the gateway signed with a high s")
			}
			s.Sub(n, s).FillBytes(sig[32:])
			refused(t, "the high-S twin of our token", tok[:i+1]+rawURL.EncodeToString(sig))
			mustPass(t, callEdge(t, g.base, tok), "the low-S token")
		}
	})
}

// logged reports whether one line of g's log holds every part.
func logged(g *gateway, parts ...string) bool {
	for line := range strings.SplitSeq(g.logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
