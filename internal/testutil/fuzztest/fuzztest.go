// Package fuzztest holds what the fuzz targets share: secrets that a
// fuzzed input may carry (written in the input as markers, so that the
// fuzzer can put them anywhere: a value, a field name, a header) and the
// checks every answer to such an input must pass: a client error, never a
// server error, and no secret echoed in the error or its log line.
package fuzztest

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/token"
)

// The markers a fuzzed input writes where a secret goes. Expand replaces
// them with this process's secrets.
const (
	MarkPAT    = "$PAT"    // a personal access token
	MarkClient = "$CS"     // an OAuth client secret
	MarkLegacy = "$LEGACY" // a legacy token (40 hex)
	MarkJWT    = "$JWT"    // a JWT-shaped access token
)

// Secrets are one secret of every kind the gateway hands out.
type Secrets struct {
	PAT, Client, Legacy, JWT string
	repl                     *strings.Replacer
}

// NewSecrets makes fresh secrets (random for every process: a finding is
// about where a secret goes, not which one it is).
func NewSecrets(tb testing.TB) *Secrets {
	tb.Helper()
	pat, err1 := token.NewPAT()
	cs, err2 := token.NewClientSecret()
	leg, err3 := token.NewLegacy()
	id, err4 := token.NewID()
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			tb.Fatal(err)
		}
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwt := b64([]byte(`{"alg":"HS256","kid":"k`+id+`","typ":"at+jwt"}`)) + "." +
		b64([]byte(`{"sub":"fuzz","jti":"`+id+`","exp":4102444800}`)) + "." + b64([]byte(id+id+id+id))
	s := &Secrets{PAT: pat, Client: cs, Legacy: leg, JWT: jwt}
	s.repl = strings.NewReplacer(MarkLegacy, leg, MarkPAT, pat, MarkClient, cs, MarkJWT, jwt)
	return s
}

// Expand replaces the markers in s with the secrets.
func (s *Secrets) Expand(in string) string { return s.repl.Replace(in) }

// window is how much of a secret counts as leaked: the first part of a
// token is most of its secret, so an error that cuts it short still
// leaks it.
const window = 16

// Leaked returns the first secret any of texts holds a 16-byte piece of,
// or "".
func (s *Secrets) Leaked(texts ...string) string {
	for _, t := range texts {
		if len(t) < window {
			continue
		}
		for _, secret := range []string{s.PAT, s.Client, s.Legacy, s.JWT} {
			for i := 0; i+window <= len(secret); i++ {
				if strings.Contains(t, secret[i:i+window]) {
					return secret
				}
			}
		}
	}
	return ""
}

// CheckError fails the test when err is not a client error (4xx, as
// apierr maps it) or when the answer or the log line of it (err.Error())
// holds a secret. A nil err passes.
func (s *Secrets) CheckError(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	p := apierr.For(err)
	if p.Status < 400 || p.Status >= 500 {
		tb.Fatalf("error answered %d (%s), want a 4xx: %v", p.Status, p.Code, err)
	}
	if leak := s.Leaked(p.Description, p.Field, err.Error()); leak != "" {
		tb.Fatalf("error echoes a secret: %q (field %q; log %q)", p.Description, p.Field, err.Error())
	}
}

// CheckAnswer fails the test when an HTTP answer is a server error, or an
// error answer (4xx) whose body or headers hold a secret.
func (s *Secrets) CheckAnswer(tb testing.TB, status int, header map[string][]string, body string) {
	tb.Helper()
	if status >= 500 {
		tb.Fatalf("answered %d: %s", status, body)
	}
	if status < 400 {
		return
	}
	texts := []string{body}
	for _, vs := range header {
		texts = append(texts, vs...)
	}
	if leak := s.Leaked(texts...); leak != "" {
		tb.Fatalf("error answer %d echoes a secret: %s %v", status, body, header)
	}
}
