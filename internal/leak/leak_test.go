package leak_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/failrate"
	"github.com/tokengate/tokengate/internal/leak"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/token"
)

type fixture struct {
	*oauthtest.Env
	rp       *leak.Responder
	auditDir string
	mu       sync.Mutex
	events   []events.Event
}

func newFixture(t testing.TB, limit int64) *fixture {
	f := &fixture{Env: oauthtest.New(t), auditDir: t.TempDir()}
	f.rp = &leak.Responder{
		Inspector: f.Checker, Store: f.St, Clients: f.Clients, Now: f.Clk.Now,
		Audit:   audit.New(audit.Options{Dir: f.auditDir, Now: f.Clk.Now, Location: time.UTC}),
		Events:  events.Func(func(e events.Event) { f.mu.Lock(); f.events = append(f.events, e); f.mu.Unlock() }),
		Limiter: failrate.New(failrate.Options{Limit: limit, Window: time.Minute, Now: f.Clk.Now}),
	}
	f.Clients.SetEvents(f.rp.Events)
	if err := f.St.CreateUser(context.Background(), store.User{Name: "alice", TokenLogin: true}); err != nil {
		t.Fatal(err)
	}
	return f
}

// newPAT stores a PAT of alice and returns its secret and record.
func (f *fixture) newPAT(t *testing.T, kind string) (string, store.Token) {
	t.Helper()
	secret, err := token.NewPAT()
	if kind == store.KindLegacy {
		secret, err = token.NewLegacy()
	}
	if err != nil {
		t.Fatal(err)
	}
	id, _ := token.NewID()
	tk := store.Token{ID: id, Owner: "alice", Kind: kind, Hash: token.Hash(secret), Enabled: true, CreatedAt: f.Clk.Now()}
	if err := f.St.CreateToken(context.Background(), tk, 0); err != nil {
		t.Fatal(err)
	}
	return secret, tk
}

// post sends body and returns the status and the answer's body.
func (f *fixture) post(t *testing.T, body string) (int, string, http.Header) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/leaks", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	err := f.rp.Serve(w, r, reqFrom())
	if err != nil {
		p := apierr.For(err)
		apierr.Write(w, p, apierr.Challenge{})
	}
	return w.Code, w.Body.String(), w.Header()
}

func reqFrom() leak.Request {
	return leak.Request{ClientIP: netip.MustParseAddr("198.51.100.7"), Host: "api.example"}
}

func report(tok string) string {
	b, _ := json.Marshal([]leak.Report{{Token: tok, Type: "tokengate_pat", URL: "https://example.com/r/" + tok, Source: "content"}})
	return string(b)
}

