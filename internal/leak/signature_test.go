package leak_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/leak"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/token"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body string) string {
	t.Helper()
	d := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// With keys configured, only a report signed by one of them is taken:
// an unsigned, forged or altered one gets 401 and revokes nothing.
func TestReportSignature(t *testing.T) {
	gh, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	gh2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys, err := leak.ParsePublicKeys([]byte(pemOf(t, &gh.PublicKey) + pemOf(t, &gh2.PublicKey)))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys: %d keys, %v", len(keys), err)
	}
	f := newFixture(t, -1)
	f.rp.Keys = keys
	pat, _ := f.newPAT(t, store.KindPAT)
	body := report(pat)
	send := func(body, sig string) int {
		r := httptest.NewRequest(http.MethodPost, "/leaks", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(leak.KeyIDHeader, "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a")
		if sig != "" {
			r.Header.Set(leak.SignatureHeader, sig)
		}
		w := httptest.NewRecorder()
		if err := f.rp.Serve(w, r, reqFrom()); err != nil {
			return apierr.For(err).Status
		}
		return w.Code
	}
	for name, c := range map[string]struct{ body, sig string }{
		"unsigned":      {body, ""},
		"another key":   {body, sign(t, other, body)},
		"altered body":  {body, sign(t, gh, strings.Replace(body, "content", "commit", 1))},
		"not base64":    {body, "%%%"},
		"not ASN.1 sig": {body, base64.StdEncoding.EncodeToString([]byte("nonsense"))},
	} {
		if got := send(c.body, c.sig); got != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, got)
		}
	}
	if _, err := f.St.LookupToken(t.Context(), token.Hash(pat)); err != nil {
		t.Fatalf("a refused report revoked the PAT: %v", err)
	}
	if got := send(body, sign(t, gh2, body)); got != http.StatusOK {
		t.Fatalf("signed by the second key: %d", got)
	}
	if _, err := f.St.LookupToken(t.Context(), token.Hash(pat)); err == nil {
		t.Fatal("a signed report did not revoke the PAT")
	}
}

func TestParsePublicKeys(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, doc := range map[string]string{
		"empty":    "",
		"text":     "hello",
		"RSA":      pemOf(t, &rk.PublicKey),
		"trailing": pemOf(t, &ek.PublicKey) + "junk",
		"private":  "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
	} {
		if _, err := leak.ParsePublicKeys([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
