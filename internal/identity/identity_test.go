package identity

import (
	"net/http"
	"testing"
)

func TestStripRemovesEverySpelling(t *testing.T) {
	hn := DefaultHeaders.WithDefaults()
	h := http.Header{}
	for _, k := range []string{"X-Auth-User", "X_Auth_User", "x_auth_user", "X-AUTH-TOKEN-TYPE", "X_auth-token_id", "x-auth-scopes", "X_Auth_Issuer"} {
		h[k] = []string{"admin"} // raw keys, as a client could send them
	}
	h.Set("X-Auth-Username", "keep")
	h.Set("Accept", "keep")
	Remove(h, hn.Names())
	if len(h) != 2 || h.Get("Accept") != "keep" || h.Get("X-Auth-Username") != "keep" {
		t.Fatalf("after Strip: %v", h)
	}
}

func TestCustomNamesAndSet(t *testing.T) {
	hn := Headers{User: "x-remote-user"}.WithDefaults()
	if hn.User != "X-Remote-User" || hn.TokenType != "X-Auth-Token-Type" {
		t.Fatalf("WithDefaults = %+v", hn)
	}
	h := http.Header{"X_remote_user": {"evil"}}
	Remove(h, hn.Names())
	hn.Set(h, Identity{User: "alice", TokenType: "pat", TokenID: "abc", Scopes: "read write", Issuer: "https://idp"})
	if h.Get("X-Remote-User") != "alice" || len(h["X-Remote-User"]) != 1 || h.Get("X-Auth-Scopes") != "read write" ||
		h.Get("X-Auth-Issuer") != "https://idp" {
		t.Fatalf("after Set: %v", h)
	}
	if _, ok := h["X_remote_user"]; ok {
		t.Fatal("smuggled header survived")
	}
}

func BenchmarkStrip(b *testing.B) {
	names := DefaultHeaders.WithDefaults().Names()
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"wrk"}, "Authorization": {"Bearer x"}, "Host": {"a"}}
	b.ReportAllocs()
	for b.Loop() {
		Remove(h, names)
	}
}

// A later handler that rewrites a header value in place (Caddy's
// request_header replace does) must not change what the next request with
// the same cached identity gets.
func TestSetValuesAreNotShared(t *testing.T) {
	hn := DefaultHeaders.WithDefaults()
	user := "alice"
	id := Identity{User: user, TokenType: "pat", TokenID: "1", Stable: [5]*string{&user, new(string), new(string), new(string), new(string)}}
	h1 := http.Header{}
	hn.Set(h1, id)
	h1["X-Auth-User"][0] = "admin"
	h2 := http.Header{}
	hn.Set(h2, id)
	if h2.Get("X-Auth-User") != "alice" || user != "alice" {
		t.Fatalf("an in-place rewrite leaked: %q, source %q", h2.Get("X-Auth-User"), user)
	}
}
