package storetest

import (
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// ---- rotation (RotateToken, previous secrets) ----

var rotateTests = []test{
	{name: "Overlap", timed: testRotateOverlap},
	{name: "Again", timed: testRotateAgain},
	{name: "AtOnce", run: testRotateAtOnce},
	{name: "Keeps", run: testRotateKeeps},
	{name: "Events", run: testRotateEvents},
	{name: "Missing", run: testRotateMissing},
	{name: "HashInUse", run: testRotateHashInUse},
	{name: "Delete", run: testRotateDelete},
	{name: "Bounded", run: testRotateBounded},
	{name: "CreateWithPrevious", run: testCreateWithPrevious},
	{name: "ExpiresBy", run: testRotateExpiresBy},
}

// testRotateExpiresBy: expiresBy bounds the expiry of a token that never
// expires or expires later (the token policy's maximum holds for the new
// secret), and leaves one that expires sooner as it is.
func testRotateExpiresBy(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	at := now()
	by := at.Add(24 * time.Hour)
	for _, c := range []struct {
		label         string
		expires, want time.Time
	}{
		{"Never", time.Time{}, by},
		{"Later", at.Add(48 * time.Hour), by},
		{"Sooner", at.Add(time.Hour), at.Add(time.Hour)},
	} {
		tok := newToken("alice", c.label)
		tok.ExpiresAt = c.expires
		must(t, s.CreateToken(t.Context(), tok, 0))
		got, err := s.RotateToken(t.Context(), "alice", tok.ID, newHash(), at, at, by)
		must(t, err)
		stored, err := s.GetToken(t.Context(), "alice", tok.ID)
		must(t, err)
		if !got.ExpiresAt.Equal(c.want) || !stored.ExpiresAt.Equal(c.want) {
			t.Fatalf("%s: rotated with expiresBy %v: expires_at %v (stored %v), want %v", c.label, by, got.ExpiresAt, stored.ExpiresAt, c.want)
		}
	}
	// A secret replaced earlier with a long overlap ends with the token.
	tok := newToken("alice", "Overlap")
	must(t, s.CreateToken(t.Context(), tok, 0))
	first := newHash()
	_, err := s.RotateToken(t.Context(), "alice", tok.ID, first, at, at.Add(72*time.Hour), time.Time{})
	must(t, err)
	got, err := s.RotateToken(t.Context(), "alice", tok.ID, newHash(), at, at.Add(48*time.Hour), by)
	must(t, err)
	if len(got.Previous) != 2 {
		t.Fatalf("previous secrets %+v, want two", got.Previous)
	}
	for _, p := range got.Previous {
		if p.Until.After(by) {
			t.Fatalf("a previous secret works until %v, past the token's bounded expiry %v", p.Until, by)
		}
	}
	assertPrevious(t, s, tok.Hash, tok, by)
	checkClean(t, s)
}

// testCreateWithPrevious: a token created with previous secrets (an
// import) is found by them until their end.
func testCreateWithPrevious(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := newToken("alice", "Work")
	until := now().Add(time.Hour)
	tok.Previous = []store.PreviousSecret{{Hash: newHash(), Until: until}}
	must(t, s.CreateToken(t.Context(), tok, 0))
	assertPrevious(t, s, tok.Previous[0].Hash, tok, until)
	assertCurrent(t, s, tok.Hash, tok)
	other := newToken("alice", "Home")
	other.Hash = tok.Previous[0].Hash
	if err := s.CreateToken(t.Context(), other, 0); err == nil {
		t.Fatal("CreateToken with the previous hash of another token succeeded")
	}
	checkClean(t, s)
}

func newHash() store.TokenHash {
	var h store.TokenHash
	rand.Read(h[:])
	return h
}

// assertGone checks that h is found no more.
func assertGone(t *testing.T, s store.Store, h store.TokenHash, why string) {
	t.Helper()
	if _, err := s.LookupToken(t.Context(), h); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: LookupToken = %v, want ErrNotFound", why, err)
	}
}

