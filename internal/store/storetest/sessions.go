package storetest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// ---- sessions ----

var sessionTests = []test{
	{name: "CreateGet", run: testCreateGetSession},
	{name: "CreateExists", run: testCreateSessionExists},
	{name: "CreateUnknownUser", run: testCreateSessionUnknownUser},
	{name: "Touch", run: testTouchSession},
	{name: "Delete", run: testDeleteSession},
	{name: "DeleteUserSessions", run: testDeleteUserSessions},
	{name: "DeleteUser", run: testDeleteUserEndsSessions},
	{name: "Cap", run: testSessionCap},
	{name: "ConcurrentCap", run: testConcurrentSessionCap},
	{name: "NoEvents", run: testSessionsAnnounceNothing},
	{name: "Expiry", timed: testSessionExpiry},
	{name: "ExpiredNotCounted", timed: testExpiredSessionsNotCounted},
}

func testCreateGetSession(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	want := newSession("alice", now())
	want.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) ünïcode"
	must(t, s.CreateSession(t.Context(), want))
	assertSession(t, getSession(t, s, want.ID), want)
	_, err := s.GetSession(t.Context(), newSession("alice", now()).ID)
	assertErr(t, err, store.ErrNotFound)
}

func testCreateSessionExists(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	createUser(t, s, "bob")
	first := createSession(t, s, "alice", now())
	again := first
	again.CSRF = "other"
	assertErr(t, s.CreateSession(t.Context(), again), store.ErrExists)
	bobs := first
	bobs.User = "bob"
	assertErr(t, s.CreateSession(t.Context(), bobs), store.ErrExists)
	assertSession(t, getSession(t, s, first.ID), first)
	if n := deleteUserSessions(t, s, "bob"); n != 0 {
		t.Fatalf("bob has %d sessions after refused creations, want 0", n)
	}
}

func testCreateSessionUnknownUser(t *testing.T, open opener) {
	s := open(t)
	sess := newSession("nobody", now())
	assertErr(t, s.CreateSession(t.Context(), sess), store.ErrNotFound)
	_, err := s.GetSession(t.Context(), sess.ID)
	assertErr(t, err, store.ErrNotFound)
}

func testTouchSession(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	want := createSession(t, s, "alice", now())
	ctx := t.Context()

	want.SeenAt = want.SeenAt.Add(time.Minute)
	must(t, s.TouchSession(ctx, want.ID, want.SeenAt))
	assertSession(t, getSession(t, s, want.ID), want)
	// Never backwards, and an equal time changes nothing.
	must(t, s.TouchSession(ctx, want.ID, want.SeenAt.Add(-30*time.Second)))
	must(t, s.TouchSession(ctx, want.ID, want.SeenAt))
	assertSession(t, getSession(t, s, want.ID), want)

	assertErr(t, s.TouchSession(ctx, newSession("alice", now()).ID, now()), store.ErrNotFound)
}

func testDeleteSession(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	gone := createSession(t, s, "alice", now())
	kept := createSession(t, s, "alice", now())
	ctx := t.Context()

	must(t, s.DeleteSession(ctx, gone.ID))
	_, err := s.GetSession(ctx, gone.ID)
	assertErr(t, err, store.ErrNotFound)
	assertErr(t, s.DeleteSession(ctx, gone.ID), store.ErrNotFound)
	assertErr(t, s.TouchSession(ctx, gone.ID, now()), store.ErrNotFound)
	assertSession(t, getSession(t, s, kept.ID), kept)
	// The id of a deleted session may be used again.
	must(t, s.CreateSession(ctx, gone))
	assertSession(t, getSession(t, s, gone.ID), gone)
}

