package jsonbody

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
)

type req struct {
	Label     string   `json:"label"`
	Scopes    []string `json:"scopes"`
	ExpiresIn *int64   `json:"expires_in"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		ctype      string
		body       string
		wantStatus int
		wantField  string
	}{
		{"ok", "application/json", `{"label":"a","scopes":["x"]}`, 0, ""},
		{"charset ok", "application/json; charset=utf-8", `{"label":"a"}`, 0, ""},
		{"wrong type", "text/plain", `{"label":"a"}`, 415, ""},
		{"no type", "", `{"label":"a"}`, 415, ""},
		{"syntax", "application/json", `{"label":`, 400, ""},
		{"garbage", "application/json", `not json`, 400, ""},
		{"empty", "application/json", ``, 400, ""},
		{"unknown field", "application/json", `{"labl":"a"}`, 400, "labl"},
		{"field type", "application/json", `{"label":5}`, 400, "label"},
		{"array type", "application/json", `{"scopes":"read"}`, 400, "scopes"},
		{"number type", "application/json", `{"expires_in":"soon"}`, 400, "expires_in"},
		{"not an object", "application/json", `[1]`, 400, ""},
		{"trailing data", "application/json", `{"label":"a"} {"label":"b"}`, 400, ""},
		{"too large", "application/json", `{"label":"` + strings.Repeat("a", 100) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			var v req
			err := Decode(httptest.NewRecorder(), r, &v, 64)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			p := apierr.For(err)
			if p.Status != tt.wantStatus || p.Field != tt.wantField {
				t.Fatalf("got %d field %q (%v), want %d field %q", p.Status, p.Field, err, tt.wantStatus, tt.wantField)
			}
			if strings.Contains(p.Description, "aaaa") {
				t.Fatal("error echoes the value")
			}
		})
	}
	var fe *apierr.FieldError
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"label":true}`))
	r.Header.Set("Content-Type", "application/json")
	if err := Decode(httptest.NewRecorder(), r, &req{}, 0); !errors.As(err, &fe) {
		t.Fatalf("want FieldError, got %v", err)
	}
}
