package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The leak report route is the handler's own: answered here, never
// proxied, needing no credential; a reported PAT fails at once.
func TestLeakReportRoute(t *testing.T) {
	a := testApp(t)
	h := testHandler(t, a, Handler{LeakReportPath: "/leaks"})
	secret, _ := newToken(t, a)
	serve := func(path, body string, hd http.Header) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header = hd
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, &caddyhttp.Server{})
		w := httptest.NewRecorder()
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusTeapot)
			return nil
		})
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := serve("/leaks", `[{"token":"`+secret+`","source":"content"}]`, http.Header{"Content-Type": {"application/json"}})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"label":"received"`) || strings.Contains(w.Body.String(), secret) {
		t.Fatalf("report: %d %s", w.Code, w.Body)
	}
	if w := serve("/orders", "", http.Header{"Authorization": {"Bearer " + secret}}); w.Code != http.StatusUnauthorized {
		t.Fatalf("the reported PAT: %d %s", w.Code, w.Body)
	}
	if w := serve("/leaks", `{}`, http.Header{"Content-Type": {"application/json"}}); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), "JSON array") {
		t.Fatalf("an object: %d %s", w.Code, w.Body)
	}
	// Off by default: the path is an ordinary guarded route.
	off := testHandler(t, a, Handler{})
	r := caddyhttp.PrepareRequest(httptest.NewRequest(http.MethodPost, "/leaks", strings.NewReader("[]")), caddy.NewReplacer(), nil, &caddyhttp.Server{})
	rec := httptest.NewRecorder()
	if err := off.ServeHTTP(rec, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil || rec.Code != http.StatusUnauthorized {
		t.Fatalf("leak route without leak_report_path: %d %v", rec.Code, err)
	}
}

func TestValidateLeakReport(t *testing.T) {
	for _, h := range []Handler{
		{LeakReportPath: "leaks"},
		{LeakReportPath: "/leaks/"},
		{LeakReportPath: "/leaks", LeakReportRate: -2},
		{LeakReportPath: "/account/leaks", UI: &UIConfig{Prefix: "/account"}},
		{LeakReportKeys: "/etc/github-keys.pem"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v is accepted", h)
		}
	}
	if err := (Handler{LeakReportPath: "/leaks", LeakReportRate: -1}).Validate(); err != nil {
		t.Errorf("a valid leak report config: %v", err)
	}
}

// leak_report_keys is read when the config loads: a file that is not a
// PEM document of ECDSA public keys stops the load.
func TestLeakReportKeysFile(t *testing.T) {
	a := testApp(t)
	bad := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		h := Handler{LeakReportPath: "/leaks", LeakReportKeys: file}
		h.logger = zap.NewNop()
		if err := h.setup(a); err == nil || !strings.Contains(err.Error(), "leak_report_keys") {
			t.Errorf("%s: %v", file, err)
		}
	}
}
