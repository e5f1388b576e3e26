package identity

import (
	"io"
	"net/http"
	"strings"
)

// Strip removes every client-sent copy of names (in any spelling, see
// package doc) from r, by every route a client has to the upstream:
//
//   - the request headers;
//   - the trailers received so far (a handler before us may have read the
//     body) and those that arrive with the end of the body: HTTP/1.1
//     merges every trailer a chunked body carries into r.Trailer, declared
//     or not, when a read reaches EOF, which is after this handler ran and
//     before reverse_proxy copies them for the upstream. The body is
//     wrapped so that every read that ends the body removes them before
//     the reader sees the end (HTTP/2 and HTTP/3 fill trailers the same
//     way, at the end of the body);
//   - tokens of the Connection header naming one of names, which would
//     make a proxy drop the identity we set as a hop-by-hop header.
//
// Trailers that must not be trailers at all (RFC 9110 6.5.1: Authorization,
// Host, Content-Length, ...; HTTP/2 and HTTP/3 refuse them, HTTP/1.1 does
// not) are removed too, so an upstream that merges trailers into headers
// never sees a credential or framing header the gateway did not check.
//
// A request without a body costs no allocation.
func Strip(r *http.Request, names []string) {
	Remove(r.Header, names)
	StripConnection(r.Header, names)
	if r.Trailer != nil {
		stripTrailer(r.Trailer, names)
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, trailer: &r.Trailer, names: names}
	}
}

// StripConnection removes from the Connection header of h every token that
// names one of names (compared as Remove does), and the header itself if
// nothing is left. What the gateway sets is then never hop-by-hop.
func StripConnection(h http.Header, names []string) {
	vals, ok := h["Connection"]
	if !ok || !connectionNames(vals, names) {
		return // the common case (none, or "keep-alive"): no allocation
	}
	var kept []string
	for _, v := range vals {
		var toks []string
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			if !matchesAny(tok, names) {
				toks = append(toks, tok)
			}
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ", "))
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
	} else {
		h["Connection"] = kept
	}
}

// connectionNames reports whether a token of the Connection values names
// one of names.
func connectionNames(vals, names []string) bool {
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if matchesAny(strings.TrimSpace(tok), names) {
				return true
			}
		}
	}
	return false
}

// trailerGuard removes our names from the request's trailers when a read
// ends the body, before the caller sees the end.
type trailerGuard struct {
	io.ReadCloser
	// trailer points at the Trailer field of the request the handler
	// passes on (copies of it share the map).
	trailer *http.Header
	names   []string
}

// Read implements io.Reader.
func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err != nil && *g.trailer != nil {
		stripTrailer(*g.trailer, g.names)
	}
	return n, err
}

// stripTrailer removes names, and fields that are not allowed in
// trailers, from t.
func stripTrailer(t http.Header, names []string) {
	for k := range t {
		if matchesAny(k, names) || notATrailer(k) || matchesAny(k, reserved) {
			delete(t, k)
		}
	}
}

// matchesAny reports whether name matches one of names after folding.
func matchesAny(name string, names []string) bool {
	for _, n := range names {
		if sameName(name, n) {
			return true
		}
	}
	return false
}

// notATrailer reports whether a field must not be sent as a trailer (the
// list Go's HTTP/2 server and x/net's httpguts.ValidTrailerHeader use),
// compared as Remove does.
func notATrailer(name string) bool { return matchesAny(name, forbiddenTrailers) }

var forbiddenTrailers = []string{
	"Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Length",
	"Content-Range", "Content-Type", "Expect", "Host", "Keep-Alive", "Max-Forwards", "Pragma",
	"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Range", "Realm", "Te",
	"Trailer", "Transfer-Encoding", "Www-Authenticate",
}
