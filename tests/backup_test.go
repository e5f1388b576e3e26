package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/backup"
)

// storeState exports g's store through the CLI and returns it without
// what changes on its own (the export time, last uses flushed since).
func storeState(t *testing.T, g *gateway) backup.Document {
	t.Helper()
	out := g.mustCLI("", "store", "export")
	// The CLI reports on standard error, after the document.
	doc, _, _ := strings.Cut(out, "\nexported ")
	var d backup.Document
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("store export printed something else: %v\n%s", err, out)
	}
	d.ExportedAt = time.Time{}
	for i := range d.Tokens {
		d.Tokens[i].LastUsedAt, d.Tokens[i].LastUsedIP, d.Tokens[i].LastUsedHost = time.Time{}, "", ""
		d.Tokens[i].RecentAddresses = nil // written in the background, like the last use
	}
	return d
}

func assertUser(t *testing.T, up *upstream, r response, want, what string) {
	t.Helper()
	mustPass(t, r, what)
	if got := up.last(t).Header.Get("X-Auth-User"); got != want {
		t.Fatalf("%s: X-Auth-User %q, want %q", what, got, want)
	}
}

// TestStoreExportImport moves a gateway from the embedded store to every
// topology (a fresh embedded store, Redis, ...) with `tokengate store
// export` and `import`: every credential issued before the move works
// after it, on the other backend.
func TestStoreExportImport(t *testing.T) {
	forEachTopology(t, testStoreExportImport)
}

