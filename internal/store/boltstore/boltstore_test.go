package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "tg.db"), Options{Now: clock.Now})
	})
}

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "tokengate")
	path := filepath.Join(dir, "tg.db")
	openAt(t, path, Options{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s has mode %o, want %o", c.path, got, c.want)
		}
	}
}

func TestOpenLockedTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	openAt(t, path, Options{})
	start := time.Now()
	s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if want := "embedded store " + path + " is locked by another process"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %q, want it to contain %q", err, want)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Open waited %s despite a 100ms timeout", waited)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	s := openAt(t, path, Options{})
	tok := createAliceToken(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Options{})
	g, err := s.LookupToken(t.Context(), tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if g.Token.ID != tok.ID || g.Owner.Name != "alice" {
		t.Fatalf("after reopen LookupToken = %+v, want token %s of alice", g, tok.ID)
	}
}

func TestClosedStoreFails(t *testing.T) {
	s := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetUser(t.Context(), "alice")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser on a closed store = %v, want a store failure", err)
	}
}

func TestUpdateMayNotChangeIdentity(t *testing.T) {
	s := openTemp(t)
	tok := createAliceToken(t, s)
	ctx := t.Context()
	_, err := s.UpdateToken(ctx, "alice", tok.ID, func(t *store.Token) error {
		t.Hash[0]++
		return nil
	})
	if err == nil {
		t.Fatal("UpdateToken changed the hash")
	}
	if _, err := s.LookupToken(ctx, tok.Hash); err != nil {
		t.Fatalf("token lost after refused update: %v", err)
	}
	_, err = s.UpdateUser(ctx, "alice", func(u *store.User) error {
		u.Name = "mallory"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateUser renamed the user")
	}
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("user lost after refused rename: %v", err)
	}
}

func TestCheckRepairs(t *testing.T) {
	cases := []struct {
		name     string
		damage   func(tx *bolt.Tx, tok store.Token) error
		problems int
	}{
		{"DanglingIndexEntry", func(tx *bolt.Tx, _ store.Token) error {
			h := randomHash()
			return tx.Bucket(bucketIndex).Put(h[:], indexValue("alice", "ghost"))
		}, 1},
		{"IndexEntryWithWrongHash", func(tx *bolt.Tx, tok store.Token) error {
			h := randomHash()
			return tx.Bucket(bucketIndex).Put(h[:], indexValue("alice", tok.ID))
		}, 1},
		{"MissingIndexEntry", func(tx *bolt.Tx, tok store.Token) error {
			return tx.Bucket(bucketIndex).Delete(tok.Hash[:])
		}, 1},
		{"OrphanTokens", func(tx *bolt.Tx, _ store.Token) error {
			return tx.Bucket(bucketUsers).Delete([]byte("alice"))
		}, 2}, // the orphan bucket and the index entry pointing into it
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			tok := createAliceToken(t, s)
			if err := s.db.Update(func(tx *bolt.Tx) error { return tc.damage(tx, tok) }); err != nil {
				t.Fatal(err)
			}
			assertCheck(t, s, false, tc.problems, 0)
			assertCheck(t, s, false, tc.problems, 0) // reporting repaired nothing

			var events []store.Event
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if err := s.Subscribe(ctx, func(e store.Event) { events = append(events, e) }); err != nil {
				t.Fatal(err)
			}
			assertCheck(t, s, true, tc.problems, tc.problems)
			if len(events) != 1 || events[0].Kind != store.EventReset {
				t.Fatalf("events after repair = %+v, want one EventReset", events)
			}
			assertCheck(t, s, false, 0, 0)
		})
	}
}

func TestCheckRepairRestoresLookup(t *testing.T) {
	s := openTemp(t)
	tok := createAliceToken(t, s)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndex).Delete(tok.Hash[:])
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupToken(t.Context(), tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LookupToken without index entry = %v, want ErrNotFound", err)
	}
	assertCheck(t, s, true, 1, 1)
	if _, err := s.LookupToken(t.Context(), tok.Hash); err != nil {
		t.Fatalf("LookupToken after repair: %v", err)
	}
}

