package session_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/internal/session"
)

func TestStripSetCookie(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"theme=dark; Path=/"}, []string{"theme=dark; Path=/"}},
		{[]string{"tokengate-session=planted; Path=/"}, nil},
		{[]string{"__Host-tokengate-session=planted; Path=/; Secure", "theme=dark"}, []string{"theme=dark"}},
		{[]string{"my-tokengate-session-note=1"}, []string{"my-tokengate-session-note=1"}},
	} {
		h := http.Header{}
		if c.in != nil {
			h["Set-Cookie"] = slices.Clone(c.in)
		}
		session.StripSetCookie(h)
		if got := h["Set-Cookie"]; !slices.Equal(got, c.want) {
			t.Errorf("%q: kept %q, want %q", c.in, got, c.want)
		}
	}
}

// A request without our cookie is left alone without allocating (it runs
// on every proxied request).
func TestStripCookieCostsNothingWithoutOurs(t *testing.T) {
	h := http.Header{"Cookie": {"theme=dark; lang=ru"}}
	if n := testing.AllocsPerRun(100, func() { session.StripCookie(h) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	if h.Get("Cookie") != "theme=dark; lang=ru" {
		t.Errorf("changed to %q", h.Get("Cookie"))
	}
}
