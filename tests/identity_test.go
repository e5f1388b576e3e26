package tests

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// reportingUpstream is a real backend that reads the whole body (so that
// trailers arrive) and answers with the headers and trailers it received.
func reportingUpstream(t *testing.T) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(received{Header: r.Header, Trailer: r.Trailer, Body: string(body), ReadErr: fmt.Sprint(err)})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &upstream{addr: l.Addr().String()}
}

// received is what reportingUpstream saw.
type received struct {
	Header, Trailer http.Header
	Body, ReadErr   string
}

// identityValues lists every header or trailer of h that folds to one of
// our identity names (the renamed ones and the defaults).
func identityValues(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if strings.HasPrefix(n, "x-auth-") || strings.HasPrefix(n, "x-remote-") {
			out[k] = v
		}
	}
	return out
}

// TestIdentityIsOursByEveryRoute: a client cannot reach the upstream with
// identity names through trailers (HTTP/1.1 chunked, HTTP/2), nor make the
// proxy drop the identity we set by naming it in Connection, and the
// default names stay ours when the headers are renamed.
func TestIdentityIsOursByEveryRoute(t *testing.T) {
	up := reportingUpstream(t)
	h3 := h3Site(t, up, "header_user X-Remote-User")
	g := startGateway(t, embedded, up, gatewayConfig{
		siteOptions:   "header_user X-Remote-User",
		globalOptions: "servers 127.0.0.1:{{port}} {\n\t\tprotocols h1 h2c\n\t}\n\tauto_https disable_redirects",
		extraSites:    h3.caddyfile,
	})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	tok, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci","scopes":["read"]}`)
	want := map[string][]string{"X-Remote-User": {"alice"}, "X-Auth-Token-Type": {"pat"}, "X-Auth-Token-Id": {id}, "X-Auth-Scopes": {"read"}, "X-Auth-Issuer": {"tokengate"}}
	check := func(t *testing.T, got received) {
		t.Helper()
		if got.Body != "hello" {
			t.Fatalf("the upstream read %q (%s): the request did not go through as sent", got.Body, got.ReadErr)
		}
		if got.Trailer.Get("X-Checksum") != "ok" {
			t.Fatalf("the harmless trailer did not arrive (%v): the test would prove nothing", got.Trailer)
		}
		if v := identityValues(got.Trailer); len(v) > 0 {
			t.Errorf("identity trailers reached the upstream: %v", v)
		}
		if v := identityValues(got.Header); fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("identity headers at the upstream:\n got %v\nwant %v", v, want)
		}
	}

	t.Run("HTTP/1.1 chunked trailers and Connection", func(t *testing.T) {
		check(t, postChunked(t, g, "Authorization: Bearer "+tok+"\r\n"+
			"Connection: keep-alive, X-Remote-User, x_auth_token_type\r\nConnection: X-AUTH-TOKEN-ID, X-Auth-Scopes\r\n"+
			"Trailer: X-Checksum, X-Auth-User, X-Remote-User\r\n",
			"X-Checksum: ok\r\nX-Auth-User: admin\r\nX_Auth_User: admin\r\nX-Remote-User: admin\r\n"+
				"x-auth-token-type: oauth\r\nX_Auth_Scopes: admin\r\n"))
	})

	t.Run("HTTP/2 trailers", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		client := &http.Client{Transport: &http.Transport{Protocols: &p}}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, g.base+"/echo", io.NopCloser(strings.NewReader("hello")))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Trailer = http.Header{"X-Checksum": {"ok"}, "X-Auth-User": {"admin"}, "X_auth_user": {"admin"}, "X-Remote-User": {"admin"}, "X-Auth-Scopes": {"admin"}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("spoke %s, not HTTP/2", resp.Proto)
		}
		var got received
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		check(t, got)
	})

	t.Run("HTTP/3 headers and trailers", func(t *testing.T) {
		client := &http.Client{Transport: &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: h3.roots}}}
		t.Cleanup(client.CloseIdleConnections)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, h3.base+"/echo", io.NopCloser(strings.NewReader("hello")))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header["X-Auth-User"] = []string{"admin"}
		req.Header["X_auth_token_type"] = []string{"oauth"}
		req.Header["X-Remote-User"] = []string{"admin"}
		req.Trailer = http.Header{"X-Checksum": {"ok"}, "X-Auth-User": {"admin"}, "X_auth_user": {"admin"}, "X-Remote-User": {"admin"}, "X-Auth-Scopes": {"admin"}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 3 {
			t.Fatalf("spoke %s, not HTTP/3", resp.Proto)
		}
		var got received
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		if got.Body != "hello" {
			t.Fatalf("the upstream read %q (%s): the request did not go through as sent", got.Body, got.ReadErr)
		}
		if v := identityValues(got.Header); fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("identity headers at the upstream:\n got %v\nwant %v", v, want)
		}
		// quic-go's server gives the request a new Trailer map at the end
		// of the body, which the copies Caddy's handlers hold never see:
		// HTTP/3 request trailers (the harmless one too) do not reach the
		// upstream with a value. Whatever arrives, none of ours may.
		if v := identityValues(got.Trailer); len(v) > 0 {
			t.Errorf("identity trailers reached the upstream: %v", v)
		}
		t.Logf("trailers at the upstream over HTTP/3: %v", got.Trailer)
	})
}