func TestOpsCountsStoreCalls(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	steps := []struct {
		name string
		call func(ctx context.Context) error
		want uint64 // increase of Ops
	}{
		{"CreateUser", func(ctx context.Context) error { return s.CreateUser(ctx, store.User{Name: "alice"}) }, 1},
		{"GetUser", func(ctx context.Context) error { _, err := s.GetUser(ctx, "alice"); return err }, 1},
		{"GetUserMissing", func(ctx context.Context) error { _, err := s.GetUser(ctx, "bob"); return ignoreNotFound(err) }, 1},
		{"LookupToken", func(ctx context.Context) error {
			_, err := s.LookupToken(ctx, randomHash())
			return ignoreNotFound(err)
		}, 1},
		{"CountFailure", func(ctx context.Context) error { _, err := s.CountFailure(ctx, "k", time.Minute); return err }, 1},
		{"Subscribe", func(ctx context.Context) error { return s.Subscribe(ctx, func(store.Event) {}) }, 0},
		{"EmptyLastUseBatch", func(ctx context.Context) error { return s.RecordLastUse(ctx, nil) }, 0},
		{"CreateClient", func(ctx context.Context) error { return s.CreateClient(ctx, store.Client{ID: "app"}) }, 1},
		{"UpdateClient", func(ctx context.Context) error {
			_, err := s.UpdateClient(ctx, "app", func(*store.Client) error { return nil })
			return err
		}, 1},
		{"ListClients", func(ctx context.Context) error { _, err := s.ListClients(ctx); return err }, 1},
		{"DeleteClient", func(ctx context.Context) error { _, err := s.DeleteClient(ctx, "app"); return err }, 1},
		{"GetKeyringMissing", func(ctx context.Context) error {
			_, err := s.GetDocument(ctx, store.DocKeyring)
			return ignoreNotFound(err)
		}, 1},
		{"UpdateKeyring", func(ctx context.Context) error {
			_, err := s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return []byte("k"), nil })
			return err
		}, 1},
		{"Deny", func(ctx context.Context) error {
			return s.Deny(ctx, store.Denial{JTI: "j", Until: time.Now().Add(time.Hour)})
		}, 1},
		{"ListDenied", func(ctx context.Context) error { _, err := s.ListDenied(ctx); return err }, 1},
	}
	for _, step := range steps {
		before := s.Ops()
		if err := step.call(ctx); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := s.Ops() - before; got != step.want {
			t.Errorf("%s added %d to Ops, want %d", step.name, got, step.want)
		}
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	before := s.Ops()
	if _, err := s.GetUser(done, "alice"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetUser with a cancelled context = %v", err)
	}
	if s.Ops() != before {
		t.Error("a call refused for its cancelled context was counted")
	}
}

func TestExpiredFailuresSweptOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	s := openAt(t, path, Options{})
	expired := counter{count: 3, end: time.Now().Add(-time.Second)}.encode()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFailures).Put([]byte("old"), expired)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CountFailure(t.Context(), "live", time.Hour); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path, Options{})
	var keys []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFailures).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "live" {
		t.Fatalf("failure keys after reopen = %v, want [live]", keys)
	}
}

