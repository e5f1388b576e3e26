package identity

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readChunked parses a raw HTTP/1.1 request the way net/http's server
// does: trailers are merged into r.Trailer only when the body hits EOF.
func readChunked(t *testing.T, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Trailers arrive after the handler ran: what Strip leaves in place must
// be clean when the reader (reverse_proxy) sees the end of the body.
func TestStripRemovesTrailersArrivingAtEOF(t *testing.T) {
	names := DefaultHeaders.WithDefaults().Names()
	r := readChunked(t, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Auth-User\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Checksum: ok\r\nX-Auth-User: admin\r\nX_Auth_User: admin\r\nx-auth-scopes: all\r\nAuthorization: Bearer smuggled\r\n"+
		"X-Forwarded-For: 10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nCookie: s=1\r\n\r\n")
	Strip(r, names)
	if _, ok := r.Trailer["X-Auth-User"]; ok {
		t.Fatal("a declared identity trailer survived at handler time")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, %v", body, err)
	}
	if len(r.Trailer) != 1 || r.Trailer.Get("X-Checksum") != "ok" {
		t.Fatalf("trailers after EOF: %v", r.Trailer)
	}
}

func TestStripConnectionTokens(t *testing.T) {
	names := Headers{User: "X-Remote-User"}.WithDefaults().Guarded()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"X-Auth-User"}, nil},
		{[]string{"keep-alive, x_auth_user ,X-Remote-User", "X-AUTH-SCOPES, close"}, []string{"keep-alive", "close"}},
		{[]string{"Upgrade"}, []string{"Upgrade"}},
	} {
		h := http.Header{"Connection": tc.in}
		StripConnection(h, names)
		got := h["Connection"]
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || (tc.want == nil && got != nil) {
			t.Errorf("Connection %q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Renaming the headers must not let a client send the default names to an
// upstream that still reads them.
func TestGuardedKeepsDefaultNames(t *testing.T) {
	g := Headers{User: "X-Remote-User", Scopes: "x_auth_scopes"}.WithDefaults().Guarded()
	want := "X-Remote-User X-Auth-Token-Type X-Auth-Token-Id X_auth_scopes X-Auth-Issuer X-Auth-User X-Auth-Assertion"
	if strings.Join(g, " ") != want {
		t.Fatalf("Guarded = %v, want %s", g, want)
	}
	if n := len(DefaultHeaders.WithDefaults().Guarded()); n != len(DefaultHeaders.Names())+1 { // + AssertionHeader
		t.Fatalf("defaults guarded twice: %d names", n)
	}
}

func TestCheckNames(t *testing.T) {
	for _, bad := range []Headers{{User: "Connection"}, {TokenID: "keep_alive"}, {Scopes: "X Auth"}, {User: "Authorization"}, {TokenType: "Upgrade"}} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := (Headers{User: "X-Remote-User"}).Check(); err != nil {
		t.Error(err)
	}
}

func TestStripWithoutBodyDoesNotAllocate(t *testing.T) {
	names := DefaultHeaders.WithDefaults().Names()
	// A Connection header that names none of ours (keep-alive) is read,
	// not rewritten.
	r := &http.Request{Header: http.Header{"Accept": {"*/*"}, "Connection": {"keep-alive"}}, Body: http.NoBody}
	if n := testing.AllocsPerRun(100, func() { Strip(r, names) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
