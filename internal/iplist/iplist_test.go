package iplist

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"v4 address", []string{"10.0.0.1"}, []string{"10.0.0.1/32"}, false},
		{"v6 address", []string{"::1"}, []string{"::1/128"}, false},
		{"masked", []string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}, false},
		{"v6 prefix", []string{"2001:db8::/32"}, []string{"2001:db8::/32"}, false},
		{"mapped", []string{"::ffff:192.0.2.1"}, []string{"192.0.2.1/32"}, false},
		{"mapped prefix", []string{"::ffff:192.0.2.0/120"}, []string{"192.0.2.0/24"}, false},
		{"garbage", []string{"not-an-ip"}, nil, true},
		{"bad bits", []string{"10.0.0.0/33"}, nil, true},
		{"zone", []string{"fe80::1%eth0"}, nil, true},
		{"hostname", []string{"example.com"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if got := l.Strings(); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	l, err := Parse([]string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.2.3.4":        true,
		"11.0.0.1":        false,
		"2001:db8::5":     true,
		"2001:db9::5":     false,
		"192.0.2.7":       true,
		"192.0.2.8":       false,
		"::ffff:10.9.9.9": true,
		"::ffff:11.9.9.9": false,
	} {
		if got := l.Allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allows(%s) = %v, want %v", addr, got, want)
		}
	}
	if !List(nil).Allows(netip.MustParseAddr("203.0.113.1")) {
		t.Error("empty list must allow any address")
	}
	if l.Allows(netip.Addr{}) {
		t.Error("an unknown client address must not pass a non-empty list")
	}
}
