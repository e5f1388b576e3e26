package main

import (
	"runtime/debug"
	"testing"
)

func TestOwnVersion(t *testing.T) {
	info := func(bi *debug.BuildInfo) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return bi, bi != nil }
	}
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name, set string
		read      func() (*debug.BuildInfo, bool)
		want      string
	}{
		{"ldflags win", "v1.2.3", info(&debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}), "v1.2.3"},
		{"go install @version", "", info(&debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}), "v0.4.0"},
		{"local build", "", info(vcs), "(devel) 0123456789ab+modified"},
		{"no build info", "", info(nil), "(devel)"},
		{"no VCS", "", info(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}), "(devel)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownVersion(tc.set, tc.read); got != tc.want {
				t.Fatalf("ownVersion = %q, want %q", got, tc.want)
			}
		})
	}
	if got := versionPrefix("v1.0.0"); got != "tokengate v1.0.0, Caddy" {
		t.Fatalf("versionPrefix = %q", got)
	}
}
