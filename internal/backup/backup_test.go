package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/acl"
	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/keyring"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/store/redisstore"
	"github.com/tokengate/tokengate/internal/testutil/redistest"
	"github.com/tokengate/tokengate/internal/token"
)

// single and cluster are the Redis servers of the package; each store on
// them has a key prefix of its own, so it starts empty.
var single, cluster *redistest.Server

func TestMain(m *testing.M) {
	os.Exit(runWithServers(m))
}

func runWithServers(m *testing.M) int {
	var stopSingle, stopCluster func()
	var err error
	if single, stopSingle, err = redistest.StartMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopSingle()
	if cluster, stopCluster, err = redistest.StartClusterMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopCluster()
	return m.Run()
}

// backend opens a fresh, empty store of one kind.
type backend struct {
	name string
	open func(t *testing.T) store.Store
}

var prefixes atomic.Uint64

func onRedis(srv **redistest.Server) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		s, err := redisstore.Open((*srv).URL(), redisstore.Options{Prefix: fmt.Sprintf("backup%d", prefixes.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func onBolt(t *testing.T) store.Store {
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	embedded     = backend{"embedded", onBolt}
	redisSingle  = backend{"redis", onRedis(&single)}
	redisCluster = backend{"cluster", onRedis(&cluster)}
)

// now is the time of the data the tests write (the tokens, keys and
// denials must not have expired when the tests run).
var now = time.Now().UTC().Truncate(time.Microsecond)

func hashOf(s string) store.TokenHash { return store.TokenHash(token.Hash(s)) }

// fill writes one of everything an export carries, in every shape a
// record can have, and returns how many of each.
func fill(t *testing.T, s store.Store) Counts {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []store.User{
		{Name: "alice", PasswordHash: "$2a$04$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0", Roles: []string{"admin", "ops"},
			TokenLogin: true, CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-time.Hour)},
		{Name: "bob@example.com", PasswordHash: "$2a$04$bbbbbbbbbbbbbbbbbbbbbuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0", Disabled: true, CreatedAt: now, UpdatedAt: now},
		{Name: "carol", Source: "backend", TokenLogin: true, CreatedAt: now, UpdatedAt: now},
		{Name: "dave", CreatedAt: now, UpdatedAt: now},
	} {
		must(s.CreateUser(ctx, u))
	}
	toks := []store.Token{
		{ID: "a1", Owner: "alice", Kind: store.KindPAT, Hash: hashOf("pat-a1"), Label: "Laptop É", LabelKey: "laptop é",
			Scopes: []string{"read", "write"}, AllowedIPs: []string{"10.0.0.0/8", "2001:db8::/32"}, Enabled: true,
			CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(90 * 24 * time.Hour),
			ActiveAt: now.Add(-30 * time.Minute), DormancyWarnedAt: now.Add(-10 * time.Minute)}, // the dormancy rule's marks
		{ID: "a2", Owner: "alice", Kind: store.KindPAT, Hash: hashOf("pat-a2"), Label: "ci", LabelKey: "ci", CreatedAt: now},
		{ID: "a3", Owner: "alice", Kind: store.KindLegacy, Hash: hashOf("legacy-a3"), Enabled: true, CreatedAt: now,
			ExpiresAt: now.Add(100 * 365 * 24 * time.Hour)},
		{ID: "b1", Owner: "bob@example.com", Kind: store.KindPAT, Hash: hashOf("pat-b1"), Enabled: true, CreatedAt: now,
			Previous: []store.PreviousSecret{{Hash: hashOf("pat-b1-before"), Until: now.Add(time.Hour)}}},
		{ID: "c1", Owner: "carol", Kind: store.KindLegacy, Hash: hashOf("legacy-c1"), Enabled: true, CreatedAt: now},
	}
	for _, tok := range toks {
		must(s.CreateToken(ctx, tok, 0))
	}
	must(s.RecordLastUse(ctx, []store.LastUse{
		{Owner: "alice", TokenID: "a1", At: now.Add(-time.Minute), IP: "10.1.2.3", Host: "api.example.com"},
		// A second address: the recent addresses travel with the token.
		{Owner: "alice", TokenID: "a1", At: now.Add(-2 * time.Minute), IP: "192.0.2.8", Host: "web.example.com"},
		{Owner: "carol", TokenID: "c1", At: now.Add(-time.Second), IP: "2001:db8::1", Host: "legacy.example.com"},
	}))
	for _, c := range []store.Client{
		{ID: "tgc_0123456789abcdef", Name: "billing", SecretHash: hashOf("tgs_one"), Scopes: []string{"read"}, Enabled: true,
			CreatedAt: now.Add(-time.Hour), UpdatedAt: now},
		{ID: "tgc_fedcba9876543210", Name: "reports (off)", SecretHash: hashOf("tgs_two"), AllowedIPs: []string{"192.0.2.0/24"},
			CreatedAt: now, UpdatedAt: now},
	} {
		must(s.CreateClient(ctx, c))
	}
	ring, err := keyring.New("RS256", time.Hour, keyring.Policy{}, now)
	must(err)
	doc, err := ring.Encode()
	must(err)
	_, err = s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return doc, nil })
	must(err)
	_, err = acl.New(s).Grant(ctx, acl.Grant{Role: "ws-users", Action: "USE", Resource: "ws:::gen-ws-token"})
	must(err)
	must(s.Deny(ctx, store.Denial{JTI: "jti-2", Until: now.Add(time.Hour)}))
	must(s.Deny(ctx, store.Denial{JTI: "jti-1", Until: now.Add(2 * time.Hour)}))
	return Counts{Users: 4, Tokens: len(toks), Clients: 2, Documents: 2, Denials: 2}
}

