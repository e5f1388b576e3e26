package oauth_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthclient"
)

// multipartOf encodes name, value pairs as multipart/form-data, as
// Postman's "form-data" body does; it returns the content type and body.
func multipartOf(t *testing.T, kv ...string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := mw.WriteField(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.String()
}

// TestTokenSeedBodies: the seed's clientId/clientSecret without grant_type
// get a token in every body form; RFC 6749 names keep needing grant_type;
// mixed or repeated names are 400 naming the field.
func TestTokenSeedBodies(t *testing.T) {
	seed := func(c oauthclient.CreatedClient) []string {
		return []string{"clientId", c.ClientID, "clientSecret", c.ClientSecret}
	}
	mp := func(t *testing.T, kv []string) call {
		ct, body := multipartOf(t, kv...)
		return call{ctype: ct, body: body}
	}
	cases := []struct {
		name   string
		call   func(*testing.T, oauthclient.CreatedClient) call
		status int
		field  string
	}{
		{"urlencoded seed names", func(_ *testing.T, c oauthclient.CreatedClient) call { return call{body: form(seed(c)...)} }, 200, ""},
		{"multipart seed names", func(t *testing.T, c oauthclient.CreatedClient) call { return mp(t, seed(c)) }, 200, ""},
		{"multipart seed names with scope", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, append(seed(c), "scope", "read"))
		}, 200, ""},
		{"JSON seed names", func(_ *testing.T, c oauthclient.CreatedClient) call {
			return call{ctype: "application/json", body: `{"clientId":"` + c.ClientID + `","clientSecret":"` + c.ClientSecret + `"}`}
		}, 200, ""},
		{"multipart RFC names with grant_type", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, []string{"grant_type", "client_credentials", "client_id", c.ClientID, "client_secret", c.ClientSecret})
		}, 200, ""},
		{"multipart RFC names without grant_type", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, []string{"client_id", c.ClientID, "client_secret", c.ClientSecret})
		}, 400, "grant_type"},
		{"mixed spellings", func(_ *testing.T, c oauthclient.CreatedClient) call {
			return call{body: form("clientId", c.ClientID, "client_secret", c.ClientSecret)}
		}, 400, "client_secret"},
		{"both spellings of the id", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, append(seed(c), "client_id", c.ClientID))
		}, 400, "client_id"},
		{"repeated multipart field", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, append(seed(c), "clientId", c.ClientID))
		}, 400, "clientId"},
		{"seed names and Basic", func(_ *testing.T, c oauthclient.CreatedClient) call {
			return call{body: form(seed(c)...), basic: []string{c.ClientID, c.ClientSecret}}
		}, 400, ""},
		{"multipart file part", func(t *testing.T, c oauthclient.CreatedClient) call {
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			fw, _ := mw.CreateFormFile("clientSecret", "secret.txt")
			fw.Write([]byte(c.ClientSecret))
			mw.WriteField("clientId", c.ClientID)
			mw.Close()
			return call{ctype: mw.FormDataContentType(), body: b.String()}
		}, 400, "clientSecret"},
		{"multipart without boundary", func(_ *testing.T, c oauthclient.CreatedClient) call {
			return call{ctype: "multipart/form-data", body: "x"}
		}, 400, ""},
		{"oversize multipart", func(t *testing.T, c oauthclient.CreatedClient) call {
			return mp(t, append(seed(c), "scope", strings.Repeat("a", 70<<10)))
		}, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.NewClient(t, oauthclient.NewClient{})
			w := e.do(t, tc.call(t, c))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			m := decode(t, w)
			if tc.status == http.StatusOK {
				if m["access_token"] == nil {
					t.Fatalf("no access token: %s", w.Body)
				}
				return
			}
			if m["error"] != "invalid_request" {
				t.Errorf("error %v, want invalid_request: %s", m["error"], w.Body)
			}
			if tc.field != "" && m["field"] != tc.field {
				t.Errorf("field %v, want %q: %s", m["field"], tc.field, w.Body)
			}
		})
	}
}
