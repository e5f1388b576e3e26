package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 11 item 6: a key change means what seed 003 says ("all new JWTs
// are signed with the new key and the previous key stops working"), on
// every node, without waiting for jwks_max_age or the cache TTL.

// longWait is set for jwks_max_age and cache_ttl, so that a test that
// passes cannot have waited for either.
const longWait = "10m"

// announced is the bound on waiting for another node to receive a
// change's announcement (pub/sub): far below jwks_max_age and cache_ttl.
const announced = 10 * time.Second

// signingNodes starts a gateway on kind with appOptions, and on Redis a
// second node on the same store. The first node is the one the CLI
// changes.
func signingNodes(t *testing.T, kind storeKind, up *upstream, appOptions string) []*gateway {
	t.Helper()
	cfg := gatewayConfig{appOptions: appOptions + "\n\t\tjwks_max_age " + longWait + "\n\t\tcache_ttl " + longWait}
	g := startGateway(t, kind, up, cfg)
	if kind == embedded { // one process holds the file
		return []*gateway{g}
	}
	return []*gateway{g, g.startPeer(up, cfg)}
}

// until waits, at most announced, for ok on node i (the first node, which
// made the change, must show it at once: no waiting there).
func until(t *testing.T, i int, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(announced)
	for !ok() {
		if i == 0 || time.Now().After(deadline) {
			t.Fatalf("node %d: %s", i, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func refused(t *testing.T, base, tok string) bool {
	r := callEdge(t, base, tok)
	return r.status == http.StatusUnauthorized && strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token")
}

func jwksLists(t *testing.T, g *gateway, kid string) bool {
	set, _ := fetchJWKS(t, g)
	return slices.Contains(kidsOf(set), kid)
}

// TestSigningImmediateReset: an RS256 token, accepted (and cached) on
// every node, is refused on every node right after `signing set --reset
// --immediate --confirm`; the next token has a new kid that every node
// accepts; no JWKS lists the old kid; `signing show` agrees.
func TestSigningImmediateReset(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := signingNodes(t, kind, up, "signing RS256")
		g := nodes[0]
		c := addClient(t, g, "compromised")
		old := requestToken(t, g.base, c, nil, "")
		oldKID := kidOf(t, old)
		for i, n := range nodes {
			mustPass(t, callEdge(t, n.base, old), "token before the reset")
			mustPass(t, callEdge(t, n.base, old), "token before the reset, cached")
			if !jwksLists(t, n, oldKID) {
				t.Fatalf("node %d: the JWKS does not list the signing key %s", i, oldKID)
			}
		}

		g.mustCLI("", "oauth", "signing", "set", "--reset", "--immediate", "--confirm")
		for i, n := range nodes {
			until(t, i, "the old token is still accepted", func() bool { return refused(t, n.base, old) })
			until(t, i, "the JWKS still lists the old key", func() bool { return !jwksLists(t, n, oldKID) })
		}
		fresh := requestToken(t, g.base, c, nil, "")
		kid := kidOf(t, fresh)
		if kid == oldKID || joseHeader(t, fresh)["alg"] != "RS256" {
			t.Fatalf("token after an immediate reset: %v", joseHeader(t, fresh))
		}
		for i, n := range nodes {
			until(t, i, "the new token is refused", func() bool { return callEdge(t, n.base, fresh).status == http.StatusOK })
			until(t, i, "the JWKS does not list the new key", func() bool { return jwksLists(t, n, kid) })
		}
		s := showSigning(t, g)
		if s.Signing.KID != kid || s.Signing.Alg != "RS256" || len(s.Verifying) != 0 || s.kid("retiring") != "" {
			t.Fatalf("signing show after an immediate reset: %+v (token kid %s)", s, kid)
		}
		for _, n := range nodes {
			n.assertNoSecrets(c.Secret, old, fresh)
		}
	})
}

// TestSigningImmediateAlgorithm: HS256 -> RS256 with --immediate signs
// RS256 from the next token on, on every node, and `signing show` says so;
// the HS256 token stops working.
func TestSigningImmediateAlgorithm(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := signingNodes(t, kind, up, "signing HS256")
		g := nodes[0]
		c := addClient(t, g, "switch")
		old := requestToken(t, g.base, c, nil, "")
		if alg := joseHeader(t, old)["alg"]; alg != "HS256" {
			t.Fatalf("first token alg %v", alg)
		}
		for _, n := range nodes {
			mustPass(t, callEdge(t, n.base, old), "HS256 token")
		}

		g.mustCLI("", "oauth", "signing", "set", "--algorithm", "RS256", "--immediate", "--confirm")
		fresh := requestToken(t, g.base, c, nil, "")
		if alg := joseHeader(t, fresh)["alg"]; alg != "RS256" {
			t.Fatalf("token right after an immediate switch to RS256 has alg %v", alg)
		}
		s := showSigning(t, g)
		if s.Algorithm != "RS256" || s.Signing.Alg != "RS256" || s.Signing.KID != kidOf(t, fresh) || len(s.Verifying) != 0 {
			t.Fatalf("signing show after an immediate switch: %+v", s)
		}
		set, _ := fetchJWKS(t, g)
		verifyWithJWKS(t, set, fresh)
		for i, n := range nodes {
			until(t, i, "the HS256 token is still accepted", func() bool { return refused(t, n.base, old) })
			until(t, i, "the RS256 token is refused", func() bool { return callEdge(t, n.base, fresh).status == http.StatusOK })
		}
	})
}

// TestSigningGraceAlgorithm: HS256 -> RS256 with --grace keeps signing
// HS256 until the RS256 key has been published for jwks_max_age, and
// `signing show` says so, with the time; the CLI refuses a key change
// without a mode.
func TestSigningGraceAlgorithm(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := signingNodes(t, kind, up, "signing HS256")
		g := nodes[0]
		c := addClient(t, g, "planned")
		hsKID := kidOf(t, requestToken(t, g.base, c, nil, ""))

		out, err := g.cli("", "oauth", "signing", "set", "--algorithm", "RS256", "--confirm")
		if err == nil || !strings.Contains(out, "--immediate") || !strings.Contains(out, "--grace") {
			t.Fatalf("algorithm change without a mode: %v\n%s", err, out)
		}
		r := do(t, http.MethodPost, "http://"+g.admin+"/tokengate/oauth/signing", map[string][]string{"Content-Type": {"application/json"}},
			`{"algorithm":"RS256","confirm":true}`)
		if msg, _ := r.json(t)["error"].(string); r.status != http.StatusBadRequest || !strings.HasPrefix(msg, "mode: ") {
			t.Fatalf("admin API key change without a mode: %d %s", r.status, r.body)
		}
		if s := showSigning(t, g); s.Algorithm != "HS256" || s.Next == nil || s.Next.Alg != "HS256" {
			t.Fatalf("a refused change changed the settings: %+v", s)
		}

		before := time.Now()
		out = g.mustCLI("", "oauth", "signing", "set", "--algorithm", "RS256", "--grace", "--confirm")
		s := showSigning(t, g)
		if s.Algorithm != "HS256" || s.Signing.KID != hsKID || s.Signing.Alg != "HS256" {
			t.Fatalf("signing show during a grace switch says %+v; the HS256 key %s signs now", s, hsKID)
		}
		if s.Next == nil || s.Next.Alg != "RS256" || s.Next.Mode != "grace" ||
			s.Next.SignsFrom.Before(before.Add(10*time.Minute-time.Second)) || s.Next.SignsFrom.After(time.Now().Add(10*time.Minute)) {
			t.Fatalf("signing show during a grace switch: next %+v; want RS256 from about now+%s", s.Next, longWait)
		}
		from := s.Next.SignsFrom.UTC().Format(time.RFC3339)
		for _, want := range []string{"signs now:", "HS256 " + hsKID, "signs next:", "RS256 " + s.Next.KID + " from " + from} {
			if !strings.Contains(out, want) {
				t.Errorf("signing set printed no %q:\n%s", want, out)
			}
		}
		human := g.mustCLI("", "oauth", "signing", "show")
		if !strings.Contains(human, "RS256 "+s.Next.KID+" from "+from) {
			t.Errorf("signing show printed:\n%s", human)
		}
		for _, n := range nodes {
			tok := requestToken(t, n.base, c, nil, "")
			if kidOf(t, tok) != hsKID || joseHeader(t, tok)["alg"] != "HS256" {
				t.Fatalf("during a grace switch a token was signed %v", joseHeader(t, tok))
			}
			if !jwksLists(t, n, s.Next.KID) {
				t.Fatalf("the RS256 key %s is not published before it signs", s.Next.KID)
			}
		}
	})
}