// export writes s's export with the fixed time at.
func export(t *testing.T, s Store, at time.Time) ([]byte, Counts) {
	t.Helper()
	e, err := Begin(t.Context(), s, at)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := e.WriteTo(t.Context(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), n
}

// importInto decodes, validates and imports data into dst as the admin
// route does.
func importInto(t *testing.T, dst Store, data []byte) (Counts, error) {
	t.Helper()
	d, err := Decode(bytes.NewReader(data))
	if err != nil {
		return Counts{}, err
	}
	if err := d.Validate(); err != nil {
		return Counts{}, err
	}
	if err := CheckEmpty(t.Context(), dst); err != nil {
		return Counts{}, err
	}
	return Import(t.Context(), dst, d)
}

// eventLog records the events a store delivers.
type eventLog struct {
	mu     sync.Mutex
	events []store.Event
}

func (l *eventLog) add(e store.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) has(want store.Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == want.Kind && e.Hash == want.Hash && e.Owner == want.Owner && e.ID == want.ID {
			return true
		}
	}
	return false
}

// TestRoundTrip exports every kind of record from one backend, imports it
// into another and compares every record: the second store's export is
// the first's, byte for byte, every token is found by its hash, and every
// write announced its event as it does outside an import.
func TestRoundTrip(t *testing.T) {
	for _, c := range []struct{ from, to backend }{
		{embedded, redisSingle},
		{redisSingle, embedded},
		{embedded, redisCluster},
		{redisCluster, embedded},
		{embedded, embedded},
	} {
		t.Run(c.from.name+"_to_"+c.to.name, func(t *testing.T) {
			src, dst := c.from.open(t), c.to.open(t)
			want := fill(t, src)
			at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			data, n := export(t, src, at)
			if n != want {
				t.Fatalf("export wrote %v, want %v", n, want)
			}
			if !bytes.Contains(data, []byte(`"active_at"`)) || !bytes.Contains(data, []byte(`"dormancy_warned_at"`)) {
				t.Fatal("the export lost the dormancy rule's marks of a token (active_at, dormancy_warned_at)")
			}
			var log eventLog
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if err := dst.Subscribe(ctx, log.add); err != nil {
				t.Fatal(err)
			}
			got, err := importInto(t, dst, data)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("import wrote %v, want %v", got, want)
			}
			again, _ := export(t, dst, at)
			if !bytes.Equal(again, data) {
				t.Fatalf("the imported store exports differently:\n--- %s\n%s\n--- %s\n%s", c.from.name, data, c.to.name, again)
			}
			d, err := Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range d.Tokens {
				if tok.ID == "a1" && (len(tok.RecentAddresses) != 2 || tok.RecentAddresses[1].IP != "192.0.2.8" || tok.RecentAddresses[1].Host != "web.example.com") {
					t.Errorf("token a1 exported with recent addresses %+v, want two", tok.RecentAddresses)
				}
			}
			for _, tok := range d.Tokens {
				g, err := dst.LookupToken(t.Context(), tok.Hash)
				if err != nil || g.Token.ID != tok.ID || g.Owner.Name != tok.Owner {
					t.Errorf("token %s/%s is not found by its hash after the import: %v", tok.Owner, tok.ID, err)
				}
				if !log.has(store.TokenEvent(tok.Hash)) {
					t.Errorf("no event for token %s/%s", tok.Owner, tok.ID)
				}
				for _, p := range tok.Previous {
					g, err := dst.LookupToken(t.Context(), p.Hash)
					if err != nil || g.Token.ID != tok.ID || !g.PreviousUntil.Equal(p.Until) {
						t.Errorf("token %s/%s is not found by its previous secret after the import: %v", tok.Owner, tok.ID, err)
					}
				}
			}
			// Creating a user announces nothing (no node can have cached
			// anything of a user who did not exist); its tokens' events
			// drop any refusal cached for their hashes.
			for _, c := range d.Clients {
				if !log.has(store.ClientEvent(c.ID)) {
					t.Errorf("no event for OAuth key %s", c.ID)
				}
			}
			for name := range d.Documents { // the ones the source holds
				if !log.has(store.Event{Kind: store.EventDocument, ID: name}) {
					t.Errorf("no event for document %s", name)
				}
			}
			for _, den := range d.Denials {
				if !log.has(store.Event{Kind: store.EventDenied, ID: den.JTI}) {
					t.Errorf("no event for denial %s", den.JTI)
				}
			}
			if strings.Contains(string(data), "session") {
				t.Error("the export mentions sessions")
			}
		})
	}
}

