package lastuse

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/boltstore"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openAt(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// seed gives user alice the tokens ids in st.
func seed(t *testing.T, st store.Store, ids ...string) {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{Name: "alice", PasswordHash: "x", TokenLogin: true, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		tok := store.Token{ID: id, Owner: "alice", Kind: store.KindPAT, Enabled: true, CreatedAt: t0}
		tok.Hash[0], tok.Hash[1] = byte(i), 0xAA
		if err := st.CreateToken(ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// newEnv returns a store at a known path with alice's tokens "a" and "b",
// and a Recorder writing to it.
func newEnv(t *testing.T) (*Recorder, *boltstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tg.db")
	st := openAt(t, path)
	seed(t, st, "a", "b")
	return New(st), st, path
}

func use(id string, at time.Time, ip string) store.LastUse {
	return store.LastUse{Owner: "alice", TokenID: id, At: at, IP: ip}
}

// stored returns alice's tokens' last uses as the store has them.
func stored(t *testing.T, st store.Store) map[string]store.LastUse {
	t.Helper()
	ts, err := st.ListTokens(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.LastUse{}
	for _, tok := range ts {
		out[tok.ID] = use(tok.ID, tok.LastUsedAt, tok.LastUsedIP)
	}
	return out
}

func wantUse(t *testing.T, what string, got map[string]store.LastUse, id string, at time.Time, ip string) {
	t.Helper()
	u, ok := got[id]
	if !ok || !u.At.Equal(at) || u.IP != ip {
		t.Fatalf("%s: use of %s = %+v (present %v), want %v from %q", what, id, u, ok, at, ip)
	}
}

func TestRecordKeepsNewest(t *testing.T) {
	tests := []struct {
		name  string
		order []store.LastUse
		at    time.Time
		ip    string
	}{
		{"newer last", []store.LastUse{use("a", t0, "192.0.2.1"), use("a", t0.Add(time.Second), "192.0.2.2")}, t0.Add(time.Second), "192.0.2.2"},
		{"older last", []store.LastUse{use("a", t0.Add(time.Second), "192.0.2.2"), use("a", t0, "192.0.2.1")}, t0.Add(time.Second), "192.0.2.2"},
		{"same time keeps first", []store.LastUse{use("a", t0, "192.0.2.1"), use("a", t0, "192.0.2.2")}, t0, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := newEnv(t)
			for _, u := range tt.order {
				r.Record(u)
			}
			r.Record(use("b", t0.Add(-time.Hour), ""))
			r.Record(store.LastUse{Owner: "bob", TokenID: "a", At: t0.Add(time.Hour)})

			p := r.Pending("alice")
			if len(p) != 2 {
				t.Fatalf("Pending(alice) = %+v, want tokens a and b", p)
			}
			wantUse(t, "pending", p, "a", tt.at, tt.ip)
			wantUse(t, "pending", p, "b", t0.Add(-time.Hour), "")
			if p := r.Pending("bob"); len(p) != 1 {
				t.Fatalf("Pending(bob) = %+v", p)
			}
			if p := r.Pending("nobody"); len(p) != 0 {
				t.Fatalf("Pending(nobody) = %+v", p)
			}
		})
	}
}

func TestFlushWritesToStore(t *testing.T) {
	ctx := context.Background()
	r, st, _ := newEnv(t)
	r.Record(use("a", t0.Add(time.Minute), "192.0.2.1"))
	r.Record(use("b", t0.Add(2*time.Minute), "2001:db8::1"))
	r.Record(use("gone", t0, "192.0.2.9")) // a deleted token is ignored

	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := stored(t, st)
	wantUse(t, "stored", got, "a", t0.Add(time.Minute), "192.0.2.1")
	wantUse(t, "stored", got, "b", t0.Add(2*time.Minute), "2001:db8::1")
	if p := r.Pending("alice"); len(p) != 0 {
		t.Fatalf("uses still pending after a flush: %+v", p)
	}

	// An older use flushed later does not overwrite the newer one.
	r.Record(use("a", t0, "203.0.113.1"))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantUse(t, "after an older use", stored(t, st), "a", t0.Add(time.Minute), "192.0.2.1")

	// Nothing queued: no store operation at all.
	before := st.Ops()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := st.Ops() - before; d != 0 {
		t.Fatalf("empty flush made %d store operations", d)
	}
}

func TestFlushFailureKeepsUses(t *testing.T) {
	ctx := context.Background()
	r, st, path := newEnv(t)
	r.Record(use("a", t0.Add(time.Minute), "192.0.2.1"))
	r.Record(use("b", t0.Add(time.Minute), "192.0.2.2"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush to a closed store succeeded")
	}
	p := r.Pending("alice")
	wantUse(t, "after failed flush", p, "a", t0.Add(time.Minute), "192.0.2.1")
	wantUse(t, "after failed flush", p, "b", t0.Add(time.Minute), "192.0.2.2")

	// A use newer than the requeued one still wins; an older one does not.
	r.Record(use("a", t0.Add(2*time.Minute), "192.0.2.3"))
	r.Record(use("b", t0, "192.0.2.4"))
	if err := r.Flush(ctx); err == nil {
		t.Fatal("second flush to a closed store succeeded")
	}

	// The store comes back: the queued uses are written.
	reopened := openAt(t, path)
	r.store = reopened
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := stored(t, reopened)
	wantUse(t, "after recovery", got, "a", t0.Add(2*time.Minute), "192.0.2.3")
	wantUse(t, "after recovery", got, "b", t0.Add(time.Minute), "192.0.2.2")
	if p := r.Pending("alice"); len(p) != 0 {
		t.Fatalf("uses still pending after a successful flush: %+v", p)
	}
}

func TestRunFlushesOnCancel(t *testing.T) {
	r, st, _ := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	core, logs := observer.New(zap.InfoLevel)
	go func() {
		defer close(done)
		// An interval that never ticks during the test: only the final
		// flush can write.
		r.Run(ctx, time.Hour, zap.New(core))
	}()
	r.Record(use("a", t0.Add(time.Minute), "192.0.2.1"))
	cancel()
	<-done

	if logs.Len() != 0 || r.Failures() != 0 {
		t.Fatalf("Run reported errors: %v (%d failures)", logs.All(), r.Failures())
	}
	wantUse(t, "after Run returned", stored(t, st), "a", t0.Add(time.Minute), "192.0.2.1")
	if p := r.Pending("alice"); len(p) != 0 {
		t.Fatalf("uses still pending after Run returned: %+v", p)
	}
}

func TestRunReportsFinalFlushError(t *testing.T) {
	r, st, _ := newEnv(t)
	r.Record(use("a", t0.Add(time.Minute), "192.0.2.1"))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	core, logs := observer.New(zap.InfoLevel)
	r.Run(ctx, time.Hour, zap.New(core))
	if logs.FilterLevelExact(zap.WarnLevel).Len() != 1 || r.Failures() != 1 {
		t.Fatalf("Run logged %v and counted %d failures, want one warning and 1", logs.All(), r.Failures())
	}
	if _, ok := r.Pending("alice")["a"]; !ok {
		t.Fatal("the use was lost after the failed final flush")
	}
}

// downStore is a real store whose RecordLastUse fails while down is set
// (the store being unreachable, without stopping a server).
type downStore struct {
	store.Store
	down bool
}

func (d *downStore) RecordLastUse(ctx context.Context, uses []store.LastUse) error {
	if d.down {
		return errors.New("store unreachable")
	}
	return d.Store.RecordLastUse(ctx, uses)
}

// TestFailedFlushesLoggedOncePerStreak: while the store is down every
// flush fails and is counted, but only the first is logged; when it is
// back one line says so, with how many flushes failed.
func TestFailedFlushesLoggedOncePerStreak(t *testing.T) {
	_, st, _ := newEnv(t)
	ds := &downStore{Store: st, down: true}
	r := New(ds)
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	ctx := context.Background()
	for i := range 5 {
		r.Record(use("a", t0.Add(time.Duration(i)*time.Minute), "192.0.2.1"))
		r.flushLogged(ctx, log)
	}
	if got := logs.FilterLevelExact(zap.WarnLevel).Len(); got != 1 {
		t.Fatalf("%d warnings for one streak of 5 failed flushes, want 1: %v", got, logs.All())
	}
	if r.Failures() != 5 {
		t.Fatalf("Failures() = %d, want 5", r.Failures())
	}
	ds.down = false
	r.flushLogged(ctx, log)
	back := logs.FilterMessageSnippet("works again").All()
	if len(back) != 1 || back[0].ContextMap()["failures"] != uint64(5) {
		t.Fatalf("recovery logged as %v, want one line with failures 5", back)
	}
	wantUse(t, "after recovery", stored(t, st), "a", t0.Add(4*time.Minute), "192.0.2.1")
	// A new streak is logged again, and the count goes on.
	ds.down = true
	r.Record(use("b", t0, "192.0.2.2"))
	r.flushLogged(ctx, log)
	r.flushLogged(ctx, log)
	if got := logs.FilterLevelExact(zap.WarnLevel).Len(); got != 2 || r.Failures() != 7 {
		t.Fatalf("second streak: %d warnings (want 2), %d failures (want 7)", got, r.Failures())
	}
}

// heldUses is the real store with RecordLastUse held until released, to
// look at the Recorder while a flush is being written.
type heldUses struct {
	store.LastUses
	writing, release chan struct{}
}

func (h *heldUses) RecordLastUse(ctx context.Context, uses []store.LastUse) error {
	close(h.writing)
	<-h.release
	return h.LastUses.RecordLastUse(ctx, uses)
}

// A use being written is still shown: a page read between taking the batch
// and the store having it must not say "no access yet".
func TestPendingShowsUsesBeingWritten(t *testing.T) {
	_, st, _ := newEnv(t)
	held := &heldUses{LastUses: st, writing: make(chan struct{}), release: make(chan struct{})}
	r := New(held)
	r.Record(use("a", t0.Add(time.Minute), "192.0.2.1"))
	done := make(chan error)
	go func() { done <- r.Flush(context.Background()) }()
	<-held.writing
	wantUse(t, "during the flush", r.Pending("alice"), "a", t0.Add(time.Minute), "192.0.2.1")
	close(held.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(r.Pending("alice")); n != 0 {
		t.Errorf("%d uses pending after the flush", n)
	}
	wantUse(t, "in the store", stored(t, st), "a", t0.Add(time.Minute), "192.0.2.1")
}

// TestOnWritten: the hook gets each batch the store took, and no batch
// whose write failed.
func TestOnWritten(t *testing.T) {
	r, st, _ := newEnv(t)
	var got [][]store.LastUse
	r.OnWritten(func(_ context.Context, b []store.LastUse) { got = append(got, b) })
	r.Record(use("a", t0, "192.0.2.1"))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 1 || got[0][0].IP != "192.0.2.1" {
		t.Fatalf("hook got %+v", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r.Record(use("b", t0, "192.0.2.2"))
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("a flush to a closed store worked")
	}
	if len(got) != 1 {
		t.Errorf("the hook was told of a batch the store did not take: %+v", got)
	}
}

// addresses returns alice's token id's recent addresses as the store has
// them.
func addresses(t *testing.T, st store.Store, id string) []store.AddressUse {
	t.Helper()
	tok, err := st.GetToken(context.Background(), "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	return tok.RecentAddresses
}

func wantAddresses(t *testing.T, what string, got []store.AddressUse, want ...store.AddressUse) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].IP == want[i].IP && got[i].LastUsedAt.Equal(want[i].LastUsedAt) && got[i].Host == want[i].Host
	}
	if !ok {
		t.Fatalf("%s: recent addresses\n got %+v\nwant %+v", what, got, want)
	}
}

// TestTwoAddressesInOneInterval: a token used from two addresses between
// two flushes has both in its recent addresses, the newer as last use.
func TestTwoAddressesInOneInterval(t *testing.T) {
	ctx := context.Background()
	r, st, _ := newEnv(t)
	r.Record(use("a", t0, "192.0.2.1"))
	r.Record(use("a", t0.Add(time.Second), "2001:db8::1"))
	r.Record(use("a", t0.Add(-time.Second), "192.0.2.1")) // older, same address: changes nothing

	// Before the flush, a listing overlays both.
	ts, err := st.ListTokens(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	r.Apply("alice", ts)
	want := []store.AddressUse{{IP: "2001:db8::1", LastUsedAt: t0.Add(time.Second)}, {IP: "192.0.2.1", LastUsedAt: t0}}
	for _, tok := range ts {
		if tok.ID == "a" {
			wantAddresses(t, "applied", tok.RecentAddresses, want...)
		}
	}

	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantUse(t, "stored", stored(t, st), "a", t0.Add(time.Second), "2001:db8::1")
	wantAddresses(t, "stored", addresses(t, st, "a"), want...)
	wantAddresses(t, "token b", addresses(t, st, "b"))
}

// TestAddressesBoundedPerToken: a token used from thousands of addresses
// keeps only the most recent few queued, and those are what is written.
func TestAddressesBoundedPerToken(t *testing.T) {
	ctx := context.Background()
	r, st, _ := newEnv(t)
	const n = 5000
	for i := range n {
		// Out of order: the newest ones are not the last recorded.
		j := (i * 7919) % n
		r.Record(use("a", t0.Add(time.Duration(j)*time.Millisecond), fmt.Sprintf("10.%d.%d.%d", j>>16, (j>>8)&255, j&255)))
	}
	r.mu.Lock()
	queued := len(r.pending[key{"alice", "a"}])
	r.mu.Unlock()
	if queued != MaxAddresses {
		t.Fatalf("%d uses queued for one token, want %d", queued, MaxAddresses)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var want []store.AddressUse
	for j := n - 1; j >= n-store.MaxRecentAddresses; j-- {
		want = append(want, store.AddressUse{IP: fmt.Sprintf("10.%d.%d.%d", j>>16, (j>>8)&255, j&255), LastUsedAt: t0.Add(time.Duration(j) * time.Millisecond)})
	}
	wantAddresses(t, "stored", addresses(t, st, "a"), want...)
	wantUse(t, "stored", stored(t, st), "a", want[0].LastUsedAt, want[0].IP)
}

// TestThiefAmongFleetWritten: one use from an address among a fleet of
// more addresses than the store keeps, all after it within one interval,
// is still in the batch written (so the new-address events see it), while
// the store keeps the newest five.
func TestThiefAmongFleetWritten(t *testing.T) {
	ctx := context.Background()
	r, st, _ := newEnv(t)
	var batch []store.LastUse
	r.OnWritten(func(_ context.Context, b []store.LastUse) { batch = b })
	r.Record(use("a", t0, "203.0.113.66"))
	const fleet = 20
	for round := range 3 {
		for i := range fleet {
			r.Record(use("a", t0.Add(time.Duration(1+round*fleet+i)*time.Millisecond), fmt.Sprintf("10.0.0.%d", i)))
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(batch) != fleet+1 || !slices.ContainsFunc(batch, func(u store.LastUse) bool { return u.IP == "203.0.113.66" }) {
		t.Errorf("written batch of %d uses, want the fleet's %d and the thief's", len(batch), fleet)
	}
	if n := len(addresses(t, st, "a")); n != store.MaxRecentAddresses {
		t.Errorf("%d recent addresses stored, want %d", n, store.MaxRecentAddresses)
	}
}