func testStoreExportImport(t *testing.T, kind storeKind) {
	up := startUpstream(t)
	a := startGateway(t, embedded, up, gatewayConfig{})
	a.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
	grantUse(a, "--user", "alice")
	pat, patID := createPAT(t, a, "alice", alicePassword, `{"label":"laptop","scopes":["read"]}`)
	legacy, _ := legacyToken(t, a, "alice", alicePassword)
	client := addClient(t, a, "billing", "--scope", "read")
	access := requestToken(t, a.base, client, nil, "")
	revoked := requestToken(t, a.base, client, nil, "")
	if r := do(t, http.MethodPost, a.base+revokePath, clientBasic(client.ID, client.Secret), url.Values{"token": {revoked}}.Encode()); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	assertUser(t, up, callEdge(t, a.base, pat), "alice", "PAT on A")
	assertUser(t, up, callEdge(t, a.base, legacy), "alice", "legacy token on A")
	assertUser(t, up, callEdge(t, a.base, access), client.ID, "access token on A")
	assertRefused(t, a, up, callEdge(t, a.base, revoked), http.StatusUnauthorized, "invalid_token")

	file := filepath.Join(t.TempDir(), "backup.json")
	out := a.mustCLI("", "store", "export", "--output", file)
	if want := "exported 1 user, 2 tokens, 1 OAuth key, 2 documents, 1 denial to " + file; !strings.Contains(out, want) {
		t.Fatalf("store export printed %q, want %q", out, want)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the export file has mode %o, want 600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{pat, legacy, client.Secret, alicePassword} {
		if strings.Contains(string(data), secret) {
			t.Fatalf("the export holds a secret (%.8s...)", secret)
		}
	}
	before := storeState(t, a)
	a.stop() // B must need nothing of A

	b := startGateway(t, kind, up, gatewayConfig{})
	if out := b.mustCLI("", "store", "import", "--input", file); !strings.Contains(out, "imported 1 user, 2 tokens, 1 OAuth key, 2 documents, 1 denial") {
		t.Fatalf("store import printed %q", out)
	}
	if after := storeState(t, b); !reflect.DeepEqual(after, before) {
		t.Fatalf("B holds other records than A did:\nA: %+v\nB: %+v", before, after)
	}

	// Through B: what A issued works, the revoked token stays revoked.
	assertUser(t, up, callEdge(t, b.base, pat), "alice", "PAT on B")
	assertUser(t, up, callEdge(t, b.base, legacy), "alice", "legacy token on B")
	assertUser(t, up, callEdge(t, b.base, access), client.ID, "access token issued by A, on B")
	assertRefused(t, b, up, callEdge(t, b.base, revoked), http.StatusUnauthorized, "invalid_token")
	// The OAuth key gets new tokens, signed with the keys A had.
	fresh := requestToken(t, b.base, client, nil, "")
	if kidOf(t, fresh) != kidOf(t, access) {
		t.Errorf("B signs with kid %s, A signed with %s", kidOf(t, fresh), kidOf(t, access))
	}
	assertUser(t, up, callEdge(t, b.base, fresh), client.ID, "access token issued by B")
	// The user's password works with the token API: the list shows the
	// PAT made on A, and a new one can be made.
	r := do(t, http.MethodGet, b.base+"/api-user/tokens", basic("alice", alicePassword), "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), patID) {
		t.Fatalf("token list on B: %d %s", r.status, r.body)
	}
	pat2, _ := createPAT(t, b, "alice", alicePassword, `{"label":"after the move"}`)
	assertUser(t, up, callEdge(t, b.base, pat2), "alice", "PAT made on B")
	// Revoking on B works on what came from A.
	b.mustCLI("", "user", "revoke", "alice", patID)
	assertRefused(t, b, up, callEdge(t, b.base, pat), http.StatusUnauthorized, "invalid_token")

	// B is not empty any more: a second import is refused, and nothing
	// changes.
	held := storeState(t, b)
	out, err = b.cli("", "store", "import", "--input", file)
	if err == nil || !strings.Contains(out, "the store is not empty: it holds 1 user, 1 OAuth key, a signing keyring, a permission list") {
		t.Fatalf("import into a store in use: %v\n%s", err, out)
	}
	if strings.Contains(out, "{") {
		t.Errorf("the CLI printed the admin API's JSON: %s", out)
	}
	if now := storeState(t, b); !reflect.DeepEqual(now, held) {
		t.Fatalf("a refused import changed the store:\nbefore: %+v\nafter: %+v", held, now)
	}
	r = do(t, http.MethodPost, "http://"+b.admin+"/tokengate/store/import", map[string][]string{"Content-Type": {"application/json"}}, string(data))
	if r.status != http.StatusConflict {
		t.Fatalf("admin API import into a store in use: %d %s", r.status, r.body)
	}
	b.assertNoSecrets(pat, legacy, client.Secret, alicePassword, access, fresh)
}

// TestStoreImportRefusesMalformed: a file that is not a whole, valid
// export is answered 400 with the first problem, and nothing is written.
func TestStoreImportRefusesMalformed(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		up := startUpstream(t)
		src := startGateway(t, embedded, up, gatewayConfig{})
		src.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		createPAT(t, src, "alice", alicePassword, `{"label":"one"}`)
		createPAT(t, src, "alice", alicePassword, `{"label":"two"}`)
		good := src.mustCLI("", "store", "export")
		good, _, _ = strings.Cut(good, "\nexported ")
		src.stop()

		g := startGateway(t, kind, up, gatewayConfig{})
		dir := t.TempDir()
		for _, c := range []struct{ name, doc, want string }{
			{"orphan token", strings.Replace(good, `"owner":"alice"`, `"owner":"mallory"`, 1),
				`invalid export: tokens[0] (mallory/`},
			{"truncated", good[:len(good)*2/3], "invalid export: malformed JSON: unexpected end of body"},
			{"not an export", `{"apps":{}}`, "invalid export: apps: unknown field"},
			{"duplicate label", strings.Replace(good, `"label_key":"two"`, `"label_key":"one"`, 1),
				`label "two" is also the label of alice/`},
		} {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(c.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := g.cli("", "store", "import", "--input", file)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("%s: import: %v\n%s\nwant %q", c.name, err, out, c.want)
			}
			r := do(t, http.MethodPost, "http://"+g.admin+"/tokengate/store/import", map[string][]string{"Content-Type": {"application/json"}}, c.doc)
			if msg, _ := r.json(t)["error"].(string); r.status != http.StatusBadRequest || !strings.Contains(msg, c.want) {
				t.Fatalf("%s: admin API import: %d %s", c.name, r.status, r.body)
			}
		}
		if d := storeState(t, g); len(d.Users)+len(d.Tokens)+len(d.Clients)+len(d.Documents)+len(d.Denials) != 0 {
			t.Fatalf("refused imports wrote %+v", d)
		}
		// The good file still imports: nothing of the refused ones was left.
		if out := g.mustCLI(good, "store", "import"); !strings.Contains(out, "imported 1 user, 2 tokens") {
			t.Fatalf("import from standard input printed %q", out)
		}
	})
}