// TestRoundTripBinaryDocument: a document that is not JSON (a keyring
// encrypted as a whole would be one) travels in base64, unchanged.
func TestRoundTripBinaryDocument(t *testing.T) {
	src, dst := onBolt(t), redisSingle.open(t)
	doc := []byte{0, 0xff, '{', 0x80}
	if _, err := src.UpdateDocument(t.Context(), store.DocACL, func([]byte) ([]byte, error) { return doc, nil }); err != nil {
		t.Fatal(err)
	}
	data, n := export(t, src, now)
	if n.Documents != 1 || !strings.Contains(string(data), `"binary_documents":{"acl":"AP97gA=="}`) {
		t.Fatalf("export of a binary document (%v):\n%s", n, data)
	}
	if _, err := importInto(t, dst, data); err != nil {
		t.Fatal(err)
	}
	if got, err := dst.GetDocument(t.Context(), store.DocACL); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("imported document = %x, %v; want %x", got, err, doc)
	}
}

// TestExportEmpty: an empty store exports a document with empty lists,
// which imports.
func TestExportEmpty(t *testing.T) {
	data, n := export(t, onBolt(t), now)
	if n != (Counts{}) {
		t.Fatalf("empty store exported %v", n)
	}
	for _, want := range []string{`"users":[]`, `"tokens":[]`, `"clients":[]`, `"documents":{}`, `"denials":[]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("empty export lacks %s:\n%s", want, data)
		}
	}
	if got, err := importInto(t, onBolt(t), data); err != nil || got != (Counts{}) {
		t.Fatalf("import of an empty export: %v, %v", got, err)
	}
}

// TestImportRefusesNonEmpty: a store with users, OAuth keys or documents
// is refused with a 409 that says what it holds, and nothing is written.
func TestImportRefusesNonEmpty(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	data, _ := export(t, src, now)
	for _, c := range []struct {
		name string
		seed func(t *testing.T, s store.Store)
		want string
	}{
		{"user", func(t *testing.T, s store.Store) {
			if err := s.CreateUser(t.Context(), store.User{Name: "zed", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}, "it holds 1 user;"},
		{"client", func(t *testing.T, s store.Store) {
			if err := s.CreateClient(t.Context(), store.Client{ID: "tgc_1", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}, "it holds 1 OAuth key;"},
		{"keyring", func(t *testing.T, s store.Store) {
			if _, err := keyring.NewHolder(s, keyring.Policy{}, "", 0, nil).Get(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, "it holds a signing keyring;"},
		{"everything", func(t *testing.T, s store.Store) { fill(t, s) },
			"it holds 4 users, 2 OAuth keys, a signing keyring, a permission list;"},
	} {
		for _, b := range []backend{embedded, redisSingle} {
			t.Run(c.name+"/"+b.name, func(t *testing.T) {
				dst := b.open(t)
				c.seed(t, dst)
				before, _ := export(t, dst, now)
				_, err := importInto(t, dst, data)
				p := apierr.For(err)
				if p.Status != http.StatusConflict || !strings.Contains(p.Description, c.want) {
					t.Fatalf("import into a store with a %s: %d %q, want 409 with %q", c.name, p.Status, p.Description, c.want)
				}
				if after, _ := export(t, dst, now); !bytes.Equal(after, before) {
					t.Fatalf("a refused import changed the store:\n%s\n---\n%s", before, after)
				}
			})
		}
	}
}

// TestImportCleansHosts: a document whose recorded sites hold terminal
// escapes, line breaks or a megabyte (written by hand, or exported before
// sites were cleaned) imports with the sites as the gate records them
// (store.CleanHost), on both backends.
func TestImportCleansHosts(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	data, _ := export(t, src, now)
	junk := `web\u001b[2J\r\n.example.com ` + strings.Repeat("x", 1<<20) // JSON escapes
	doc := strings.Replace(string(data), `"host":"web.example.com"`, `"host":"`+junk+`"`, 1)
	if doc == string(data) {
		t.Fatal("the export holds no host web.example.com")
	}
	for name, open := range map[string]func(t *testing.T) store.Store{"bolt": onBolt, "redis": onRedis(&single)} {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			if _, err := importInto(t, dst, []byte(doc)); err != nil {
				t.Fatal(err)
			}
			tok, err := dst.GetToken(t.Context(), "alice", "a1")
			if err != nil || len(tok.RecentAddresses) != 2 {
				t.Fatalf("imported a1: %+v, %v", tok, err)
			}
			want := "web?[2J??.example.com?" + strings.Repeat("x", store.MaxHostLength-22)
			if got := tok.RecentAddresses[1].Host; got != want {
				t.Errorf("imported host %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
			}
		})
	}
}

// TestImportRefusesInvalid: a document with any problem is refused with a
// 400 that names the first one, before anything is written.
func TestImportRefusesInvalid(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	data, _ := export(t, src, now)
	good := string(data)
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("the export does not contain %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	a2 := hashOf("pat-a2").String()
	for _, c := range []struct {
		name, doc, want string
		status          int
	}{
		{"not JSON", "hello", "malformed JSON", 400},
		{"truncated", good[:len(good)/2], "unexpected end", 400},
		{"two documents", good + good, "a single JSON object", 400},
		{"empty", "", "empty", 400},
		{"array", "[]", "must be a JSON object", 400},
		{"other format", edit(`"format":"tokengate-export"`, `"format":"caddy"`), `format must be "tokengate-export"`, 400},
		{"newer version", edit(`"version":1`, `"version":2`), "version 2 is not supported", 400},
		{"unknown member", edit(`"version":1`, `"version":1,"extra":1`), "extra: unknown field", 400},
		{"unknown member in a record", edit(`"name":"dave"`, `"name":"dave","shoe_size":44`), "users[3]: shoe_size: unknown field", 400},
		{"wrong type", edit(`"token_login":true`, `"token_login":"yes"`), "users[0]: token_login: must be true or false", 400},
		{"bad hash", edit(a2, "zz"), "tokens[1]: token hash must be 64 hex characters", 400},
		{"upper-case user", edit(`"name":"dave"`, `"name":"Dave"`), `users[3]: name "Dave" is not in its stored`, 400},
		{"bad user name", edit(`"name":"dave"`, `"name":"da ve"`), "users[3]: name: may contain only", 400},
		{"duplicate user", edit(`"name":"dave"`, `"name":"carol"`), `users[3]: user "carol" appears twice`, 400},
		{"orphan token", edit(`"owner":"bob@example.com"`, `"owner":"eve"`), `tokens[3] (eve/b1): owner "eve" is not among the users`, 400},
		{"duplicate hash", edit(a2, hashOf("pat-a1").String()), "tokens[1] (alice/a2): has the same hash as alice/a1", 400},
		{"duplicate id", edit(`"id":"a2"`, `"id":"a1"`), "tokens[1] (alice/a1): the id appears twice", 400},
		{"duplicate label", edit(`"label_key":"ci"`, `"label_key":"laptop é"`), `tokens[1] (alice/a2): label "ci" is also the label of alice/a1`, 400},
		{"unknown kind", edit(`"kind":"legacy"`, `"kind":"magic"`), `tokens[2] (alice/a3): kind must be`, 400},
		{"bad allowed IP", edit(`"10.0.0.0/8"`, `"10.0.0.0/99"`), "tokens[0] (alice/a1): allowed_ips: invalid CIDR", 400},
		{"bad recent address", edit(`"ip":"192.0.2.8"`, `"ip":"192.0.2.999"`), `tokens[0] (alice/a1): recent_addresses: "192.0.2.999" is not an address`, 400},
		{"recent address not canonical", edit(`"ip":"192.0.2.8"`, `"ip":"0:0::1"`), `tokens[0] (alice/a1): recent_addresses: "0:0::1" is not an address in canonical form`, 400},
		{"recent address zone with a space", edit(`"ip":"192.0.2.8"`, `"ip":"fe80::1%a b"`), `tokens[0] (alice/a1): recent_addresses: "fe80::1%a b" is not an address`, 400},
		{"recent address zone with an escape", edit(`"ip":"192.0.2.8"`, `"ip":"fe80::1%\u001b[2J"`), `tokens[0] (alice/a1): recent_addresses: `, 400},
		{"last used address with a line break", edit(`"last_used_ip":"`, `"last_used_ip":"fe80::1%x\n`), `tokens[0] (alice/a1): last_used_ip: `, 400},
		{"repeated recent address", edit(`"ip":"192.0.2.8"`, `"ip":"10.1.2.3"`), "tokens[0] (alice/a1): recent_addresses: 10.1.2.3 appears twice", 400},
		{"bad client id", edit(`"id":"tgc_fedcba9876543210"`, `"id":"client-2"`), `clients[1]: id must start with "tgc_"`, 400},
		{"duplicate client", edit(`"id":"tgc_fedcba9876543210"`, `"id":"tgc_0123456789abcdef"`), "clients[1] (tgc_0123456789abcdef): the id appears twice", 400},
		{"unknown document", edit(`"documents":{`, `"documents":{"notes":{},`), `unknown document "notes"`, 400},
		{"keyring not an object", edit(`"documents":{`, `"binary_documents":{},"documents":{"x":1,`), `unknown document "x"`, 400},
		{"duplicate denial", edit(`"jti":"jti-2"`, `"jti":"jti-1"`), `denials[1]: jti "jti-1" appears twice`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := onBolt(t)
			_, err := importInto(t, dst, []byte(c.doc))
			p := apierr.For(err)
			if p.Status != c.status || !strings.Contains(p.Description, c.want) {
				t.Fatalf("got %d %q, want %d with %q", p.Status, p.Description, c.status, c.want)
			}
			if err := CheckEmpty(t.Context(), dst); err != nil {
				t.Fatalf("a refused import wrote something: %v", err)
			}
			if den, err := dst.ListDenied(t.Context()); err != nil || len(den) != 0 {
				t.Fatalf("a refused import wrote denials: %v %v", den, err)
			}
			for _, secretish := range []string{hashOf("pat-a1").String(), "$2a$04$"} {
				if strings.Contains(p.Description, secretish) {
					t.Errorf("the error quotes a hash: %q", p.Description)
				}
			}
		})
	}
}

// failing fails the n-th CreateToken (counting from 1) of a real store.
type failing struct {
	store.Store
	n, calls int
}

var errInjected = errors.New("injected store failure")

func (f *failing) CreateToken(ctx context.Context, t store.Token, limit int) error {
	if f.calls++; f.calls == f.n {
		return errInjected
	}
	return f.Store.CreateToken(ctx, t, limit)
}

// TestImportPartial: a store failure part-way stops the import with an
// error that says exactly what was written and how to retry.
func TestImportPartial(t *testing.T) {
	src := onBolt(t)
	total := fill(t, src)
	data, _ := export(t, src, now)
	dst := &failing{Store: onBolt(t), n: 3}
	_, err := importInto(t, dst, data)
	var pe *PartialError
	if !errors.As(err, &pe) || !errors.Is(err, errInjected) {
		t.Fatalf("import over a failing store: %v", err)
	}
	want := Counts{Users: 4, Tokens: 2, Clients: 0, Documents: 2, Denials: 2}
	if pe.Written != want || pe.Total != total {
		t.Fatalf("written %v of %v, want %v of %v", pe.Written, pe.Total, want, total)
	}
	msg := err.Error()
	for _, part := range []string{"after writing 4 users, 2 tokens, 0 OAuth keys, 2 documents, 2 denials (of 4 users, 5 tokens, 2 OAuth keys",
		"token alice/a3", "fresh store", "import the whole file again"} {
		if !strings.Contains(msg, part) {
			t.Errorf("the error %q does not say %q", msg, part)
		}
	}
	users, err := dst.ListUsers(t.Context())
	if err != nil || len(users) != 4 {
		t.Fatalf("after the partial import the store lists %d users (%v)", len(users), err)
	}
}

// TestImportDocumentAppeared: a keyring another node wrote after the
// emptiness check is not overwritten; the import stops.
func TestImportDocumentAppeared(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	data, _ := export(t, src, now)
	d, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	dst := onBolt(t)
	if err := CheckEmpty(t.Context(), dst); err != nil {
		t.Fatal(err)
	}
	theirs, err := keyring.NewHolder(dst, keyring.Policy{}, "", 0, nil).Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Import(t.Context(), dst, d)
	if err == nil || !strings.Contains(err.Error(), "a keyring document appeared in the store during the import: another node") {
		t.Fatalf("import over a keyring that appeared: %v", err)
	}
	b, err := dst.GetDocument(t.Context(), store.DocKeyring)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := keyring.Decode(b)
	if err != nil || kept.Keys[0].KID != theirs.Doc.Keys[0].KID {
		t.Fatalf("the keyring that appeared was overwritten (%v)", err)
	}
}

// failingList fails ListTokens of one user.
type failingList struct {
	store.Store
	user string
}

func (f failingList) ListTokens(ctx context.Context, owner string) ([]store.Token, error) {
	if owner == f.user {
		return nil, errInjected
	}
	return f.Store.ListTokens(ctx, owner)
}

// TestExportFailureTruncates: an export that fails part-way leaves a
// document that no import accepts.
func TestExportFailureTruncates(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	e, err := Begin(t.Context(), failingList{src, "carol"}, now)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := e.WriteTo(t.Context(), &buf); !errors.Is(err, errInjected) {
		t.Fatalf("WriteTo = %v, want the store's error", err)
	}
	if _, err := Decode(&buf); apierr.For(err).Status != http.StatusBadRequest {
		t.Fatalf("a truncated export decodes: %v", err)
	}
}

// TestDecodeTooLarge: a body past the caller's http.MaxBytesReader is a
// 413, not a malformed document.
func TestDecodeTooLarge(t *testing.T) {
	src := onBolt(t)
	fill(t, src)
	data, _ := export(t, src, now)
	for _, limit := range []int64{10, int64(len(data)) - 2} {
		body := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(data)), limit)
		if _, err := Decode(body); apierr.For(err).Status != http.StatusRequestEntityTooLarge {
			t.Errorf("limit %d of %d bytes: %v, want 413", limit, len(data), err)
		}
	}
}

// BenchmarkMove moves a store of 1000 users with 5 tokens each from the
// embedded store to Redis (one export and one import per iteration) and
// reports the export's size and the time per record.
//
//	go test -run '^$' -bench Move -benchtime 3x ./internal/backup
func BenchmarkMove(b *testing.B) {
	src, err := boltstore.Open(filepath.Join(b.TempDir(), "tg.db"), boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := b.Context()
	const users, perUser = 1000, 5
	for i := range users {
		name := fmt.Sprintf("user%04d", i)
		if err := src.CreateUser(ctx, store.User{Name: name, PasswordHash: "$2a$10$x", TokenLogin: true, CreatedAt: now}); err != nil {
			b.Fatal(err)
		}
		for j := range perUser {
			id := fmt.Sprintf("%s-%d", name, j)
			tok := store.Token{ID: id, Owner: name, Kind: store.KindPAT, Hash: hashOf(id), Label: id, LabelKey: id, Enabled: true, CreatedAt: now}
			if err := src.CreateToken(ctx, tok, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	var size int
	b.ResetTimer()
	for range b.N {
		e, err := Begin(ctx, src, now)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := e.WriteTo(ctx, &buf); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
		d, err := Decode(&buf)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Validate(); err != nil {
			b.Fatal(err)
		}
		dst, err := redisstore.Open(single.URL(), redisstore.Options{Prefix: fmt.Sprintf("bench%d", prefixes.Add(1))})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Import(ctx, dst, d); err != nil {
			b.Fatal(err)
		}
		dst.Close()
	}
	b.ReportMetric(float64(size), "export-bytes")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*users*(1+perUser)), "µs/record")
}
