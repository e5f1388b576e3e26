package scope

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"sorted and deduplicated", []string{"write", "read", "write"}, []string{"read", "write"}, false},
		{"uri-like", []string{"api:read", "https://x/y"}, []string{"api:read", "https://x/y"}, false},
		{"space", []string{"a b"}, nil, true},
		{"quote", []string{`a"b`}, nil, true},
		{"backslash", []string{`a\b`}, nil, true},
		{"non-ascii", []string{"чтение"}, nil, true},
		{"empty scope", []string{""}, nil, true},
		{"too long", []string{strings.Repeat("a", MaxLen+1)}, nil, true},
		{"too many", slices.Repeat([]string{"a"}, MaxScopes+1), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseAndCovers(t *testing.T) {
	got, err := Parse("  write read  ")
	if err != nil || !slices.Equal(got, []string{"read", "write"}) {
		t.Fatalf("Parse = %q, %v", got, err)
	}
	if !Covers(got, []string{"read"}) || !Covers(got, nil) {
		t.Error("Covers should accept a subset")
	}
	if Covers(got, []string{"admin"}) || Covers(nil, []string{"read"}) {
		t.Error("Covers accepted a missing scope")
	}
}

func TestCoversString(t *testing.T) {
	for _, tt := range []struct {
		granted  string
		required []string
		want     bool
	}{
		{"read write", []string{"read"}, true},
		{"read write", []string{"write", "read"}, true},
		{"read write", nil, true},
		{"", nil, true},
		{"", []string{"read"}, false},
		{"reader write", []string{"read"}, false},
		{"read", []string{"rea"}, false},
		{"a b c", []string{"c"}, true},
	} {
		if got := CoversString(tt.granted, tt.required); got != tt.want {
			t.Errorf("CoversString(%q, %q) = %v", tt.granted, tt.required, got)
		}
	}
}
