package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/events"
)

const leakPath = "/security/leaked-tokens"

// reportLeak posts a leak report from addr (through the listener that
// trusts 127.0.0.1 as a proxy, so X-Forwarded-For is the client).
func reportLeak(t *testing.T, g *gateway, addr, body string) response {
	t.Helper()
	return do(t, http.MethodPost, g.trusted+leakPath,
		map[string][]string{"Content-Type": {"application/json"}, "X-Forwarded-For": {addr}}, body)
}

func leakBody(tok string) string {
	b, err := json.Marshal([]map[string]string{{
		"token": tok, "type": "tokengate_token", "url": "https://github.com/octo/repo/blob/abc/ci.yml", "source": "content",
	}})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// waitHashed waits (bounded) for a token.reported_leaked event about the
// token whose SHA-256 is hashed.
func (rc *hookReceiver) waitHashed(hashed string) events.Event {
	rc.t.Helper()
	var found events.Event
	if !eventually(30*time.Second, func() bool {
		for _, e := range rc.find(events.TokenReportedLeaked, "") {
			if e.HashedToken == hashed {
				found = e
				return true
			}
		}
		return false
	}) {
		rc.t.Fatalf("no token.reported_leaked event with hashed_token %s", hashed)
	}
	return found
}

// TestLeakReport: real tokens of every kind reported to the leak endpoint
// stop working at once (on a peer node too, whose cache held them), the
// owner is told by an event and an audit record that hold only the hash,
// a made-up token gets the same answer, bad bodies get a 400 naming the
// problem, an address over its rate a 429, and no token ever reaches the
// gateway's output.
func TestLeakReport(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		rc := startReceiver(t, webhookSecret)
		auditDir := t.TempDir()
		up := startUpstream(t)
		cfg := gatewayConfig{
			appOptions:  eventsOptions(rc.srv.URL+"/hook", "TG_WEBHOOK_SECRET") + "\n\t\taudit_log " + auditDir,
			siteOptions: "leak_report_path " + leakPath + "\n\t\tleak_report_rate 3",
			env:         []string{"TG_WEBHOOK_SECRET=" + webhookSecret},
		}
		g := startGateway(t, kind, up, cfg)
		g.mustCLI(alicePassword+"\n", "user", "add", "alice")
		g.mustCLI("", "user", "set", "alice", "--token-login")
		pat, patID := createPAT(t, g, "alice", alicePassword, `{"label":"ci","scopes":["read"]}`)
		grantUse(g, "--user", "alice")
		legacy, legacyID := legacyToken(t, g, "alice", alicePassword)
		leakedKey := addClient(t, g, "billing")
		other := addClient(t, g, "reports")
		access := requestToken(t, g.base, other, nil, "")
		fake := fakePAT(t)

		nodes := []*gateway{g}
		if kind != embedded {
			nodes = append(nodes, g.startPeer(up, cfg))
		}
		// Every node has the tokens in its cache before the report.
		for _, n := range nodes {
			for name, tok := range map[string]string{"pat": pat, "legacy": legacy, "access token": access} {
				if r := do(t, http.MethodGet, n.base+"/orders", bearer(tok), ""); r.status != http.StatusOK {
					t.Fatalf("%s before the report: %d %s", name, r.status, r.body)
				}
			}
		}

		// One report each, from addresses of their own; the answers are
		// the same but for the hash.
		var first string
		for i, tok := range []string{fake, pat, legacy, leakedKey.Secret, access, "not-a-token"} {
			r := reportLeak(t, g, fmt.Sprintf("203.0.113.%d", i+1), leakBody(tok))
			if r.status != http.StatusOK || strings.Contains(string(r.body), tok) {
				t.Fatalf("report %d: %d %s", i, r.status, r.body)
			}
			var acks []map[string]string
			if err := json.Unmarshal(r.body, &acks); err != nil || len(acks) != 1 || acks[0]["token_hash"] != sha256Hex(tok) {
				t.Fatalf("report %d: %s (%v)", i, r.body, err)
			}
			same := strings.Replace(string(r.body), sha256Hex(tok), "<hash>", 1) + r.header.Get("Content-Type")
			if first == "" {
				first = same
			} else if same != first {
				t.Errorf("report %d answers %q, a made-up token %q", i, same, first)
			}
		}

		// Refused at the edge on every node, and the key gives no tokens.
		for i, n := range nodes {
			for name, tok := range map[string]string{"pat": pat, "legacy": legacy, "access token": access} {
				if r := do(t, http.MethodGet, n.base+"/orders", bearer(tok), ""); r.status != http.StatusUnauthorized {
					t.Errorf("node %d: the reported %s still works: %d %s", i, name, r.status, r.body)
				}
			}
			if r := do(t, http.MethodPost, n.base+tokenPath, clientBasic(leakedKey.ID, leakedKey.Secret), ccGrant); r.status < 400 || r.status >= 500 {
				t.Errorf("node %d: the key whose secret was reported still gets tokens: %d %s", i, r.status, r.body)
			}
		}
		// The other key is untouched (only its one access token is denied).
		if tok := requestToken(t, g.base, other, nil, ""); do(t, http.MethodGet, g.base+"/orders", bearer(tok), "").status != http.StatusOK {
			t.Error("a new access token of the other key does not work")
		}

		// The owner is told: an event per real token, with the hash only.
		for name, c := range map[string]struct{ tok, id string }{
			"pat": {pat, patID}, "legacy": {legacy, legacyID}, "client secret": {leakedKey.Secret, leakedKey.ID}, "access token": {access, ""},
		} {
			ev := rc.waitHashed(sha256Hex(c.tok))
			if (c.id != "" && ev.Subject.ID != c.id) || ev.Data["url"] != "https://github.com/octo/repo/blob/abc/ci.yml" || ev.Data["source"] != "content" {
				t.Errorf("%s: event %+v", name, ev)
			}
		}
		if got := rc.find(events.TokenReportedLeaked, ""); len(got) != 4 {
			t.Errorf("%d token.reported_leaked events, want 4", len(got))
		}
		rc.mu.Lock()
		for _, b := range rc.bodies {
			for _, tok := range []string{pat, legacy, leakedKey.Secret, access, fake} {
				if strings.Contains(b, tok) {
					t.Errorf("an event holds a token: %s", b)
				}
			}
		}
		rc.mu.Unlock()
		// ... and the audit log (the first node's, which handled them).
		files, _ := filepath.Glob(filepath.Join(auditDir, "auth", "oauth", "*"))
		var audit strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			audit.Write(b)
		}
		if n := strings.Count(audit.String(), `"event":"token.reported_leaked"`); n != 4 {
			t.Errorf("%d audit records of leaks, want 4:\n%s", n, audit.String())
		}
		for _, tok := range []string{pat, legacy, leakedKey.Secret, access, fake} {
			if strings.Contains(audit.String(), tok) {
				t.Errorf("the audit log holds a reported token")
			}
		}
		if !strings.Contains(audit.String(), `"hashed_token":"`+sha256Hex(pat)+`"`) || !strings.Contains(audit.String(), `"name":"alice"`) {
			t.Errorf("the audit log does not name the PAT's owner and hash:\n%s", audit.String())
		}

		// Bad bodies: 400 naming the problem, nothing echoed.
		for i, c := range []struct{ body, want string }{
			{`{"token":"` + fake + `"}`, "JSON array"},
			{`[{"type":"x"}]`, `"field":"[0].token"`},
			{`[{"token":"` + fake + `"`, "malformed JSON"},
			{`[]`, "at least one"},
		} {
			r := reportLeak(t, g, fmt.Sprintf("198.51.100.%d", i+1), c.body)
			var v map[string]any
			if r.status != http.StatusBadRequest || json.Unmarshal(r.body, &v) != nil || !strings.Contains(string(r.body), c.want) ||
				strings.Contains(string(r.body), fake) {
				t.Errorf("%s: %d %s, want 400 with %q", c.body, r.status, r.body, c.want)
			}
			if r.body == nil || v["error"] == nil {
				t.Errorf("%s: no error in %s", c.body, r.body)
			}
		}

		// Over the rate: 3 a minute per address, then 429 with
		// Retry-After; another address is not affected.
		for i := range 3 {
			if r := reportLeak(t, g, "198.51.100.200", leakBody(fake)); r.status != http.StatusOK {
				t.Fatalf("report %d within the rate: %d %s", i, r.status, r.body)
			}
		}
		r := reportLeak(t, g, "198.51.100.200", leakBody(fake))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "too many reports") {
			t.Errorf("over the rate: %d %v %s", r.status, r.header, r.body)
		}
		if r := reportLeak(t, g, "198.51.100.201", leakBody(fake)); r.status != http.StatusOK {
			t.Errorf("another address: %d %s", r.status, r.body)
		}

		for _, n := range nodes {
			n.assertNoSecrets(pat, legacy, leakedKey.Secret, access, fake)
		}
	})
}

