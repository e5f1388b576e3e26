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
	a := testApp(b)
	h := testHandler(b, a, Handler{})
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
	}
}