func testDeleteUserSessions(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	createUser(t, s, "bob")
	var alices []store.Session
	for range 3 {
		alices = append(alices, createSession(t, s, "alice", now()))
	}
	bobs := createSession(t, s, "bob", now())

	if n := deleteUserSessions(t, s, "alice"); n != 3 {
		t.Fatalf("DeleteUserSessions(alice) = %d, want 3", n)
	}
	for _, sess := range alices {
		_, err := s.GetSession(t.Context(), sess.ID)
		assertErr(t, err, store.ErrNotFound)
	}
	assertSession(t, getSession(t, s, bobs.ID), bobs)
	if n := deleteUserSessions(t, s, "alice"); n != 0 {
		t.Fatalf("DeleteUserSessions(alice) again = %d, want 0", n)
	}
	if n := deleteUserSessions(t, s, "nobody"); n != 0 {
		t.Fatalf("DeleteUserSessions(nobody) = %d, want 0", n)
	}
	// The user and their tokens are untouched.
	getUser(t, s, "alice")
	createSession(t, s, "alice", now())
}

func testDeleteUserEndsSessions(t *testing.T, open opener) {
	f := setup(t, open)
	createUser(t, f.s, "bob")
	alices := createSession(t, f.s, "alice", now())
	bobs := createSession(t, f.s, "bob", now())
	ctx := t.Context()

	must(t, f.s.DeleteUser(ctx, "alice"))
	_, err := f.s.GetSession(ctx, alices.ID)
	assertErr(t, err, store.ErrNotFound)
	assertErr(t, f.s.TouchSession(ctx, alices.ID, now()), store.ErrNotFound)
	// A new user of the same name does not inherit them.
	createUser(t, f.s, "alice")
	_, err = f.s.GetSession(ctx, alices.ID)
	assertErr(t, err, store.ErrNotFound)
	if n := deleteUserSessions(t, f.s, "alice"); n != 0 {
		t.Fatalf("the new alice has %d sessions, want 0", n)
	}
	assertErr(t, f.s.DeleteSession(ctx, alices.ID), store.ErrNotFound)
	assertSession(t, getSession(t, f.s, bobs.ID), bobs)
}

// testSessionCap fills a user's sessions to the cap, with the oldest
// created in the middle: one more removes that one, not the first stored.
func testSessionCap(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	base := now()
	const oldest = 10
	var all []store.Session
	for i := range store.MaxSessionsPerUser {
		at := base.Add(time.Duration(i+1) * time.Second)
		if i == oldest {
			at = base
		}
		all = append(all, createSession(t, s, "alice", at))
	}
	for _, sess := range all {
		getSession(t, s, sess.ID)
	}
	extra := createSession(t, s, "alice", base.Add(time.Hour))
	_, err := s.GetSession(t.Context(), all[oldest].ID)
	assertErr(t, err, store.ErrNotFound)
	for i, sess := range all {
		if i != oldest {
			getSession(t, s, sess.ID)
		}
	}
	getSession(t, s, extra.ID)
	if n := deleteUserSessions(t, s, "alice"); n != store.MaxSessionsPerUser {
		t.Fatalf("DeleteUserSessions = %d, want the cap %d", n, store.MaxSessionsPerUser)
	}
}

func testConcurrentSessionCap(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	const n = 20
	for range store.MaxSessionsPerUser - n/2 {
		createSession(t, s, "alice", tick())
	}
	errs := parallel(n, func(int) error {
		return s.CreateSession(t.Context(), newSession("alice", tick()))
	})
	assertOutcomes(t, errs, n, nil)
	if got := deleteUserSessions(t, s, "alice"); got != store.MaxSessionsPerUser {
		t.Fatalf("after concurrent sign-ins the user had %d sessions, want the cap %d", got, store.MaxSessionsPerUser)
	}
}

func testSessionsAnnounceNothing(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	rec, _ := subscribe(t, s)
	ctx := t.Context()
	a := createSession(t, s, "alice", now())
	b := createSession(t, s, "alice", now())
	must(t, s.TouchSession(ctx, a.ID, now().Add(time.Minute)))
	must(t, s.DeleteSession(ctx, a.ID))
	deleteUserSessions(t, s, "alice")
	getUser(t, s, "alice")
	_, err := s.GetSession(ctx, b.ID)
	assertErr(t, err, store.ErrNotFound)
	rec.assertNone(t, "session writes")
}