func TestReportRevokesEachKind(t *testing.T) {
	f := newFixture(t, -1)
	ctx := context.Background()
	pat, patRec := f.newPAT(t, store.KindPAT)
	legacy, legacyRec := f.newPAT(t, store.KindLegacy)
	c := f.NewClient(t, oauthclient.NewClient{})
	other := f.NewClient(t, oauthclient.NewClient{Name: "other"})
	at := f.Issue(t, other.ClientID, "read")
	fake, _ := token.NewPAT()

	answers := map[string]string{}
	for name, tok := range map[string]string{"pat": pat, "legacy": legacy, "secret": c.ClientSecret, "access": at.Token, "fake": fake, "junk": "hello"} {
		status, body, _ := f.post(t, report(tok))
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		if strings.Contains(body, tok) {
			t.Fatalf("%s: the answer echoes the token: %s", name, body)
		}
		var acks []leak.Ack
		if err := json.Unmarshal([]byte(body), &acks); err != nil || len(acks) != 1 ||
			acks[0].TokenHash != store.TokenHash(token.Hash(tok)).String() || acks[0].Label != "received" || acks[0].TokenType != "tokengate_pat" {
			t.Fatalf("%s: answer %s (%v)", name, body, err)
		}
		answers[name] = strings.Replace(body, acks[0].TokenHash, "H", 1)
	}
	for name, a := range answers {
		if a != answers["fake"] {
			t.Errorf("the answer for %s (%s) differs from a fake token's (%s)", name, a, answers["fake"])
		}
	}
	if _, err := f.St.LookupToken(ctx, patRec.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the PAT is still stored: %v", err)
	}
	if _, err := f.St.LookupToken(ctx, legacyRec.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the legacy token is still stored: %v", err)
	}
	if f.Stored(t, c.ClientID).Enabled {
		t.Error("the key whose secret leaked is still on")
	}
	if !f.Stored(t, other.ClientID).Enabled {
		t.Error("the key of the leaked access token was switched off")
	}
	if en, err := f.Verify(t, at.Token); err != nil || en.Refusal == nil {
		t.Errorf("the leaked access token still verifies: %+v, %v", en, err)
	}

	// Events: one token.reported_leaked per real token (and the key's
	// oauth_key.disabled), none with the token in it.
	f.mu.Lock()
	evs := f.events
	f.mu.Unlock()
	leaked := map[string]events.Event{}
	for _, e := range evs {
		raw, _ := json.Marshal(e)
		for _, tok := range []string{pat, legacy, c.ClientSecret, at.Token} {
			if bytes.Contains(raw, []byte(tok)) {
				t.Fatalf("event holds a token: %s", raw)
			}
		}
		if e.Type == events.TokenReportedLeaked {
			leaked[e.HashedToken] = e
		}
	}
	for name, tok := range map[string]string{"pat": pat, "legacy": legacy, "secret": c.ClientSecret, "access": at.Token} {
		e, ok := leaked[store.TokenHash(token.Hash(tok)).String()]
		if !ok {
			t.Errorf("no token.reported_leaked for the %s", name)
			continue
		}
		if e.Data["source"] != "content" || e.Data["url"] != "https://example.com/r/[redacted]" || e.Actor != leak.Actor {
			t.Errorf("%s event: %+v", name, e)
		}
	}
	if len(leaked) != 4 {
		t.Errorf("%d token.reported_leaked events, want 4", len(leaked))
	}

	// The audit log names the owners and holds no token.
	logs, err := os.ReadFile(filepath.Join(f.auditDir, "auth", "oauth", f.Clk.Now().UTC().Format("2006-01-02")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{pat, legacy, c.ClientSecret, at.Token, fake} {
		if bytes.Contains(logs, []byte(tok)) {
			t.Fatal("the audit log holds a reported token")
		}
	}
	if n := bytes.Count(logs, []byte(`"event":"token.reported_leaked"`)); n != 4 {
		t.Errorf("%d audit records, want 4:\n%s", n, logs)
	}
	if !bytes.Contains(logs, []byte(`"name":"alice"`)) || !bytes.Contains(logs, []byte(`"client_id":"`+c.ClientID+`"`)) {
		t.Errorf("the audit records do not name the owners:\n%s", logs)
	}

	// A second report of the same PAT changes nothing and answers the same.
	before := len(evs)
	if status, body, _ := f.post(t, report(pat)); status != http.StatusOK || !strings.Contains(body, `"label":"received"`) {
		t.Fatalf("second report: %d %s", status, body)
	}
	f.mu.Lock()
	after := len(f.events)
	f.mu.Unlock()
	if after != before {
		t.Errorf("a second report of a revoked PAT made %d events", after-before)
	}
}

func TestReportBadBodies(t *testing.T) {
	f := newFixture(t, -1)
	pat, _ := f.newPAT(t, store.KindPAT)
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"token":"x"},`, leak.MaxReports+1), ",") + "]"
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"token":"` + pat + `"}`, 400, "JSON array"},
		{`[]`, 400, "at least one"},
		{`null`, 400, "JSON array"},
		{`[{"type":"x"}]`, 400, `"field":"[0].token"`},
		{`[{"token":"a"},{"token":"  "}]`, 400, `"field":"[1].token"`},
		{`[{"token":1}]`, 400, `token`},
		{`[{"token":"` + pat + `"`, 400, "malformed JSON"},
		{`[{"token":"` + pat + `"}] []`, 400, "single JSON array"},
		{many, 400, "at most 100"},
		{`[{"token":"` + strings.Repeat("a", 70000) + `"}]`, 413, "too large"},
		{`[{"token":"a","url":"` + strings.Repeat("u", leak.MaxURLLen+1) + `"}]`, 400, `"field":"[0].url"`},
	} {
		status, body, _ := f.post(t, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%.60s: %d %s, want %d with %q", c.body, status, body, c.status, c.want)
		}
		if strings.Contains(body, pat) {
			t.Errorf("%.60s: the error echoes the token: %s", c.body, body)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/leaks", strings.NewReader(report(pat)))
	r.Header.Set("Content-Type", "text/plain")
	if err := f.rp.Serve(httptest.NewRecorder(), r, leak.Request{}); apierr.For(err).Status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %v", err)
	}
	w := httptest.NewRecorder()
	if err := f.rp.Serve(w, httptest.NewRequest(http.MethodGet, "/leaks", nil), leak.Request{}); apierr.For(err).Status != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET: %v", err)
	}
	if _, err := f.St.LookupToken(context.Background(), token.Hash(pat)); err != nil {
		t.Errorf("a refused report revoked the token: %v", err)
	}
}

