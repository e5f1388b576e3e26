package gate

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
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