// TestEndedDenialsPruned checks that ended denials do not stay in the
// file: Deny stores none and removes those that have ended, and Open
// removes those that ended while the store was closed.
func TestEndedDenialsPruned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	s := openAt(t, path, Options{})
	ctx := t.Context()
	putDenial(t, s, "ended", time.Now().Add(-time.Second))
	if err := s.Deny(ctx, store.Denial{JTI: "live", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Deny(ctx, store.Denial{JTI: "past", Until: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	assertDeniedKeys(t, s, "live")

	putDenial(t, s, "ended-while-closed", time.Now().Add(-time.Second))
	putDenial(t, s, "ends-soon", time.Now().Add(200*time.Millisecond))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen 300ms later by the store's clock (no real sleep).
	later := time.Now().Add(300 * time.Millisecond)
	s = openAt(t, path, Options{Now: func() time.Time { return later }})
	assertDeniedKeys(t, s, "live")
}

// TestEmptyKeyring checks that an empty document (nil or empty from fn)
// is a keyring, not "none": GetKeyring returns it without ErrNotFound and
// the next fn gets a non-nil empty slice.
func TestEmptyKeyring(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	for _, doc := range [][]byte{nil, {}} {
		got, err := s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return doc, nil })
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("UpdateKeyring(%#v) = %#v, %v; want an empty, non-nil document", doc, got, err)
		}
		got, err = s.GetDocument(ctx, store.DocKeyring)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("GetKeyring after writing %#v = %#v, %v; want an empty, non-nil document", doc, got, err)
		}
		_, err = s.UpdateDocument(ctx, store.DocKeyring, func(current []byte) ([]byte, error) {
			if current == nil {
				t.Error("UpdateKeyring after an empty document passed nil")
			}
			return current, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestDenyEmptyJTI(t *testing.T) {
	s := openTemp(t)
	if err := s.Deny(t.Context(), store.Denial{Until: time.Now().Add(time.Hour)}); err == nil {
		t.Fatal("Deny with an empty jti succeeded")
	}
}

// ---- helpers ----

// putDenial writes a denial directly, bypassing Deny's pruning.
func putDenial(t *testing.T, s *Store, jti string, until time.Time) {
	t.Helper()
	v, err := until.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDenied).Put([]byte(jti), v)
	}); err != nil {
		t.Fatal(err)
	}
}

// assertDeniedKeys checks which jtis the denied bucket holds, ended or not.
func assertDeniedKeys(t *testing.T, s *Store, want ...string) {
	t.Helper()
	var keys []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDenied).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("denied bucket holds %v, want %v", keys, want)
	}
}

func openAt(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "tg.db"), Options{})
}

func randomHash() store.TokenHash {
	var h store.TokenHash
	rand.Read(h[:])
	return h
}

// createAliceToken creates user alice with one token and returns it.
func createAliceToken(t *testing.T, s *Store) store.Token {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	tok := store.Token{
		ID: hex.EncodeToString(id), Owner: "alice", Kind: store.KindPAT,
		Hash: randomHash(), Enabled: true, CreatedAt: time.Now().UTC(),
	}
	if err := s.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	return tok
}

func assertCheck(t *testing.T, s *Store, repair bool, problems, repaired int) {
	t.Helper()
	rep, err := s.Check(t.Context(), repair)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != problems || rep.Repaired != repaired {
		t.Fatalf("Check(repair=%v) = %q, repaired %d; want %d problem(s), %d repaired",
			repair, rep.Problems, rep.Repaired, problems, repaired)
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Open sweeps the sessions that expired while the file was closed, with
// their entries in their users' buckets.
func TestOpenSweepsExpiredSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	at := time.Now().UTC()
	clock := func() time.Time { return at }
	s := openAt(t, path, Options{Now: clock})
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	newSession := func(life time.Duration) store.Session {
		var id store.TokenHash
		rand.Read(id[:])
		sess := store.Session{ID: id, User: "alice", CreatedAt: at, SeenAt: at, ExpiresAt: at.Add(life)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	short, long := newSession(time.Minute), newSession(time.Hour)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	at = at.Add(2 * time.Minute)
	s = openAt(t, path, Options{Now: clock})
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, c := range []struct {
			sess store.Session
			kept bool
		}{{short, false}, {long, true}} {
			rec := tx.Bucket(bucketSessions).Get(c.sess.ID[:]) != nil
			entry := userSessions(tx, "alice").Get(c.sess.ID[:]) != nil
			if rec != c.kept || entry != c.kept {
				t.Errorf("session expiring at %v: record %v, user entry %v; want both %v", c.sess.ExpiresAt, rec, entry, c.kept)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
