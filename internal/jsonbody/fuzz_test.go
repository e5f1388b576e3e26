package jsonbody_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
)

// fuzzBody has a field of every shape our request bodies use.
type fuzzBody struct {
	Label      string    `json:"label"`
	Name       *string   `json:"name"`
	Scopes     []string  `json:"scopes"`
	AllowedIPs *[]string `json:"allowed_ips"`
	ExpiresIn  *int64    `json:"expires_in"`
	Enabled    *bool     `json:"enabled"`
	Confirm    bool      `json:"confirm"`
}

// FuzzDecode: any body and content type either decodes into what
// encoding/json makes of it (a single JSON object, no unknown field) or
// is a 4xx whose description, field and log line echo no secret the body
// carried (in a value, a field name or anywhere else).
func FuzzDecode(f *testing.F) {
	for _, s := range [][2]string{
		{"application/json", `{"label":"a","scopes":["x"],"expires_in":60,"enabled":true}`},
		{"application/json; charset=utf-8", `{"name":"$PAT","allowed_ips":["10.0.0.1"]}`},
		{"application/json", `{"$PAT":1}`},
		{"application/json", `{"label":"$LEGACY"`},
		{"application/json", `{"label":["$CS"]}`},
		{"application/json", `{"expires_in":"$JWT"}`},
		{"application/json", `{"label":"a"} {"label":"b"}`},
		{"application/json", `[1]`},
		{"application/json", ``},
		{"text/plain", `{"label":"a"}`},
		{"application/json", `{"label":"` + strings.Repeat("a", 200) + `"}`},
		{"application/json", `{"expires_in":1e400}`},
		{"application/json", "{\"label\":\"\xff\"}"},
	} {
		f.Add(s[0], s[1], uint8(0))
	}
	f.Fuzz(func(t *testing.T, ctype, body string, small uint8) {
		secrets := fuzztest.NewSecrets(t)
		body = secrets.Expand(body)
		r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		limit := int64(0) // the default
		if small > 0 {
			limit = int64(small) // bodies over a small limit are 413
		}
		var got fuzzBody
		err := jsonbody.Decode(httptest.NewRecorder(), r, &got, limit)
		secrets.CheckError(t, err)
		if err != nil {
			return
		}
		if limit > 0 && int64(len(body)) > limit {
			t.Fatalf("a %d-byte body passed a %d-byte limit", len(body), limit)
		}
		var loose fuzzBody
		if err := json.Unmarshal([]byte(body), &loose); err != nil {
			t.Fatalf("Decode took a body encoding/json refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(got, loose) {
			t.Fatalf("Decode = %+v, encoding/json = %+v", got, loose)
		}
	})
}
