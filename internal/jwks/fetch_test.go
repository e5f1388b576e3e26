package jwks_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/jwks"
)

func TestNewRefusesInsecureURLs(t *testing.T) {
	tests := []struct {
		url      string
		loopback bool // AllowHTTPLoopback
		ok       bool
	}{
		{"https://idp.example.com/.well-known/jwks.json", false, true},
		{"https://127.0.0.1:8443/jwks", false, true},
		{"http://idp.example.com/jwks", false, false},
		{"http://idp.example.com/jwks", true, false}, // the option is for loopback only
		{"http://10.0.0.5/jwks", true, false},
		{"http://localhost.example.com/jwks", true, false},
		{"http://127.0.0.1.nip.io/jwks", true, false},
		{"http://[::ffff:10.0.0.1]/jwks", true, false},
		{"http://127.0.0.1:8080/jwks", false, false}, // loopback, but not allowed
		{"http://127.0.0.1:8080/jwks", true, true},
		{"http://127.9.9.9/jwks", true, true},
		{"http://[::1]:8080/jwks", true, true},
		{"http://[::ffff:127.0.0.1]/jwks", true, true},
		{"http://LocalHost:8080/jwks", true, true},
		{"ftp://idp.example.com/jwks", true, false},
		{"idp.example.com/jwks", true, false},
		{"//idp.example.com/jwks", true, false},
		{"https:///jwks", false, false},
		{"https://user:pw@idp.example.com/jwks", false, false},
		{"{env.JWKS_URL}", false, false},
		{"https://user:pw@idp.example.com:bad/jwks", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s loopback=%v", tt.url, tt.loopback), func(t *testing.T) {
			f, err := jwks.New(tt.url, jwks.Options{AllowHTTPLoopback: tt.loopback})
			if tt.ok != (err == nil) || tt.ok != (f != nil) {
				t.Fatalf("New = %v, %v; want ok=%v", f, err, tt.ok)
			}
			if err != nil && (!errors.Is(err, jwks.ErrInsecureURL) || strings.Contains(err.Error(), "pw")) {
				t.Fatalf("error %v is not ErrInsecureURL, or repeats the password", err)
			}
			if err != nil && strings.HasPrefix(tt.url, "http://127.0.0.1:") && !strings.Contains(err.Error(), "allow_http_loopback") {
				t.Fatalf("the error does not name the option: %v", err)
			}
		})
	}
}

// tlsIssuer is an https issuer whose handler the test writes; hits counts
// its requests. httptest's TLS servers share one certificate, so the
// client of one trusts them all: a refused redirect is the policy's doing.
type tlsIssuer struct {
	*httptest.Server
	hits atomic.Int64
}

func newTLSIssuer(t *testing.T, h http.HandlerFunc) *tlsIssuer {
	t.Helper()
	is := &tlsIssuer{}
	is.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(is.Close)
	return is
}

// serving answers with the JWKS body.
func serving(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

func tlsFetcher(t *testing.T, is *tlsIssuer, path string, clk *clock) *jwks.Fetcher {
	t.Helper()
	f, err := jwks.New(is.URL+path, jwks.Options{Client: is.Client(), Floor: floor, MaxAge: maxAge, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRedirects(t *testing.T) {
	set := setOf(t, pub(t, rsaKeys()[0], "k", "RS256"))
	elsewhere := newTLSIssuer(t, serving(set))

	t.Run("same origin is followed", func(t *testing.T) {
		is := newTLSIssuer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/jwks" {
				http.Redirect(w, r, "/keys", http.StatusFound)
				return
			}
			serving(set)(w, r)
		})
		f := tlsFetcher(t, is, "/jwks", &clock{t: time.Now()})
		wantKey(t, f, "k")
		if n := is.hits.Load(); n != 2 {
			t.Fatalf("%d requests, want 2", n)
		}
	})

	t.Run("another origin is refused", func(t *testing.T) {
		for _, target := range []string{
			elsewhere.URL + "/jwks",                                     // another port
			strings.Replace(elsewhere.URL, "https", "http", 1),          // plain http
			strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1), // another host
		} {
			is := newTLSIssuer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target, http.StatusFound)
			})
			f := tlsFetcher(t, is, "/jwks", &clock{t: time.Now()})
			wantErr(t, f, "k", jwks.ErrUnavailable)
		}
		if n := elsewhere.hits.Load(); n != 0 {
			t.Fatalf("the other origin was asked %d times", n)
		}
	})

	t.Run("a same-origin loop ends", func(t *testing.T) {
		is := newTLSIssuer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		})
		f := tlsFetcher(t, is, "/jwks", &clock{t: time.Now()})
		wantErr(t, f, "k", jwks.ErrUnavailable)
		if n := is.hits.Load(); n != 4 {
			t.Fatalf("%d requests, want 4 (the first and 3 redirects)", n)
		}
	})
}

// An over-size key set is an error, whether its length is declared or
// only found while reading; the keys already known stay.
func TestOversizeKeySetKeepsKnownKeys(t *testing.T) {
	known := setOf(t, pub(t, rsaKeys()[0], "known", "RS256"))
	big := pad(setOf(t, pub(t, rsaKeys()[1], "new", "RS256")), 1<<20+1)
	for _, declared := range []bool{true, false} {
		t.Run(fmt.Sprint("Content-Length declared: ", declared), func(t *testing.T) {
			var broken atomic.Bool
			is := newTLSIssuer(t, func(w http.ResponseWriter, r *http.Request) {
				if !broken.Load() {
					serving(known)(w, r)
					return
				}
				if declared {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				w.(http.Flusher).Flush() // no Content-Length unless declared
				_, _ = w.Write(big)
			})
			clk := &clock{t: time.Now()}
			f := tlsFetcher(t, is, "/jwks", clk)
			wantKey(t, f, "known")
			broken.Store(true)
			clk.Advance(maxAge)
			wantErr(t, f, "new", jwks.ErrUnknownKey)
			wantKey(t, f, "known")
			if n := is.hits.Load(); n != 2 {
				t.Fatalf("%d requests, want 2", n)
			}
		})
	}
}
