package oauth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/oauth"
)

func TestJWKSServe(t *testing.T) {
	e := newEnv(t)
	j := &oauth.JWKS{Keys: e.Keys, MaxAge: 90 * time.Second}

	w := httptest.NewRecorder()
	if err := j.Serve(w, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)); err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &set) != nil || set.Keys == nil {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	for k, v := range map[string]string{
		"Content-Type": "application/jwk-set+json", "Cache-Control": "public, max-age=90", "X-Content-Type-Options": "nosniff",
	} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}

	w = httptest.NewRecorder()
	err := j.Serve(w, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil))
	if !errors.Is(err, apierr.ErrMethodNotAllowed) || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %v, Allow %q", err, w.Header().Get("Allow"))
	}
}
