package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
)

// rotate rotates a token through the tokens API and returns the new
// secret and the whole answer.
func rotate(t *testing.T, g *gateway, id, body string) (string, map[string]any) {
	t.Helper()
	r := do(t, http.MethodPost, g.base+"/api-user/tokens/"+id+"/rotate", basic("alice", alicePassword), body)
	if r.status != http.StatusOK {
		t.Fatalf("rotate %s: %d %s", id, r.status, r.body)
	}
	v := r.json(t)
	secret, _ := v["token"].(string)
	if !strings.HasPrefix(secret, "tgp_") || v["id"] != id {
		t.Fatalf("rotate answered %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("rotate answer is cacheable: %q", r.header.Get("Cache-Control"))
	}
	return secret, v
}

// rotationNodes starts one node (embedded) or two on one Redis store,
// with a cache that would keep decisions far longer than any overlap.
func rotationNodes(t *testing.T, kind storeKind, up *upstream) []*gateway {
	t.Helper()
	nodes := signingNodes(t, kind, up, "")
	nodes[0].mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	return nodes
}

// passesEverywhere checks that tok is accepted on every node (at once on
// the node that made the change, within `announced` elsewhere).
func passesEverywhere(t *testing.T, nodes []*gateway, tok, what string) {
	t.Helper()
	for i, g := range nodes {
		until(t, i, what+": accepted", func() bool { return callEdge(t, g.base, tok).status == http.StatusOK })
	}
}

// refusedEverywhere checks that tok is refused on every node.
func refusedEverywhere(t *testing.T, nodes []*gateway, tok, what string) {
	t.Helper()
	for i, g := range nodes {
		until(t, i, what+": refused", func() bool { return refused(t, g.base, tok) })
	}
}

// TestRotateOverlap: a rotated PAT's old secret keeps working during the
// overlap on every node (also where it was cached), a second rotation
// during the overlap keeps the newest secret, overlap 0 ends the old one
// at once, and the self routes see and rotate the token presented.
func TestRotateOverlap(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := rotationNodes(t, kind, up)
		g := nodes[0]
		first, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci","scopes":["read"],"allowed_ips":["127.0.0.0/8"]}`)
		passesEverywhere(t, nodes, first, "the first secret") // cached on every node

		second, v := rotate(t, g, id, `{"overlap":"1h"}`)
		if v["label"] != "ci" || v["replaced_valid_until"] == nil {
			t.Fatalf("rotation answered %v", v)
		}
		passesEverywhere(t, nodes, second, "the second secret")
		passesEverywhere(t, nodes, first, "the first secret during its overlap")
		if seen := up.last(t); seen.Header.Get("X-Auth-Token-Id") != id || seen.Header.Get("X-Auth-Scopes") != "read" {
			t.Fatalf("the old secret's identity: %v", seen.Header)
		}

		// A second rotation during the overlap: GitLab 524639 revoked the
		// newest token here. The second secret stays, the first keeps its
		// own overlap.
		third, _ := rotate(t, g, id, `{"overlap":"1h"}`)
		passesEverywhere(t, nodes, third, "the third secret")
		passesEverywhere(t, nodes, second, "the second secret after a second rotation")
		passesEverywhere(t, nodes, first, "the first secret after a second rotation")

		// Overlap 0: the secret being replaced fails at once, everywhere.
		fourth, v := rotate(t, g, id, `{"overlap":"0"}`)
		refusedEverywhere(t, nodes, third, "overlap 0")
		passesEverywhere(t, nodes, fourth, "the fourth secret")
		passesEverywhere(t, nodes, second, "the second secret, rotated with its own overlap")

		// The self routes, authenticated by the token presented.
		for i, n := range nodes {
			r := do(t, http.MethodGet, n.base+"/api-user/tokens/self", bearer(fourth), "")
			if r.status != http.StatusOK || r.json(t)["id"] != id {
				t.Fatalf("node %d: self: %d %s", i, r.status, r.body)
			}
			// A replaced secret may not see or rotate the token.
			r = do(t, http.MethodPost, n.base+"/api-user/tokens/self/rotate", bearer(second), "")
			assertRefused(t, n, up, r, http.StatusForbidden, "forbidden")
		}
		r := do(t, http.MethodGet, g.base+"/api-user/tokens/self", bearer("tgp_not_a_real_token"), "")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("self with a made-up token: %d %s", r.status, r.body)
		}
		r = do(t, http.MethodPost, g.base+"/api-user/tokens/self/rotate",
			map[string][]string{"Authorization": {"Bearer " + fourth}, "Content-Type": {"application/json"}}, `{"overlap":"0"}`)
		if r.status != http.StatusOK {
			t.Fatalf("self rotate: %d %s", r.status, r.body)
		}
		fifth, _ := r.json(t)["token"].(string)
		passesEverywhere(t, nodes, fifth, "the secret from the self route")
		refusedEverywhere(t, nodes, fourth, "the secret the self route replaced with overlap 0")

		// Bad input: a clear 4xx, nothing changed.
		for _, body := range []string{`{"overlap":"-1s"}`, `{"overlap":"8d"}`, `{"overlap":"soon"}`, `{"overlap":"200h"}`, `{"other":1}`} {
			r := do(t, http.MethodPost, g.base+"/api-user/tokens/"+id+"/rotate", basic("alice", alicePassword), body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("rotate with %s: %d %s", body, r.status, r.body)
			}
		}
		r = do(t, http.MethodPost, g.base+"/api-user/tokens/nosuchid/rotate", basic("alice", alicePassword), "")
		assertRefused(t, g, up, r, http.StatusNotFound, "not_found")
		passesEverywhere(t, nodes, fifth, "the secret after refused rotations")
		for _, n := range nodes {
			n.assertNoSecrets(first, second, third, fourth, fifth)
		}
	})
}

