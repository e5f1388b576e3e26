package session

import (
	"context"
	"net/http"
	"strings"
)

// Cookie names. Over TLS the cookie is "__Host-tokengate-session": browsers
// accept it only with Secure, Path=/ and no Domain, so neither a sibling
// subdomain nor a plain-HTTP page can plant or overwrite it. Over plain
// HTTP (development, or TLS ended by a proxy in front) it is
// "tokengate-session".
const (
	// CookieNameTLS is the cookie's name over TLS.
	CookieNameTLS = "__Host-tokengate-session"
	// CookieNamePlain is the cookie's name over plain HTTP.
	CookieNamePlain = "tokengate-session"
)

// cookieName is the name of the session cookie for r.
func cookieName(r *http.Request) string {
	if IsHTTPS(r) {
		return CookieNameTLS
	}
	return CookieNamePlain
}

// SetCookie sets the session cookie: "__Host-tokengate-session" when r.TLS != nil (Secure;
// Path=/; no Domain, as the __Host- prefix requires) and "tokengate-session" over plain HTTP
// (no Secure). Always HttpOnly, SameSite=Strict, Path=/; a session cookie (no Max-Age), so it
// ends with the browser at the latest.
func SetCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName(r),
		Value:    value,
		Path:     "/",
		Secure:   IsHTTPS(r),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// ClearCookie tells the browser to forget both session cookies (Max-Age=0, which
// net/http writes for MaxAge -1), with the attributes they were set with.
func ClearCookie(w http.ResponseWriter, r *http.Request) {
	for _, c := range []struct {
		name   string
		secure bool
	}{{CookieNameTLS, true}, {CookieNamePlain, false}} {
		http.SetCookie(w, &http.Cookie{
			Name:     c.name,
			Value:    "",
			Path:     "/",
			MaxAge:   -1,
			Secure:   c.secure,
			HttpOnly: true,
			SameSite: http.SameSiteStrictMode,
		})
	}
}

// CookieValue returns the session cookie's value from the request; "" when there is none or
// it is malformed (not 43 characters of base64url), so that Load rejects it without asking the
// store. Over TLS only "__Host-tokengate-session" counts: a "tokengate-session" cookie there
// could have been planted by a sibling subdomain or a plain-HTTP response. Over plain HTTP
// either name counts. Of several cookies of one name the first well-formed one counts.
func CookieValue(r *http.Request) string {
	names := []string{CookieNameTLS}
	if !IsHTTPS(r) {
		names = append(names, CookieNamePlain)
	}
	for _, name := range names {
		for _, c := range r.CookiesNamed(name) {
			if wellFormed(c.Value) {
				return c.Value
			}
		}
	}
	return ""
}

// StripCookie removes both session cookies from a header set's Cookie lines, keeping the other
// cookies (the gateway calls it before proxying so the upstream never sees the session). A
// Cookie line left empty is removed, and so is the header when no line is left; lines without
// a session cookie are left exactly as they were.
func StripCookie(h http.Header) {
	lines := h["Cookie"]
	if !mentionsOurs(lines) {
		return // the usual case: no work, no allocation
	}
	kept := make([]string, 0, len(lines))
	changed := false
	for _, line := range lines {
		pairs := strings.Split(line, ";")
		out := make([]string, 0, len(pairs))
		for _, p := range pairs {
			p = strings.TrimSpace(p)
			name, _, _ := strings.Cut(p, "=")
			if n := strings.TrimSpace(name); n == CookieNameTLS || n == CookieNamePlain {
				changed = true
				continue
			}
			if p != "" {
				out = append(out, p)
			}
		}
		if len(out) == len(pairs) {
			kept = append(kept, line) // nothing of ours, nothing empty: as it was
		} else if len(out) > 0 {
			kept = append(kept, strings.Join(out, "; "))
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// mentionsOurs reports whether any line names one of the session cookies
// (a cheap test before parsing; CookieNamePlain is a suffix of the other).
func mentionsOurs(lines []string) bool {
	for _, l := range lines {
		if strings.Contains(l, CookieNamePlain) {
			return true
		}
	}
	return false
}

// StripSetCookie removes from a response's headers every Set-Cookie that
// would set one of the session cookies, so that an upstream answering on
// the pages' site cannot plant a session in the browser (cookie tossing).
func StripSetCookie(h http.Header) {
	lines := h["Set-Cookie"]
	if !mentionsOurs(lines) {
		return
	}
	kept := lines[:0:0]
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		if n := strings.TrimSpace(name); n != CookieNameTLS && n != CookieNamePlain {
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = kept
}

type httpsKey struct{}

// MarkHTTPS returns r marked as having reached the site over HTTPS although
// TLS ended before the gateway: the caller has checked that a trusted proxy
// says so (X-Forwarded-Proto from Caddy's trusted_proxies). The session
// cookie then gets its __Host- name and Secure.
func MarkHTTPS(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), httpsKey{}, true))
}

// IsHTTPS reports whether the browser reached the site over HTTPS: TLS
// ended here, or a trusted proxy said so (MarkHTTPS).
func IsHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	marked, _ := r.Context().Value(httpsKey{}).(bool)
	return marked
}
