package accesstoken_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// TestVerifyReadsExactNames: our access tokens are read with JOSE's
// rules, not encoding/json's: "EXP" is not exp, "ALG" is not alg, and a
// member named twice is refused. Each token is signed with the real key,
// so only the spelling is wrong.
func TestVerifyReadsExactNames(t *testing.T) {
	e := newEnv(t)
	id := e.NewClient(t, oauthclient.NewClient{}).ClientID
	k := e.Signer(t)
	if k.Alg != jwt.HS256 {
		t.Fatalf("the test signs by hand with HS256; the signer is %s", k.Alg)
	}
	payload, err := json.Marshal(e.Issue(t, id, "read").Claims)
	if err != nil {
		t.Fatal(err)
	}
	good := string(payload)
	header := `{"alg":"HS256","kid":"` + k.ID + `","typ":"at+jwt"}`
	signed := func(header, payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		input := enc([]byte(header)) + "." + enc([]byte(payload))
		m := hmac.New(sha256.New, k.Secret())
		m.Write([]byte(input))
		return input + "." + enc(m.Sum(nil))
	}
	if en, err := e.Verify(t, signed(header, good)); err != nil || en.Refusal != nil {
		t.Fatalf("the well-spelt token: %+v, %v", en, err)
	}
	for name, tok := range map[string]string{
		"EXP for exp":         signed(header, strings.Replace(good, `"exp":`, `"EXP":`, 1)),
		"Client_ID":           signed(header, strings.Replace(good, `"client_id":`, `"Client_ID":`, 1)),
		"duplicate exp":       signed(header, strings.Replace(good, `"exp":`, `"exp":1,"exp":`, 1)),
		"duplicate client_id": signed(header, strings.Replace(good, `"client_id":`, `"client_id":"x","client_id":`, 1)),
		"only ALG":            signed(strings.Replace(header, `"alg"`, `"ALG"`, 1), good),
		"duplicate alg":       signed(strings.Replace(header, `"alg":"HS256"`, `"alg":"HS256","alg":"HS256"`, 1), good),
		"duplicate typ":       signed(strings.Replace(header, `"typ":"at+jwt"`, `"typ":"JWT","typ":"at+jwt"`, 1), good),
		"Typ is not typ":      signed(strings.Replace(header, `"typ"`, `"Typ"`, 1), good),
	} {
		t.Run(name, func(t *testing.T) {
			en, err := e.Verify(t, tok)
			if err != nil || en == nil || !errors.Is(en.Refusal, apierr.ErrInvalidToken) {
				t.Errorf("Verify = %+v, %v; want an entry refused as invalid", en, err)
			}
		})
	}
}
