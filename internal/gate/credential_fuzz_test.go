package gate

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/token"
)

// fuzzHeaders reads "Name: value" lines into a header as a server would
// hand it over (names canonicalised where they are valid tokens).
func fuzzHeaders(blob string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(blob, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		k = http.CanonicalHeaderKey(k)
		h[k] = append(h[k], strings.TrimLeft(v, " "))
	}
	return h
}

// sameHeader is the legacy header's rule: ASCII case and '_'/'-' folded.
func sameHeader(a, b string) bool {
	fold := func(s string) string {
		b := []byte(strings.ReplaceAll(s, "_", "-"))
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	return fold(a) == fold(b)
}

// queryKeyIs reports whether a raw query pair's name is name.
func queryKeyIs(pair, name string) bool {
	k, _, _ := strings.Cut(pair, "=")
	key, err := url.QueryUnescape(k)
	return err == nil && key == name
}

// FuzzCredentialsTake: whatever headers and query a request has, Take
// never panics, answers only 4xx errors, never accepts two credentials
// (it returns the one there is, from where it was), and never leaves a
// legacy credential in the request: no spelling of the legacy header,
// no pair of the legacy parameter, the other pairs untouched and in
// order, RequestURI in step.
func FuzzCredentialsTake(f *testing.F) {
	pat, err := token.NewPAT()
	if err != nil {
		f.Fatal(err)
	}
	leg, err := token.NewLegacy()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][4]string{
		{"Authorization: Bearer " + pat, "", "", ""},
		{"Authorization: Bearer " + pat, "token=" + leg, "X-Auth-Token", "token"},
		{"X-Auth-Token: " + leg, "a=1&b=2", "X-Auth-Token", "token"},
		{"X_AUTH_TOKEN: " + leg + "\nx-auth-token: " + leg, "", "X-Auth-Token", ""},
		{"", "a=1&tok%65n=" + leg + "&flag&b=%2F", "", "token"},
		{"", "token=x&token=y", "", "token"},
		{"", "token=%zz&a=%", "", "token"},
		{"Authorization: Basic YTpi\nX-Auth-Token: " + leg, "", "x_auth_token", ""},
		{"Authorization: Bearer a\nAuthorization: Bearer b", "", "", ""},
		{"Authorization: bearer\t" + pat + " \t", "", "", ""},
		{"Authorization: Bearer a,b", "token=", "", "token"},
		{"Authorization: Bearer", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, headers, rawQuery, legacyHeader, legacyQuery string) {
		if legacyHeader != "" && sameHeader(legacyHeader, "Authorization") {
			return // refused by Handler.Validate
		}
		h := fuzzHeaders(headers)
		r := &http.Request{Method: http.MethodGet, Header: h, URL: &url.URL{Path: "/x", RawQuery: rawQuery}}
		r.RequestURI = r.URL.RequestURI()
		auth := slices.Clone(h["Authorization"])

		// What the request holds, counted before Take.
		var fromHeader, fromQuery []string
		if legacyHeader != "" {
			for k, vs := range h {
				if sameHeader(k, legacyHeader) {
					fromHeader = append(fromHeader, vs...)
				}
			}
		}
		var kept []string
		for _, pair := range strings.Split(rawQuery, "&") {
			if legacyQuery != "" && rawQuery != "" && queryKeyIs(pair, legacyQuery) {
				fromQuery = append(fromQuery, pair)
				continue
			}
			kept = append(kept, pair)
		}
		bearer, bearerErr := BearerToken(http.Header{"Authorization": auth})
		if bearer != "" && (len(bearer) > token.MaxLen || strings.ContainsAny(bearer, " \t,") || !strings.Contains(auth[0], bearer)) {
			t.Fatalf("BearerToken(%q) = %q", auth, bearer)
		}
		n := len(fromHeader) + len(fromQuery)
		if bearer != "" {
			n++
		}

		c := &Credentials{LegacyHeader: legacyHeader, LegacyQuery: legacyQuery}
		cred, err := c.Take(r)

		// Nothing of the legacy sources is left, whatever the outcome.
		for k := range r.Header {
			if legacyHeader != "" && sameHeader(k, legacyHeader) {
				t.Fatalf("legacy header %q left in the request", k)
			}
		}
		if len(fromQuery) > 0 {
			if r.URL.RawQuery != strings.Join(kept, "&") {
				t.Fatalf("query %q became %q, want %q", rawQuery, r.URL.RawQuery, strings.Join(kept, "&"))
			}
			if r.RequestURI != r.URL.RequestURI() {
				t.Fatalf("RequestURI %q, URL says %q", r.RequestURI, r.URL.RequestURI())
			}
		} else if r.URL.RawQuery != rawQuery {
			t.Fatalf("query %q changed to %q with no legacy parameter in it", rawQuery, r.URL.RawQuery)
		}
		if !slices.Equal(r.Header["Authorization"], auth) {
			t.Fatalf("Authorization changed: %q -> %q", auth, r.Header["Authorization"])
		}

		if err != nil {
			if p := apierr.For(err); p.Status != http.StatusBadRequest && p.Status != http.StatusUnauthorized {
				t.Fatalf("Take error %v answers %d", err, p.Status)
			}
			return
		}
		if bearerErr != nil {
			t.Fatalf("Take accepted %q, whose Authorization BearerToken refuses (%v)", auth, bearerErr)
		}
		if n > 1 {
			t.Fatalf("Take accepted one of %d credentials: %+v", n, cred)
		}
		switch {
		case len(fromHeader) == 1:
			if !cred.Legacy || cred.Token != fromHeader[0] {
				t.Fatalf("credential %+v, the legacy header holds %q", cred, fromHeader[0])
			}
		case len(fromQuery) == 1:
			_, v, _ := strings.Cut(fromQuery[0], "=")
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
			if !cred.Legacy || cred.Token != v {
				t.Fatalf("credential %+v, the legacy parameter holds %q", cred, v)
			}
		case cred.Legacy || cred.Token != bearer:
			t.Fatalf("credential %+v, the bearer token is %q", cred, bearer)
		}
	})
}
