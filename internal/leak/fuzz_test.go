package leak_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
)

// FuzzReport: any body is answered 200 or a 4xx, never a 5xx; no answer
// (error or acknowledgement) echoes a reported token or, for an error,
// any secret the body carried.
func FuzzReport(f *testing.F) {
	for _, s := range []string{
		`[{"token":"$PAT","type":"tokengate_pat","url":"https://github.com/o/r/blob/1/a","source":"content"}]`,
		`[{"token":"$CS","type":"$CS","url":"https://x/$CS","source":"$CS"}]`,
		`[{"token":"$LEGACY"},{"token":"$JWT","type":"$LEGACY"}]`,
		`[{"token":"$PAT","$PAT":1}]`,
		`[{"token":["$PAT"]}]`,
		`{"token":"$PAT"}`,
		`[{"token":"$PAT"`,
		`[]`, `null`, `[null]`, `[1]`, `"$PAT"`, ``,
		`[{"token":"$PAT","url":"` + strings.Repeat("u", 3000) + `"}]`,
		"[{\"token\":\"$PAT\",\"type\":\"\xff\"}]",
	} {
		f.Add(s)
	}
	fx := newFixture(f, -1)
	f.Fuzz(func(t *testing.T, body string) {
		secrets := fuzztest.NewSecrets(t)
		body = secrets.Expand(body)
		r := httptest.NewRequest(http.MethodPost, "/leaks", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		err := fx.rp.Serve(w, r, reqFrom())
		secrets.CheckError(t, err)
		if err != nil {
			return
		}
		if w.Code != http.StatusOK {
			t.Fatalf("answered %d without an error", w.Code)
		}
		for _, tok := range []string{secrets.PAT, secrets.Client, secrets.Legacy, secrets.JWT} {
			if strings.Contains(body, `"`+tok+`"`) && strings.Contains(w.Body.String(), tok) {
				t.Fatalf("the answer echoes a reported token: %s", w.Body)
			}
		}
	})
}
