package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
)

// FuzzEndpoints sends the token, introspection and revocation endpoints
// any content type, body, query and HTTP Basic credentials. In the
// input, $ID and $SECRET are a real OAuth key's, $PW is alice's password,
// $ATOK an access token issued to the key and $OWN alice's PAT. On the
// real services and an embedded store: the answer is never a 5xx, an
// error never echoes a secret (one the input carried, the key's or
// alice's), a token is issued only to a request that carried the key's
// secret, and only a caller who authenticated learns a token is active.
func FuzzEndpoints(f *testing.F) {
	e := newEnv(f)
	// No lock-outs, no slow-downs: failures are forgotten after a
	// millisecond, so a wrong secret does not hide the paths behind it
	// from the inputs that follow, nor make them wait.
	e.ep.Limiter = bruteforce.New(e.St, bruteforce.Limits{PerAccount: 1 << 40, PerAddress: 1 << 40, Window: time.Millisecond})
	c := e.NewClient(f, oauthclient.NewClient{})
	atok := e.Issue(f, c.ClientID).Token
	own, err := e.pats.Create(context.Background(), "alice", pat.CreateRequest{Label: "own"})
	if err != nil {
		f.Fatal(err)
	}
	h := e.handler()
	const form, multipart = "application/x-www-form-urlencoded", "multipart/form-data; boundary=XX"
	for _, s := range []struct {
		path                 uint8
		ctype, body, query   string
		basicUser, basicPass string
	}{
		{0, form, "grant_type=client_credentials&client_id=$ID&client_secret=$SECRET&scope=read", "", "", ""},
		{0, form, "grant_type=client_credentials&scope=write", "", "$ID", "$SECRET"},
		{0, "application/json", `{"clientId":"$ID","clientSecret":"$SECRET"}`, "", "", ""},
		{0, "application/json", `{"clientId":"$ID","$PAT":"x"}`, "", "", ""},
		{0, "application/json", `{"clientId":"$SECRET","clientSecret":"$ID"}`, "", "", ""},
		{0, multipart, "--XX\r\nContent-Disposition: form-data; name=\"clientId\"\r\n\r\n$ID\r\n--XX\r\nContent-Disposition: form-data; name=\"clientSecret\"\r\n\r\n$SECRET\r\n--XX--\r\n", "", "", ""},
		{0, multipart, "--XX\r\nContent-Disposition: form-data; name=\"$LEGACY\"\r\n\r\nx\r\n--XX--\r\n", "", "", ""},
		{0, form, "$CS=1&$CS=2", "", "", ""},
		{0, form, "grant_type=client_credentials&client_id=$ID&client_secret=$SECRET&scope=$JWT%22", "", "", ""},
		{0, form, "grant_type=password", "a=1", "", ""},
		{1, form, "token=$ATOK", "", "$ID", "$SECRET"},
		{1, form, "token=$OWN", "", "alice", "$PW"},
		{1, form, "token=$OWN", "", "alice", "wrong password"},
		{1, form, "token=$PAT&client_id=$ID&client_secret=$SECRET", "", "", ""},
		{2, form, "token=$ATOK&client_id=$ID&client_secret=$SECRET", "", "", ""},
		{2, form, "token=$LEGACY", "", "alice", "$PW"},
		{2, "text/plain", "token=x", "", "", ""},
	} {
		f.Add(s.path, s.ctype, s.body, s.query, s.basicUser, s.basicPass)
	}
	paths := []string{"/token", "/introspect", "/revoke"}
	f.Fuzz(func(t *testing.T, path uint8, ctype, body, query, basicUser, basicPass string) {
		secrets := fuzztest.NewSecrets(t)
		real := strings.NewReplacer("$ID", c.ClientID, "$SECRET", c.ClientSecret, "$PW", alicePassword, "$ATOK", atok, "$OWN", own.Token)
		expand := func(s string) string { return secrets.Expand(real.Replace(s)) }
		body, basicUser, basicPass = expand(body), expand(basicUser), expand(basicPass)
		p := paths[int(path)%len(paths)]
		r := httptest.NewRequest(http.MethodPost, "http://api.example"+p, strings.NewReader(body))
		r.URL.RawQuery = query
		r.RemoteAddr = callerIP + ":40000"
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if basicUser != "" || basicPass != "" {
			r.SetBasicAuth(basicUser, basicPass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		answer := w.Body.String()
		secrets.CheckAnswer(t, w.Code, w.Header(), answer)
		for _, s := range []string{c.ClientSecret, alicePassword, own.Token} {
			if strings.Contains(answer, s) {
				t.Fatalf("%s answered %d with a secret in it: %s", p, w.Code, answer)
			}
		}
		if w.Code != http.StatusOK {
			return
		}
		sent := body + " " + basicUser + " " + basicPass
		authenticated := strings.Contains(sent, c.ClientSecret) || strings.Contains(sent, alicePassword) ||
			strings.Contains(sent, strings.ReplaceAll(c.ClientSecret, "_", "%5F")) // form-encoded
		switch p {
		case "/token":
			if !strings.Contains(sent, c.ClientSecret) {
				t.Fatalf("a token was issued to a request without the key's secret: %q", sent)
			}
		case "/introspect":
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("introspection answer %q: %v", answer, err)
			}
			if m["active"] == true && !authenticated {
				t.Fatalf("an unauthenticated caller learnt a token is active: %q -> %s", sent, answer)
			}
		}
	})
}