// TestLeakReportSigned: with leak_report_keys only a report signed by a
// configured key (as GitHub signs them) is taken; an unsigned one gets
// 401 and the token keeps working.
func TestLeakReportSigned(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "github.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: "leak_report_path " + leakPath + "\n\t\tleak_report_keys " + keyFile})
	g.mustCLI(alicePassword+"\n", "user", "add", "alice")
	g.mustCLI("", "user", "set", "alice", "--token-login")
	pat, _ := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
	body := leakBody(pat)
	if r := reportLeak(t, g, "203.0.113.1", body); r.status != http.StatusUnauthorized {
		t.Fatalf("unsigned report: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.base+"/orders", bearer(pat), ""); r.status != http.StatusOK {
		t.Fatalf("the PAT after an unsigned report: %d %s", r.status, r.body)
	}
	digest := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodPost, g.trusted+leakPath, map[string][]string{
		"Content-Type": {"application/json"}, "X-Forwarded-For": {"203.0.113.2"},
		"Github-Public-Key-Identifier": {"k1"}, "Github-Public-Key-Signature": {base64.StdEncoding.EncodeToString(sig)},
	}, body)
	if r.status != http.StatusOK {
		t.Fatalf("signed report: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, g.base+"/orders", bearer(pat), ""); r.status != http.StatusUnauthorized {
		t.Fatalf("the PAT after a signed report: %d %s", r.status, r.body)
	}
	g.assertNoSecrets(pat)
}