// assertPrevious checks that h finds tok as a previous secret ending at until.
func assertPrevious(t *testing.T, s store.Store, h store.TokenHash, tok store.Token, until time.Time) {
	t.Helper()
	g := lookup(t, s, h)
	if g.Token.ID != tok.ID || g.Token.Hash == h || !g.PreviousUntil.Equal(until) {
		t.Fatalf("LookupToken(previous) = token %s hash %s until %v, want %s until %v", g.Token.ID, g.Token.Hash, g.PreviousUntil, tok.ID, until)
	}
}

// assertCurrent checks that h finds tok by its current secret.
func assertCurrent(t *testing.T, s store.Store, h store.TokenHash, tok store.Token) {
	t.Helper()
	g := lookup(t, s, h)
	if g.Token.ID != tok.ID || g.Token.Hash != h || !g.PreviousUntil.IsZero() {
		t.Fatalf("LookupToken(current) = token %s until %v, want %s with no end", g.Token.ID, g.PreviousUntil, tok.ID)
	}
}

func testRotateOverlap(t *testing.T, open timedOpener) {
	s, clock := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := clock.Now()
	next := newHash()
	until := at.Add(time.Hour)
	got, err := s.RotateToken(t.Context(), "alice", tok.ID, next, at, until, time.Time{})
	must(t, err)
	want := tok
	want.Hash = next
	want.Previous = []store.PreviousSecret{{Hash: tok.Hash, Until: until}}
	assertToken(t, got, want)
	g, err := s.GetToken(t.Context(), "alice", tok.ID)
	must(t, err)
	assertToken(t, g, want)
	assertCurrent(t, s, next, tok)
	assertPrevious(t, s, tok.Hash, tok, until)
	checkClean(t, s)

	clock.Advance(time.Hour - time.Second)
	assertPrevious(t, s, tok.Hash, tok, until)
	clock.Advance(time.Second)
	assertGone(t, s, tok.Hash, "at the end of the overlap")
	assertCurrent(t, s, next, tok)
	checkClean(t, s)
}

func testRotateAgain(t *testing.T, open timedOpener) {
	s, clock := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := clock.Now()
	second, third := newHash(), newHash()
	_, err := s.RotateToken(t.Context(), "alice", tok.ID, second, at, at.Add(time.Hour), time.Time{})
	must(t, err)
	clock.Advance(10 * time.Minute)
	// A second rotation during the overlap: the newest (second) stays
	// usable for its own overlap, the first keeps its end (not extended).
	got, err := s.RotateToken(t.Context(), "alice", tok.ID, third, clock.Now(), clock.Now().Add(2*time.Hour), time.Time{})
	must(t, err)
	if got.Hash != third || len(got.Previous) != 2 {
		t.Fatalf("after the second rotation: %+v", got)
	}
	assertCurrent(t, s, third, tok)
	assertPrevious(t, s, second, tok, clock.Now().Add(2*time.Hour))
	assertPrevious(t, s, tok.Hash, tok, at.Add(time.Hour))
	clock.Advance(50 * time.Minute)
	assertGone(t, s, tok.Hash, "the first secret at its own end")
	assertPrevious(t, s, second, tok, at.Add(10*time.Minute+2*time.Hour))
	assertCurrent(t, s, third, tok)
	// A third rotation drops the ended first secret from the record.
	fourth := newHash()
	got, err = s.RotateToken(t.Context(), "alice", tok.ID, fourth, clock.Now(), clock.Now(), time.Time{})
	must(t, err)
	if len(got.Previous) != 1 || got.Previous[0].Hash != second {
		t.Fatalf("previous after the third rotation = %+v, want only the second secret", got.Previous)
	}
	assertGone(t, s, third, "overlap 0")
	assertPrevious(t, s, second, tok, at.Add(10*time.Minute+2*time.Hour))
	checkClean(t, s)
}

func testRotateAtOnce(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := now()
	next := newHash()
	got, err := s.RotateToken(t.Context(), "alice", tok.ID, next, at, at, time.Time{})
	must(t, err)
	if len(got.Previous) != 0 {
		t.Fatalf("overlap 0 kept %+v", got.Previous)
	}
	assertGone(t, s, tok.Hash, "overlap 0")
	assertCurrent(t, s, next, tok)
	checkClean(t, s)
}

