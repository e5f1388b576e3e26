package gate

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/store"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		want    string
		wantErr error
	}{
		{"none", nil, "", nil},
		{"bearer", []string{"Bearer abc"}, "abc", nil},
		{"lowercase scheme", []string{"bearer abc"}, "abc", nil},
		{"upper scheme", []string{"BEARER abc"}, "abc", nil},
		{"extra spaces", []string{"Bearer   abc  "}, "abc", nil},
		{"basic is not bearer", []string{"Basic YTpi"}, "", nil},
		{"glued scheme", []string{"Bearerabc"}, "", nil},
		{"empty token", []string{"Bearer "}, "", apierr.ErrMalformedToken},
		{"scheme only", []string{"Bearer"}, "", apierr.ErrMalformedToken},
		{"two tokens", []string{"Bearer a b"}, "", apierr.ErrMalformedToken},
		{"comma list", []string{"Bearer a, Bearer b"}, "", apierr.ErrMalformedToken},
		{"oversized", []string{"Bearer " + strings.Repeat("a", 5000)}, "", apierr.ErrMalformedToken},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", apierr.ErrMultipleCredentials},
		{"bearer and basic", []string{"Bearer a", "Basic YTpi"}, "", apierr.ErrMultipleCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.values != nil {
				h["Authorization"] = tt.values
			}
			got, err := BearerToken(h)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("BearerToken = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestTakeQueryParam(t *testing.T) {
	tests := []struct {
		raw, name string
		values    []string
		rest      string
	}{
		{"a=1&token=abc&flag&b=%2F", "token", []string{"abc"}, "a=1&flag&b=%2F"},
		{"token=x&token=y", "token", []string{"x", "y"}, ""},
		{"tok%65n=x&z=1", "token", []string{"x"}, "z=1"},
		{"a=1", "token", nil, "a=1"},
	}
	for _, tt := range tests {
		values, rest := takeQueryParam(tt.raw, tt.name)
		if strings.Join(values, ",") != strings.Join(tt.values, ",") || rest != tt.rest {
			t.Errorf("takeQueryParam(%q) = %q, %q; want %q, %q", tt.raw, values, rest, tt.values, tt.rest)
		}
	}
}

func TestCredentialsTake(t *testing.T) {
	c := &Credentials{LegacyHeader: "X-Auth-Token", LegacyQuery: "token"}
	tests := []struct {
		name    string
		target  string
		header  http.Header
		want    Credential
		wantErr error
		wantURI string
	}{
		{"bearer", "/x?a=1", http.Header{"Authorization": {"Bearer abc"}}, Credential{Token: "abc"}, nil, "/x?a=1"},
		{"legacy header, other spelling", "/x", http.Header{"X_auth_token": {"abc"}}, Credential{Token: "abc", Legacy: true}, nil, "/x"},
		{"legacy query", "/x?a=1&token=abc", nil, Credential{Token: "abc", Legacy: true}, nil, "/x?a=1"},
		{"none", "/x", nil, Credential{}, nil, "/x"},
		{"bearer and query", "/x?token=abc", http.Header{"Authorization": {"Bearer abc"}}, Credential{}, apierr.ErrMultipleCredentials, "/x"},
		{"query twice", "/x?token=a&token=b", nil, Credential{}, apierr.ErrMultipleCredentials, "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			got, err := c.Take(r)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Take = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			if r.RequestURI != tt.wantURI || r.URL.RequestURI() != tt.wantURI {
				t.Errorf("request URI %q, URL %q; want %q", r.RequestURI, r.URL.RequestURI(), tt.wantURI)
			}
			if _, ok := r.Header["X_auth_token"]; ok {
				t.Error("the legacy header was left on the request")
			}
		})
	}
}

func TestCredentialsAdmit(t *testing.T) {
	if err := admit(false, store.KindPAT); err != nil {
		t.Errorf("a bearer PAT: %v", err)
	}
	if err := admit(true, store.KindLegacy); err != nil {
		t.Errorf("a legacy token from the legacy header: %v", err)
	}
	if err := admit(true, store.KindPAT); !errors.Is(err, apierr.ErrUnsupportedToken) {
		t.Errorf("a PAT from the legacy header: %v", err)
	}
}
