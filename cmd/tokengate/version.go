package main

import "runtime/debug"

// versionPrefix is what goes before Caddy's version in `tokengate
// version`: "tokengate <version>, Caddy" (Caddy appends its own version).
// set is the -ldflags version ("" when not set).
func versionPrefix(set string) string {
	return "tokengate " + ownVersion(set, debug.ReadBuildInfo) + ", Caddy"
}

// ownVersion is set if not empty, else the main module's version from the
// build information, else its VCS revision, else "(devel)".
func ownVersion(set string, read func() (*debug.BuildInfo, bool)) string {
	if set != "" {
		return set
	}
	bi, ok := read()
	if !ok {
		return "(devel)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+modified"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	return "(devel) " + rev + dirty
}
