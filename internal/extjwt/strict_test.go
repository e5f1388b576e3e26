package extjwt_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/extjwt"
)

// rawRS256 signs a header and claims given as JSON text with the
// issuer's key, so that they can hold what no JSON encoder writes.
func rawRS256(t *testing.T, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey(), crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// TestExternalNamesAreExact: another issuer's tokens are read with JOSE's
// rules: "EXP" is not exp, "ALG" is not alg, "ISS" is not iss, and a
// member named twice is refused, even when the issuer's key signed it.
func TestExternalNamesAreExact(t *testing.T) {
	v, _ := jwksVerifier(t, extjwt.Config{})
	payload, err := json.Marshal(claims(nil))
	if err != nil {
		t.Fatal(err)
	}
	good := string(payload)
	header := `{"typ":"at+jwt","alg":"RS256","kid":"` + kid + `"}`
	wantAccepted(t, v, rawRS256(t, header, good))
	for name, tc := range map[string]struct{ tok, why string }{
		"EXP for exp":     {rawRS256(t, header, strings.Replace(good, `"exp":`, `"EXP":`, 1)), "no exp claim"},
		"ISS for iss":     {rawRS256(t, header, strings.Replace(good, `"iss":`, `"ISS":`, 1)), "wrong issuer"},
		"Sub for sub":     {rawRS256(t, header, strings.Replace(good, `"sub":`, `"Sub":`, 1)), "no sub claim"},
		"duplicate exp":   {rawRS256(t, header, strings.Replace(good, `"exp":`, `"exp":1,"exp":`, 1)), "duplicate member"},
		"duplicate sub":   {rawRS256(t, header, strings.Replace(good, `"sub":`, `"sub":"root","sub":`, 1)), "duplicate member"},
		"only ALG":        {rawRS256(t, `{"typ":"at+jwt","ALG":"RS256","kid":"`+kid+`"}`, good), "no alg"},
		"duplicate alg":   {rawRS256(t, `{"typ":"at+jwt","alg":"RS256","alg":"RS256","kid":"`+kid+`"}`, good), "duplicate member"},
		"claims an array": {rawRS256(t, header, `[`+good+`]`), "malformed"},
	} {
		t.Run(name, func(t *testing.T) { wantRefusal(t, v, tc.tok, apierr.ErrInvalidToken, tc.why) })
	}
}
