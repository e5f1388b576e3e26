package pat_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/label"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
	"github.com/tokengate/tokengate/internal/token"
)

// FuzzAPI sends the token API any body, content type and method, on a
// token id that exists (written $ID) or any other, as alice, to the real
// service on an embedded store: the answer is never a 5xx, an error
// never echoes a secret (one in the body, or alice's own token), and a
// create that succeeds returns a valid PAT and the normalised label.
func FuzzAPI(f *testing.F) {
	e := newEnv(f, 50)
	h := newHandler(f, e)
	own := e.create(f, "alice", pat.CreateRequest{Label: "own"})
	for _, s := range []struct {
		method uint8
		id     string
		ctype  string
		body   string
	}{
		{1, "", "application/json", `{"label":"ci","scopes":["read"],"expires_in":3600,"allowed_ips":["10.0.0.0/8"]}`},
		{1, "", "application/json", `{"label":"$PAT","allowed_ips":["$LEGACY"]}`},
		{1, "", "application/json", `{"label":"x","scopes":["$CS\""]}`},
		{1, "", "application/json", `{"label":"x","expires_in":-1}`},
		{1, "", "text/plain", `{"label":"x"}`},
		{2, "$ID", "application/json", `{"label":"renamed","enabled":false,"allowed_ips":[],"expires_in":60}`},
		{2, "$ID", "application/json", `{"$JWT":true}`},
		{2, "nope", "application/json", `{"enabled":true}`},
		{3, "$ID", "", ``},
		{0, "", "", ``},
		{4, "", "", ``},
	} {
		f.Add(s.method, s.id, s.ctype, s.body)
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodPut}
	f.Fuzz(func(t *testing.T, method uint8, id, ctype, body string) {
		secrets := fuzztest.NewSecrets(t)
		body = secrets.Expand(body)
		path := prefix
		if id != "" {
			path += "/" + strings.ReplaceAll(id, "$ID", own.ID)
		}
		r := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		r.Method = methods[int(method)%len(methods)]
		r.URL.Path = path
		r.SetBasicAuth("alice", goodPass)
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		secrets.CheckAnswer(t, w.Code, w.Header(), w.Body.String())
		if strings.Contains(w.Body.String(), own.Token) {
			t.Fatalf("answer holds alice's token: %s", w.Body)
		}
		if w.Code != http.StatusCreated {
			return
		}
		var c pat.Created
		if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
			t.Fatalf("201 body %s: %v", w.Body, err)
		}
		var req pat.CreateRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatalf("201 for a body encoding/json refuses: %v", err)
		}
		display, _, err := label.Normalize(req.Label)
		if token.Classify(c.Token) != token.PAT || err != nil || c.Label != display || !c.Enabled {
			t.Fatalf("created %+v from %q", c, body)
		}
	})
}
