package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/tokengate/internal/testutil/metricstest"
)

// The health route says what the store's breaker says, answers GET and
// HEAD only, and never calls the next handler.
func TestHealthRoute(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{HealthPath: "/healthz"})
	serve := func(method string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(method, "/healthz", nil)
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, &caddyhttp.Server{})
		w := httptest.NewRecorder()
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			t.Fatal("the health route reached the next handler")
			return nil
		})
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := serve(http.MethodGet); w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"store":"ok"}` ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("store up: %d %v %q", w.Code, w.Header(), w.Body)
	}
	if w := serve(http.MethodHead); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body)
	}
	if w := serve(http.MethodPost); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", w.Code, w.Header())
	}
	br := a.state.store.Breaker()
	br.Probed(errors.New("no answer")) // a failed probe opens the breaker
	if w := serve(http.MethodGet); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" ||
		strings.TrimSpace(w.Body.String()) != `{"store":"unavailable"}` {
		t.Fatalf("breaker open: %d %v %q", w.Code, w.Header(), w.Body)
	}
	br.Probed(nil)
	if w := serve(http.MethodGet); w.Code != http.StatusOK {
		t.Fatalf("breaker closed again: %d", w.Code)
	}
}

func TestValidateHealthPath(t *testing.T) {
	if err := (Handler{HealthPath: "healthz"}).Validate(); err == nil {
		t.Error("a health_path without a leading / is accepted")
	}
	if err := (Handler{HealthPath: "/account/health", UI: &UIConfig{Prefix: "/account"}}).Validate(); err == nil {
		t.Error("a health_path under the pages' prefix is accepted")
	}
}

// Two of the gateway's own routes on one path: the later one would
// silently take the other's place (or be taken), so Validate refuses it.
func TestValidateOwnRoutesDistinct(t *testing.T) {
	for name, h := range map[string]Handler{
		"health on the token endpoint": {HealthPath: DefaultOAuthTokenPath},
		"leak report on health":        {HealthPath: "/healthz", LeakReportPath: "/healthz"},
		"leak report on the rotation":  {LeakReportPath: DefaultLegacyPath + "/rotate"},
	} {
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "already one of the gateway's own routes") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (Handler{HealthPath: "/healthz", LeakReportPath: "/leaks"}).Validate(); err != nil {
		t.Errorf("distinct paths: %v", err)
	}
}

// The app registers its collectors in each config's registry: again in
// the same one (no error), and in the next config's, where the counts go
// on (they live in the shared state).
func TestRegisterMetricsAcrossReloads(t *testing.T) {
	a := testApp(t)
	first, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := a.registerMetrics(first); err != nil {
		t.Fatal(err)
	}
	if err := a.registerMetrics(first); err != nil {
		t.Fatalf("registering twice in one registry: %v", err)
	}
	h := testHandler(t, a, Handler{})
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, &caddyhttp.Server{})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, nil); err != nil {
		t.Fatal(err)
	}
	next, cancelNext := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancelNext()
	if err := a.registerMetrics(next); err != nil {
		t.Fatalf("registering in the next config's registry: %v", err)
	}
	f := metricstest.Gather(t, next.GetMetricsRegistry())
	if got := f.Value("tokengate_decisions_total", metricstest.L("reason", "no_token", "kind", "none")); got != 1 {
		t.Fatalf("decisions in the next registry = %v, want 1", got)
	}
	if _, ok := f["tokengate_audit_write_failures_total"]; !ok {
		t.Fatal("audit write failures are not registered")
	}
}