// testRotateKeeps: an update keeps the previous secrets and may not
// change them.
func testRotateKeeps(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := now()
	until := at.Add(time.Hour)
	_, err := s.RotateToken(t.Context(), "alice", tok.ID, newHash(), at, until, time.Time{})
	must(t, err)
	got, err := s.UpdateToken(t.Context(), "alice", tok.ID, func(t *store.Token) error { t.Label = "Other"; return nil })
	must(t, err)
	if len(got.Previous) != 1 {
		t.Fatalf("update lost the previous secret: %+v", got)
	}
	assertPrevious(t, s, tok.Hash, tok, until)
	_, err = s.UpdateToken(t.Context(), "alice", tok.ID, func(t *store.Token) error { t.Previous = nil; return nil })
	if err == nil {
		t.Fatal("an update that drops the previous secrets was accepted")
	}
	assertPrevious(t, s, tok.Hash, tok, until)
}

func testRotateEvents(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	rec, _ := subscribe(t, s)
	at := now()
	next := newHash()
	_, err := s.RotateToken(t.Context(), "alice", tok.ID, next, at, at.Add(time.Hour), time.Time{})
	must(t, err)
	got := rec.take()
	for _, h := range []store.TokenHash{tok.Hash, next} {
		if !slices.Contains(got, store.TokenEvent(h)) {
			t.Fatalf("events after RotateToken = %+v, want one for %s", got, h)
		}
	}
	// A change of the token reaches the cached decisions of its previous
	// secret too.
	_, err = s.UpdateToken(t.Context(), "alice", tok.ID, func(t *store.Token) error { t.Enabled = false; return nil })
	must(t, err)
	rec.assertGot(t, "UpdateToken of a rotated token", store.TokenEvent(tok.Hash))
	_, err = s.DeleteToken(t.Context(), "alice", tok.ID)
	must(t, err)
	rec.assertGot(t, "DeleteToken of a rotated token", store.TokenEvent(tok.Hash))
}

func testRotateMissing(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	next := newHash()
	at := now()
	if _, err := s.RotateToken(t.Context(), "alice", "nope", next, at, at.Add(time.Hour), time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RotateToken(missing) = %v, want ErrNotFound", err)
	}
	assertGone(t, s, next, "the new hash of a failed rotation")
	checkClean(t, s)
}

func testRotateHashInUse(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	other := createToken(t, s, "alice", "Home")
	at := now()
	if _, err := s.RotateToken(t.Context(), "alice", tok.ID, other.Hash, at, at.Add(time.Hour), time.Time{}); err == nil {
		t.Fatal("RotateToken to another token's hash succeeded")
	}
	assertCurrent(t, s, tok.Hash, tok)
	assertCurrent(t, s, other.Hash, other)
	checkClean(t, s)
}

func testRotateDelete(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := now()
	next := newHash()
	_, err := s.RotateToken(t.Context(), "alice", tok.ID, next, at, at.Add(time.Hour), time.Time{})
	must(t, err)
	_, err = s.DeleteToken(t.Context(), "alice", tok.ID)
	must(t, err)
	assertGone(t, s, tok.Hash, "the previous secret of a deleted token")
	assertGone(t, s, next, "a deleted token")
	checkClean(t, s)
}

func testRotateBounded(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	tok := createToken(t, s, "alice", "Work")
	at := now()
	hashes := []store.TokenHash{tok.Hash}
	var got store.Token
	for i := range store.MaxPreviousSecrets + 1 {
		next := newHash()
		var err error
		got, err = s.RotateToken(t.Context(), "alice", tok.ID, next, at, at.Add(time.Duration(i+1)*time.Hour), time.Time{})
		must(t, err)
		hashes = append(hashes, next)
	}
	if len(got.Previous) != store.MaxPreviousSecrets {
		t.Fatalf("%d previous secrets kept, want %d", len(got.Previous), store.MaxPreviousSecrets)
	}
	assertGone(t, s, hashes[0], "the previous secret that ends first, beyond the bound")
	assertPrevious(t, s, hashes[1], tok, at.Add(2*time.Hour))
	checkClean(t, s)
}

// checkClean checks that Check finds nothing to report.
func checkClean(t *testing.T, s store.Store) {
	t.Helper()
	rep, err := s.Check(t.Context(), false)
	must(t, err)
	if len(rep.Problems) != 0 {
		t.Fatalf("Check = %+v", rep)
	}
}
