package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkHandlerCachedPAT measures the handler's own work for a cached
// PAT: strip, check, set headers and placeholders, call next. Caddy's
// request preparation is done once outside the loop.
func BenchmarkHandlerCachedPAT(b *testing.B) {
	benchCachedPAT(b, Handler{}, func(*http.Request) {})
}

// benchCachedPAT runs a cached PAT through a handler configured as cfg,
// with Caddy's request preparation done once outside the loop; check looks
// at each request after the handler.
func benchCachedPAT(b *testing.B, cfg Handler, check func(*http.Request)) {
	a := testApp(b)
	h := testHandler(b, a, cfg)
	secret, _ := newToken(b, a)
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, &caddyhttp.Server{})
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, "192.0.2.10")
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	w := httptest.NewRecorder()
	auth := []string{"Bearer " + secret}
	b.ReportAllocs()
	for b.Loop() {
		r.Header["Authorization"] = auth
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
		check(r)
	}
}

// BenchmarkHandlerCachedPATAssertion is BenchmarkHandlerCachedPAT with an
// identity assertion (ES256 or as named) on: the cached assertion is
// reused, so a request costs a map read more, not a signature.
func BenchmarkHandlerCachedPATAssertion(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			cfg := Handler{IdentityAssertion: &IdentityAssertion{Audience: "https://upstream.example", Algorithm: alg}}
			benchCachedPAT(b, cfg, func(r *http.Request) {
				if r.Header.Get("X-Auth-Assertion") == "" {
					b.Fatal("no assertion")
				}
			})
		})
	}
}