// h3 is a TLS site of the gateway that serves HTTP/3 on a loopback port.
type h3 struct {
	base, caddyfile string
	roots           *x509.CertPool
}

// h3Site makes a self-signed certificate for 127.0.0.1 and the Caddyfile
// of a TLS site using it (Caddy serves HTTP/3 on TLS sites by default)
// with siteOptions in its tokengate block, proxying to up.
func h3Site(t *testing.T, up *upstream, siteOptions string) h3 {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	port := freePort(t)
	return h3{
		base:  fmt.Sprintf("https://127.0.0.1:%d", port),
		roots: roots,
		caddyfile: fmt.Sprintf("\nhttps://127.0.0.1:%d {\n\ttls %s %s\n\ttokengate {\n\t\t%s\n\t}\n\treverse_proxy %s\n}\n",
			port, certFile, keyFile, siteOptions, up.addr),
	}
}

// postChunked sends POST /echo with body "hello" as an HTTP/1.1 chunked
// request with the raw header lines and trailer lines given (each ending
// in CRLF), and returns what the reporting upstream received.
func postChunked(t *testing.T, g *gateway, headers, trailers string) received {
	t.Helper()
	host := strings.TrimPrefix(g.base, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\n%sTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n%s\r\n",
		host, headers, trailers)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got received
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	return got
}

// TestCredentialTrailersNeverReachTheUpstream: the configured legacy token
// header and the /rest/token credentials (Auth-User, Auth-Pwd,
// Auth-User-Type) are consumed from the headers; copies sent as trailers,
// which arrive after the handler ran, are removed as well.
func TestCredentialTrailersNeverReachTheUpstream(t *testing.T) {
	up := reportingUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: "legacy_token_header X-Legacy-Token"})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	tok, _ := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
	got := postChunked(t, g, "Authorization: Bearer "+tok+"\r\nTrailer: X-Checksum, X-Legacy-Token, Auth-User, Auth-Pwd\r\n",
		"X-Checksum: ok\r\nX-Legacy-Token: 0123456789abcdef0123456789abcdef01234567\r\nx_legacy_token: 1\r\n"+
			"Auth-User: alice\r\nAuth-Pwd: "+alicePassword+"\r\nAuth_User_Type: admin\r\n")
	if got.Body != "hello" || got.Trailer.Get("X-Checksum") != "ok" {
		t.Fatalf("the request did not go through as sent (body %q, trailers %v): the test would prove nothing", got.Body, got.Trailer)
	}
	for k := range got.Trailer {
		if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); n != "x-checksum" {
			t.Errorf("credential trailer %s reached the upstream", k)
		}
	}
}
