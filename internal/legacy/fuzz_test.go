package legacy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/login"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
	"github.com/tokengate/tokengate/internal/token"
	"github.com/tokengate/tokengate/internal/users"
)

// FuzzRestToken sends /rest/token any method and headers ("Name: value"
// lines; $PW is alice's password), on the real service and an embedded
// store: never a 5xx, no error echoes a secret or the password, and a
// token is issued only to a request that carried alice's password, as a
// legacy token.
func FuzzRestToken(f *testing.F) {
	e := newEnv(f, 0, 0)
	e.allowedUser(f, "alice")
	// Failures are forgotten after a millisecond: no lock-out or
	// slow-down hides the paths behind a wrong password.
	auth, err := users.NewAuthenticator(e.st, bruteforce.New(e.st, bruteforce.Limits{Window: time.Millisecond}), 4)
	if err != nil {
		f.Fatal(err)
	}
	sources, err := login.NewSources(login.Local, map[string]login.Authenticator{login.Local: auth})
	if err != nil {
		f.Fatal(err)
	}
	api := &legacy.API{Service: e.svc, Logins: sources, Path: "/rest/token"}
	for _, s := range [][2]string{
		{"GET", "Auth-User: alice\nAuth-Pwd: $PW"},
		{"POST", "Auth-User: alice\nAuth-Pwd: $PW\nAuth-User-Type: local\nAccept: application/json"},
		{"GET", "Authorization: Basic YWxpY2U6JFBX"}, // alice:$PW, not expanded
		{"GET", "Auth-User: alice\nAuth-Pwd: $PW\nAuth-Pwd: $PW"},
		{"GET", "Auth-User: alice"},
		{"GET", "Auth-Pwd: $PW"},
		{"GET", "Auth-User: alice\nAuth-Pwd: $PW\nAuth-User-Type: $PW"},
		{"GET", "Auth-User: alice\nAuth-Pwd: x\nAuth-User-Type: $PAT"},
		{"GET", "Auth-User: $LEGACY\nAuth-Pwd: \x01"},
		{"PUT", "Auth-User: alice\nAuth-Pwd: $PW"},
		{"GET", "Authorization: Basic !!\nAuth-User: alice"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, method, headers string) {
		secrets := fuzztest.NewSecrets(t)
		headers = secrets.Expand(strings.ReplaceAll(headers, "$PW", password))
		r := httptest.NewRequest(http.MethodGet, "/rest/token", nil)
		r.Method = method
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k != "" {
				r.Header.Add(k, strings.TrimLeft(v, " "))
			}
		}
		w := httptest.NewRecorder()
		if err := api.Serve(w, r, "192.0.2.7"); err != nil {
			secrets.CheckError(t, err)
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error holds the password: %v", err)
			}
			apierr.Write(w, apierr.For(err), apierr.Challenge{Scheme: "Basic", Realm: "tokengate"})
		}
		secrets.CheckAnswer(t, w.Code, w.Header(), w.Body.String())
		if w.Code >= 400 && strings.Contains(w.Body.String(), password) {
			t.Fatalf("error answer holds the password: %s", w.Body)
		}
		if w.Code != http.StatusOK {
			return
		}
		_, basicPass, _ := r.BasicAuth()
		if basicPass != password && !strings.Contains(headers, password) {
			t.Fatalf("a token for a request without the password: %q", headers)
		}
		tok := w.Body.String()
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			tok = tok[strings.Index(tok, `"token":"`)+9:]
			tok = tok[:strings.IndexByte(tok, '"')]
		}
		if token.Classify(tok) != token.Legacy {
			t.Fatalf("issued %q, not a legacy token", tok)
		}
	})
}