// testSessionExpiry moves the store's clock past a short session: it is
// then absent for every method, and its id free again.
func testSessionExpiry(t *testing.T, open timedOpener) {
	s, clock := open(t)
	createUser(t, s, "alice")
	ctx := t.Context()
	short := newSession("alice", clock.Now())
	short.ExpiresAt = clock.Now().Add(time.Minute)
	must(t, s.CreateSession(ctx, short))
	long := createSession(t, s, "alice", clock.Now())
	past := newSession("alice", clock.Now().Add(-2*time.Hour))
	past.ExpiresAt = clock.Now().Add(-time.Second)
	must(t, s.CreateSession(ctx, past))
	_, err := s.GetSession(ctx, past.ID)
	assertErr(t, err, store.ErrNotFound)
	assertSession(t, getSession(t, s, short.ID), short)

	clock.Advance(2 * time.Minute)
	_, err = s.GetSession(ctx, short.ID)
	assertErr(t, err, store.ErrNotFound)
	assertErr(t, s.TouchSession(ctx, short.ID, clock.Now()), store.ErrNotFound)
	assertErr(t, s.DeleteSession(ctx, short.ID), store.ErrNotFound)
	assertSession(t, getSession(t, s, long.ID), long)

	// The id of an expired session is free.
	short.ExpiresAt = clock.Now().Add(time.Hour)
	must(t, s.CreateSession(ctx, short))
	assertSession(t, getSession(t, s, short.ID), short)

	expiring := newSession("alice", clock.Now())
	expiring.ExpiresAt = clock.Now().Add(time.Minute)
	must(t, s.CreateSession(ctx, expiring))
	clock.Advance(2 * time.Minute)
	if n := deleteUserSessions(t, s, "alice"); n != 2 {
		t.Fatalf("DeleteUserSessions = %d, want the 2 live sessions", n)
	}
}

// testExpiredSessionsNotCounted fills the cap with sessions that then
// expire: new sign-ins evict none of the live ones.
func testExpiredSessionsNotCounted(t *testing.T, open timedOpener) {
	s, clock := open(t)
	createUser(t, s, "alice")
	ctx := t.Context()
	for range store.MaxSessionsPerUser {
		sess := newSession("alice", clock.Now())
		sess.ExpiresAt = clock.Now().Add(time.Minute)
		must(t, s.CreateSession(ctx, sess))
	}
	clock.Advance(2 * time.Minute)
	var fresh []store.Session
	for range store.MaxSessionsPerUser {
		fresh = append(fresh, createSession(t, s, "alice", clock.Now()))
	}
	for _, sess := range fresh {
		getSession(t, s, sess.ID)
	}
	if n := deleteUserSessions(t, s, "alice"); n != store.MaxSessionsPerUser {
		t.Fatalf("DeleteUserSessions = %d, want %d", n, store.MaxSessionsPerUser)
	}
}

// newSession returns a session of user created at at, with a random id and
// CSRF secret, that expires an hour later.
func newSession(user string, at time.Time) store.Session {
	var id store.TokenHash
	rand.Read(id[:])
	return store.Session{
		ID:        id,
		User:      user,
		CSRF:      randomHex(32),
		CreatedAt: at,
		SeenAt:    at,
		ExpiresAt: at.Add(time.Hour),
		IP:        "192.0.2.7",
		UserAgent: "storetest",
	}
}

func createSession(t *testing.T, s store.Store, user string, at time.Time) store.Session {
	t.Helper()
	sess := newSession(user, at)
	must(t, s.CreateSession(t.Context(), sess))
	return sess
}

func getSession(t *testing.T, s store.Store, id store.TokenHash) store.Session {
	t.Helper()
	sess, err := s.GetSession(t.Context(), id)
	must(t, err)
	return sess
}

func deleteUserSessions(t *testing.T, s store.Store, user string) int {
	t.Helper()
	n, err := s.DeleteUserSessions(t.Context(), user)
	must(t, err)
	return n
}

func assertSession(t *testing.T, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.User != want.User || got.CSRF != want.CSRF ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.SeenAt.Equal(want.SeenAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || got.IP != want.IP || got.UserAgent != want.UserAgent {
		t.Fatalf("session:\n got %+v\nwant %+v", got, want)
	}
}