// TestRotateOverlapEnds: the old secret, cached on every node with a
// cache TTL of minutes, fails on every node once its short overlap ends.
func TestRotateOverlapEnds(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := rotationNodes(t, kind, up)
		g := nodes[0]
		old, id := createPAT(t, g, "alice", alicePassword, `{"label":"short"}`)
		passesEverywhere(t, nodes, old, "the old secret") // cached on every node
		fresh, _ := rotate(t, g, id, `{"overlap":"2s"}`)
		deadline := time.Now().Add(30 * time.Second)
		for i, n := range nodes {
			if !eventually(time.Until(deadline), func() bool { return refused(t, n.base, old) }) {
				t.Fatalf("node %d still accepts the old secret long after its overlap", i)
			}
		}
		passesEverywhere(t, nodes, fresh, "the new secret")
	})
}

// TestRotateLegacy: a legacy token's holder rotates it at /rest/token/rotate;
// the old one works for the overlap asked, the new one at once.
func TestRotateLegacy(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := rotationNodes(t, kind, up)
		g := nodes[0]
		g.mustCLI("", "acl", "grant", "--user", "alice", "--p", "USE", "--res", "ws:::gen-ws-token")
		old, id := legacyToken(t, g, "alice", alicePassword)
		passesEverywhere(t, nodes, old, "the legacy token")

		r := do(t, http.MethodPost, g.base+"/rest/token/rotate?overlap=1h", withJSON(bearer(old)), "")
		if r.status != http.StatusOK {
			t.Fatalf("legacy rotate: %d %s", r.status, r.body)
		}
		v := r.json(t)
		fresh, _ := v["token"].(string)
		if !legacyHex.MatchString(fresh) || v["id"] != id || v["replaced_valid_until"] == nil {
			t.Fatalf("legacy rotate answered %s", r.body)
		}
		passesEverywhere(t, nodes, fresh, "the new legacy token")
		passesEverywhere(t, nodes, old, "the old legacy token during the overlap")

		// Plain text by default, like /rest/token; overlap 0 from a form.
		r = do(t, http.MethodPost, g.base+"/rest/token/rotate",
			map[string][]string{"Authorization": {"Bearer " + fresh}, "Content-Type": {"application/x-www-form-urlencoded"}}, "overlap=0")
		if r.status != http.StatusOK || !legacyHex.MatchString(string(r.body)) {
			t.Fatalf("legacy rotate (text): %d %s", r.status, r.body)
		}
		newest := string(r.body)
		refusedEverywhere(t, nodes, fresh, "the legacy token replaced with overlap 0")
		passesEverywhere(t, nodes, newest, "the newest legacy token")

		// A PAT is not rotated here, and a replaced secret may not rotate.
		pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"p"}`)
		r = do(t, http.MethodPost, g.base+"/rest/token/rotate", bearer(pat), "")
		assertRefused(t, g, up, r, http.StatusBadRequest, "invalid_request")
		r = do(t, http.MethodPost, g.base+"/rest/token/rotate", bearer(old), "")
		assertRefused(t, g, up, r, http.StatusForbidden, "forbidden")
		for _, n := range nodes {
			n.assertNoSecrets(old, fresh, newest, pat)
		}
	})
}

// cliJSON decodes the JSON object a CLI command printed.
func cliJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	i := strings.IndexByte(out, '{')
	if i < 0 || json.Unmarshal([]byte(out[i:]), &v) != nil {
		t.Fatalf("the CLI printed %s", out)
	}
	return v
}

// clientAccepted says whether base's token endpoint accepts the client
// with this secret.
func clientAccepted(t *testing.T, base string, c oauthClient, secret string) bool {
	t.Helper()
	r := do(t, http.MethodPost, base+tokenPath, clientBasic(c.ID, secret), ccGrant)
	return r.status == http.StatusOK
}

// TestRotateCLI: `tokengate user rotate` rotates a user's token for an
// administrator, `tokengate oauth client rotate-secret` an OAuth key's
// secret; each old secret works for the overlap, on every node.
func TestRotateCLI(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		nodes := rotationNodes(t, kind, up)
		g := nodes[0]
		old, id := createPAT(t, g, "alice", alicePassword, `{"label":"deploy"}`)
		v := cliJSON(t, g.mustCLI("", "user", "rotate", "Alice", id, "--overlap", "30m"))
		fresh, _ := v["token"].(string)
		if !strings.HasPrefix(fresh, "tgp_") || v["id"] != id || v["replaced_valid_until"] == nil {
			t.Fatalf("user rotate printed %v", v)
		}
		passesEverywhere(t, nodes, fresh, "the secret from the CLI")
		passesEverywhere(t, nodes, old, "the old secret during the overlap")
		if out, err := g.cli("", "user", "rotate", "alice", id, "--overlap", "forever"); err == nil || !strings.Contains(out, "overlap") {
			t.Fatalf("user rotate with a bad overlap: %v %s", err, out)
		}

		c := addClient(t, g, "billing")
		for i, n := range nodes {
			until(t, i, "the first client secret", func() bool { return clientAccepted(t, n.base, c, c.Secret) })
		}
		v = cliJSON(t, g.mustCLI("", "oauth", "client", "rotate-secret", c.ID, "--overlap", "1h"))
		second, _ := v["clientSecret"].(string)
		if !strings.HasPrefix(second, "tgs_") || v["clientId"] != c.ID || v["replaced_valid_until"] == nil {
			t.Fatalf("rotate-secret printed %v", v)
		}
		for i, n := range nodes {
			until(t, i, "the new client secret", func() bool { return clientAccepted(t, n.base, c, second) })
			until(t, i, "the old client secret during the overlap", func() bool { return clientAccepted(t, n.base, c, c.Secret) })
		}
		v = cliJSON(t, g.mustCLI("", "oauth", "client", "rotate-secret", c.ID, "--overlap", "0"))
		third, _ := v["clientSecret"].(string)
		for i, n := range nodes {
			until(t, i, "the client secret replaced with overlap 0", func() bool { return !clientAccepted(t, n.base, c, second) })
			until(t, i, "the newest client secret", func() bool { return clientAccepted(t, n.base, c, third) })
			until(t, i, "the first client secret, with its own overlap", func() bool { return clientAccepted(t, n.base, c, c.Secret) })
		}
		tok := requestToken(t, g.base, oauthClient{ID: c.ID, Secret: third}, nil, "")
		mustPass(t, callEdge(t, g.base, tok), "an access token got with the newest secret")
		for _, n := range nodes {
			n.assertNoSecrets(old, fresh, c.Secret, second, third)
		}
	})
}

// TestRotateEvents: a rotation sends token.rotated with the hash of the
// new secret and, in its data, of the one it replaced (a PAT, a legacy
// token and an OAuth key's secret), never a secret.
func TestRotateEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		rc := startReceiver(t, webhookSecret)
		up := startUpstream(t)
		g := startGateway(t, kind, up, gatewayConfig{
			appOptions: eventsOptions(rc.srv.URL+"/hook", "TG_WEBHOOK_SECRET"),
			env:        []string{"TG_WEBHOOK_SECRET=" + webhookSecret},
		})
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		old, id := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
		fresh, _ := rotate(t, g, id, `{"overlap":"10m"}`)
		ev := rc.wait(events.TokenRotated, id)
		if ev.HashedToken != sha256Hex(fresh) || ev.Data["previous_hashed_token"] != sha256Hex(old) ||
			ev.Data["overlap_seconds"] != float64(600) || ev.Actor != "alice" || ev.Subject.TokenKind != "pat" {
			t.Errorf("token.rotated: %+v", ev)
		}

		grantUse(g, "--user", "alice")
		legacyOld, legacyID := legacyToken(t, g, "alice", alicePassword)
		r := do(t, http.MethodPost, g.base+"/rest/token/rotate", bearer(legacyOld), "")
		if r.status != http.StatusOK {
			t.Fatalf("legacy rotate: %d %s", r.status, r.body)
		}
		ev = rc.wait(events.TokenRotated, legacyID)
		if ev.HashedToken != sha256Hex(string(r.body)) || ev.Data["previous_hashed_token"] != sha256Hex(legacyOld) ||
			ev.Subject.TokenKind != "legacy" || ev.Data["overlap_seconds"] != float64(3600) {
			t.Errorf("legacy token.rotated: %+v", ev)
		}

		c := addClient(t, g, "billing")
		v := cliJSON(t, g.mustCLI("", "oauth", "client", "rotate-secret", c.ID))
		second, _ := v["clientSecret"].(string)
		ev = rc.wait(events.TokenRotated, c.ID)
		if ev.HashedToken != sha256Hex(second) || ev.Data["previous_hashed_token"] != sha256Hex(c.Secret) ||
			ev.Subject.Kind != events.SubjectOAuthKey || ev.Actor != "admin" {
			t.Errorf("OAuth key token.rotated: %+v", ev)
		}
		rc.mu.Lock()
		bodies := strings.Join(rc.bodies, "\n")
		rc.mu.Unlock()
		for _, s := range []string{old, fresh, legacyOld, string(r.body), c.Secret, second} {
			if strings.Contains(bodies, s) {
				t.Errorf("an event holds a secret (%.8s...)", s)
			}
		}
	})
}
