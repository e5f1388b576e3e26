package keyring_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
)

// TestParseRefusesAStoredKeyOfTheWrongSize: keys read back from the
// store are held to the same rules as a published key; a keyring holding
// one fails closed, saying which key and why.
func TestParseRefusesAStoredKeyOfTheWrongSize(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	d := &keyring.Document{Alg: jwt.RS256, Keys: []keyring.StoredKey{{KID: "k-small", Alg: jwt.RS256, State: keyring.StateActive, Material: der}}}
	if ks, err := keyring.Parse(d); !errors.Is(err, jwt.ErrBadKey) {
		t.Fatalf("Parse = %v, %v; want ErrBadKey", ks, err)
	}
}