func TestReportRateLimited(t *testing.T) {
	f := newFixture(t, 3)
	fake, _ := token.NewPAT()
	for i := range 3 {
		if status, body, _ := f.post(t, report(fake)); status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	status, body, h := f.post(t, report(fake))
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %s %v", status, body, h)
	}
	f.Clk.Advance(time.Minute)
	if status, body, _ := f.post(t, report(fake)); status != http.StatusOK {
		t.Fatalf("after a minute: %d %s", status, body)
	}
}

// Members the partner format may add are ignored; a batch acknowledges
// each entry in order, a token reported twice acted on once.
func TestReportBatch(t *testing.T) {
	f := newFixture(t, -1)
	pat, _ := f.newPAT(t, store.KindPAT)
	fake, _ := token.NewPAT()
	body := `[{"token":"` + pat + `","type":"a","url":"u","source":"commit","new_member":{"x":1}},` +
		`{"token":"` + fake + `","type":"b"},{"token":"` + pat + `","type":"c"}]`
	status, got, _ := f.post(t, body)
	var acks []leak.Ack
	if err := json.Unmarshal([]byte(got), &acks); status != http.StatusOK || err != nil || len(acks) != 3 {
		t.Fatalf("%d %s (%v)", status, got, err)
	}
	for i, want := range []struct{ tok, typ string }{{pat, "a"}, {fake, "b"}, {pat, "c"}} {
		if acks[i].TokenHash != store.TokenHash(token.Hash(want.tok)).String() || acks[i].TokenType != want.typ {
			t.Errorf("ack %d: %+v", i, acks[i])
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 1 {
		t.Errorf("%d events for one PAT reported twice", len(f.events))
	}
}

// TestReportReplacedClientSecret: the secret a rotation replaced still
// works during its overlap, so a report of it switches the key off like
// a report of the current one; once the overlap has ended it changes
// nothing.
func TestReportReplacedClientSecret(t *testing.T) {
	f := newFixture(t, -1)
	ctx := context.Background()
	c := f.NewClient(t, oauthclient.NewClient{})
	if _, err := f.Clients.RotateSecret(ctx, c.ClientID, time.Hour); err != nil {
		t.Fatal(err)
	}
	ended := f.NewClient(t, oauthclient.NewClient{Name: "ended"})
	if _, err := f.Clients.RotateSecret(ctx, ended.ClientID, 0); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{c.ClientSecret, ended.ClientSecret} {
		if status, body, _ := f.post(t, report(tok)); status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
	}
	if f.Stored(t, c.ClientID).Enabled {
		t.Error("the key whose replaced (still working) secret leaked is still on")
	}
	if !f.Stored(t, ended.ClientID).Enabled {
		t.Error("a report of a secret that no longer works switched its key off")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var leaked []events.Event
	for _, e := range f.events {
		if e.Type == events.TokenReportedLeaked {
			leaked = append(leaked, e)
		}
	}
	if len(leaked) != 1 || leaked[0].Subject.ID != c.ClientID ||
		leaked[0].HashedToken != store.TokenHash(token.Hash(c.ClientSecret)).String() || leaked[0].Data["action"] != "switched_off" {
		t.Errorf("token.reported_leaked events: %+v", leaked)
	}
}

// TestReportReplacedPAT: a reported PAT secret that a rotation replaced
// (still in its overlap) revokes the token, and the event names the
// secret reported, as the answer does, not the token's current one.
func TestReportReplacedPAT(t *testing.T) {
	f := newFixture(t, -1)
	ctx := context.Background()
	old, rec := f.newPAT(t, store.KindPAT)
	fresh, _ := token.NewPAT()
	now := f.Clk.Now()
	if _, err := f.St.RotateToken(ctx, rec.Owner, rec.ID, token.Hash(fresh), now, now.Add(time.Hour), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := f.post(t, report(old)); status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	if _, err := f.St.LookupToken(ctx, token.Hash(fresh)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the token whose replaced secret leaked is still stored: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 1 || f.events[0].Type != events.TokenReportedLeaked ||
		f.events[0].HashedToken != store.TokenHash(token.Hash(old)).String() {
		t.Errorf("events: %+v", f.events)
	}
}
