// Package storetest is the conformance suite that every store.Store backend
// must pass. A backend's test calls Run with a function that opens a fresh,
// empty store whose clock is the given Clock:
//
//	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
//		s, err := mybackend.Open(..., mybackend.Options{Now: clock.Now})
//		if err != nil {
//			t.Fatal(err)
//		}
//		t.Cleanup(func() { s.Close() })
//		return s
//	})
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// opener returns a fresh, empty store whose cleanup is registered with t.
type opener = func(t *testing.T) store.Store

// timedOpener is an opener that also returns the store's clock.
type timedOpener = func(t *testing.T) (store.Store, *Clock)

// test is one named conformance test. It receives the opener rather than a
// store so that table cases can each open their own fresh store. A test
// that moves the store's clock is timed instead of run.
type test struct {
	name  string
	run   func(t *testing.T, open opener)
	timed func(t *testing.T, open timedOpener)
}

// errBoom is what update callbacks return to check that a failing callback
// leaves the store unchanged and its error reaches the caller.
var errBoom = errors.New("boom")

// Run runs the whole suite against the backend that open returns. Every
// subtest calls open once (or once per table case) and so starts empty;
// each store gets a Clock of its own, which stands still unless the test
// moves it.
func Run(t *testing.T, open func(t *testing.T, clock *Clock) store.Store) {
	timed := func(t *testing.T) (store.Store, *Clock) {
		c := NewClock()
		return open(t, c), c
	}
	untimed := func(t *testing.T) store.Store {
		s, _ := timed(t)
		return s
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Users", userTests},
		{"Tokens", tokenTests},
		{"LastUse", lastUseTests},
		{"Rotate", rotateTests},
		{"Clients", clientTests},
		{"Keyring", keyringTests},
		{"Denials", denialTests},
		{"Failures", failureTests},
		{"Sessions", sessionTests},
		{"Events", eventTests},
		{"Check", checkTests},
		{"Ping", pingTests},
		{"Concurrency", concurrencyTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					if tc.timed != nil {
						tc.timed(t, timed)
						return
					}
					tc.run(t, untimed)
				})
			}
		})
	}
}

// ---- users ----

var userTests = []test{
	{name: "CreateGet", run: testCreateGetUser},
	{name: "CreateDuplicate", run: testCreateDuplicateUser},
	{name: "GetMissing", run: testGetMissingUser},
	{name: "ListSorted", run: testListUsersSorted},
	{name: "Update", run: testUpdateUser},
	{name: "UpdateFnError", run: testUpdateUserFnError},
	{name: "UpdateMissing", run: testUpdateMissingUser},
	{name: "Delete", run: testDeleteUser},
	{name: "DeleteMissing", run: testDeleteMissingUser},
}

func testCreateGetUser(t *testing.T, open opener) {
	s := open(t)
	want := newUser("alice")
	want.Roles = []string{"admin", "user"}
	want.Disabled = true
	must(t, s.CreateUser(t.Context(), want))
	assertUser(t, getUser(t, s, "alice"), want)
}

func testCreateDuplicateUser(t *testing.T, open opener) {
	s := open(t)
	first := createUser(t, s, "alice")
	second := newUser("alice")
	second.Roles = []string{"admin"}
	assertErr(t, s.CreateUser(t.Context(), second), store.ErrUserExists)
	assertUser(t, getUser(t, s, "alice"), first)
}

func testGetMissingUser(t *testing.T, open opener) {
	s := open(t)
	_, err := s.GetUser(t.Context(), "nobody")
	assertErr(t, err, store.ErrNotFound)
}

func testListUsersSorted(t *testing.T, open opener) {
	s := open(t)
	users, err := s.ListUsers(t.Context())
	must(t, err)
	if len(users) != 0 {
		t.Fatalf("empty store lists %d users", len(users))
	}
	want := map[string]store.User{}
	for _, name := range []string{"carol", "alice", "dave", "bob"} {
		want[name] = createUser(t, s, name)
	}
	users, err = s.ListUsers(t.Context())
	must(t, err)
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
		assertUser(t, u, want[u.Name])
	}
	if wantNames := []string{"alice", "bob", "carol", "dave"}; !slices.Equal(names, wantNames) {
		t.Fatalf("ListUsers = %v, want %v", names, wantNames)
	}
}

func testUpdateUser(t *testing.T, open opener) {
	s := open(t)
	want := createUser(t, s, "alice")
	want.Roles = []string{"admin"}
	want.Disabled = true
	want.TokenLogin = false
	want.PasswordHash = "new-hash"
	want.UpdatedAt = now().Add(time.Hour)
	got, err := s.UpdateUser(t.Context(), "alice", func(u *store.User) error {
		u.Roles, u.Disabled, u.TokenLogin = want.Roles, want.Disabled, want.TokenLogin
		u.PasswordHash, u.UpdatedAt = want.PasswordHash, want.UpdatedAt
		return nil
	})
	must(t, err)
	assertUser(t, got, want)
	assertUser(t, getUser(t, s, "alice"), want)
}

func testUpdateUserFnError(t *testing.T, open opener) {
	s := open(t)
	want := createUser(t, s, "alice")
	_, err := s.UpdateUser(t.Context(), "alice", func(u *store.User) error {
		u.Disabled = true
		u.Roles = append(u.Roles, "admin")
		return errBoom
	})
	assertErr(t, err, errBoom)
	assertUser(t, getUser(t, s, "alice"), want)
}

func testUpdateMissingUser(t *testing.T, open opener) {
	s := open(t)
	_, err := s.UpdateUser(t.Context(), "nobody", func(*store.User) error { return nil })
	assertErr(t, err, store.ErrNotFound)
	_, err = s.GetUser(t.Context(), "nobody")
	assertErr(t, err, store.ErrNotFound)
}

func testDeleteUser(t *testing.T, open opener) {
	f := setup(t, open)
	bob := createUser(t, f.s, "bob")
	bobs := createToken(t, f.s, "bob", "Work")
	ctx := t.Context()

	must(t, f.s.DeleteUser(ctx, "alice"))
	_, err := f.s.GetUser(ctx, "alice")
	assertErr(t, err, store.ErrNotFound)
	_, err = f.s.ListTokens(ctx, "alice")
	assertErr(t, err, store.ErrNotFound)
	for _, tok := range []store.Token{f.work, f.home} {
		_, err = f.s.LookupToken(ctx, tok.Hash)
		assertErr(t, err, store.ErrNotFound)
		_, err = f.s.GetToken(ctx, "alice", tok.ID)
		assertErr(t, err, store.ErrNotFound)
	}

	// A user created again under the same name starts without tokens.
	createUser(t, f.s, "alice")
	assertTokens(t, listTokens(t, f.s, "alice"))

	// Other users are untouched.
	assertGrant(t, lookup(t, f.s, bobs.Hash), bobs, bob)
}

func testDeleteMissingUser(t *testing.T, open opener) {
	s := open(t)
	assertErr(t, s.DeleteUser(t.Context(), "nobody"), store.ErrNotFound)
}

// ---- tokens ----

var tokenTests = []test{
	{name: "CreateGetLookup", run: testCreateGetLookupToken},
	{name: "RoundTrip", run: testTokenRoundTrip},
	{name: "ListSorted", run: testListTokensSorted},
	{name: "ListEmpty", run: testListTokensEmpty},
	{name: "ListMissingOwner", run: testListTokensMissingOwner},
	{name: "CreateMissingOwner", run: testCreateTokenMissingOwner},
	{name: "LabelTaken", run: testCreateTokenLabelTaken},
	{name: "LabelOtherOwner", run: testLabelOtherOwner},
	{name: "EmptyLabelKey", run: testEmptyLabelKey},
	{name: "Limit", run: testTokenLimit},
	{name: "LimitPerKind", run: testTokenLimitPerKind},
	{name: "Update", run: testUpdateToken},
	{name: "UpdateLabelTaken", run: testUpdateTokenLabelTaken},
	{name: "UpdateOwnLabel", run: testUpdateTokenOwnLabel},
	{name: "UpdateFreesLabel", run: testUpdateTokenFreesLabel},
	{name: "UpdateFnError", run: testUpdateTokenFnError},
	{name: "Delete", run: testDeleteToken},
	{name: "Missing", run: testMissingToken},
	{name: "LookupSeesOwnerChanges", run: testLookupSeesOwnerChanges},
}

func testCreateGetLookupToken(t *testing.T, open opener) {
	s := open(t)
	owner := createUser(t, s, "alice")
	want := newToken("alice", "Work Laptop")
	want.Scopes = []string{"read", "write"}
	want.AllowedIPs = []string{"10.0.0.0/8", "2001:db8::/32"}
	want.ExpiresAt = now().Add(30 * 24 * time.Hour)
	must(t, s.CreateToken(t.Context(), want, 0))

	got, err := s.GetToken(t.Context(), "alice", want.ID)
	must(t, err)
	assertToken(t, got, want)
	assertTokens(t, listTokens(t, s, "alice"), want)
	assertGrant(t, lookup(t, s, want.Hash), want, owner)
}

func testTokenRoundTrip(t *testing.T, open opener) {
	base := now()
	cases := []struct {
		name   string
		modify func(*store.Token)
	}{
		{"Minimal", func(tok *store.Token) {
			tok.Label, tok.LabelKey, tok.Scopes, tok.Enabled = "", "", nil, false
		}},
		{"Legacy", func(tok *store.Token) { tok.Kind = store.KindLegacy }},
		{"Disabled", func(tok *store.Token) { tok.Enabled = false }},
		{"AllFields", func(tok *store.Token) {
			tok.Label, tok.LabelKey = "Ünïcode Label", "ünïcode label"
			tok.Scopes = []string{"a", "b", "c"}
			tok.AllowedIPs = []string{"192.0.2.1/32", "::1/128"}
			tok.ExpiresAt = base.Add(time.Hour)
			tok.LastUsedAt = base.Add(-time.Minute)
			tok.LastUsedIP = "192.0.2.1"
			tok.LastUsedHost = "app.example.com"
		}},
		{"NonUTCLocation", func(tok *store.Token) {
			zone := time.FixedZone("UTC+5", 5*60*60)
			tok.CreatedAt = base.In(zone)
			tok.ExpiresAt = base.Add(time.Hour).In(zone)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			owner := createUser(t, s, "alice")
			want := newToken("alice", "Work")
			tc.modify(&want)
			must(t, s.CreateToken(t.Context(), want, 0))
			got, err := s.GetToken(t.Context(), "alice", want.ID)
			must(t, err)
			assertToken(t, got, want)
			assertGrant(t, lookup(t, s, want.Hash), want, owner)
		})
	}
}

func testListTokensSorted(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	t0 := now()
	at := func(id string, d time.Duration) store.Token {
		tok := newToken("alice", "")
		tok.ID, tok.CreatedAt = id, t0.Add(d)
		return tok
	}
	// Created out of order; "a" and "b" share a CreatedAt and sort by ID.
	tokens := []store.Token{at("c", 2*time.Second), at("b", time.Second), at("z", 0), at("a", time.Second)}
	for _, tok := range tokens {
		must(t, s.CreateToken(t.Context(), tok, 0))
	}
	assertTokens(t, listTokens(t, s, "alice"), tokens[2], tokens[3], tokens[1], tokens[0])
}

func testListTokensEmpty(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	assertTokens(t, listTokens(t, s, "alice"))
}

func testListTokensMissingOwner(t *testing.T, open opener) {
	s := open(t)
	_, err := s.ListTokens(t.Context(), "nobody")
	assertErr(t, err, store.ErrNotFound)
}

func testCreateTokenMissingOwner(t *testing.T, open opener) {
	s := open(t)
	tok := newToken("nobody", "Work")
	assertErr(t, s.CreateToken(t.Context(), tok, 0), store.ErrNotFound)
	assertNotStored(t, s, tok)
}

func testCreateTokenLabelTaken(t *testing.T, open opener) {
	f := setup(t, open)
	dup := newToken("alice", "WORK") // same LabelKey as f.work
	assertErr(t, f.s.CreateToken(t.Context(), dup, 0), store.ErrLabelTaken)
	assertNotStored(t, f.s, dup)
	assertTokens(t, listTokens(t, f.s, "alice"), f.work, f.home)
}

func testLabelOtherOwner(t *testing.T, open opener) {
	f := setup(t, open)
	createUser(t, f.s, "bob")
	tok := newToken("bob", "Work")
	must(t, f.s.CreateToken(t.Context(), tok, 0))
	assertTokens(t, listTokens(t, f.s, "bob"), tok)
}

func testEmptyLabelKey(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	var want []store.Token
	for range 3 {
		want = append(want, createToken(t, s, "alice", ""))
	}
	assertTokens(t, listTokens(t, s, "alice"), want...)
}

func testTokenLimit(t *testing.T, open opener) {
	cases := []struct {
		name     string
		limit    int
		existing int  // tokens created without a limit first
		wantOK   int  // further creates with limit that succeed
		limited  bool // whether the next one fails with ErrTokenLimit
	}{
		{"One", 1, 0, 1, true},
		{"Three", 3, 0, 3, true},
		{"AlreadyOver", 2, 3, 0, true},
		{"Zero", 0, 0, 10, false},
		{"Negative", -1, 0, 10, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			createUser(t, s, "alice")
			var want []store.Token
			for range tc.existing {
				want = append(want, createToken(t, s, "alice", ""))
			}
			for range tc.wantOK {
				tok := newToken("alice", "")
				must(t, s.CreateToken(t.Context(), tok, tc.limit))
				want = append(want, tok)
			}
			if tc.limited {
				over := newToken("alice", "")
				assertErr(t, s.CreateToken(t.Context(), over, tc.limit), store.ErrTokenLimit)
				assertNotStored(t, s, over)
			}
			assertTokens(t, listTokens(t, s, "alice"), want...)
		})
	}
}

// testTokenLimitPerKind: the limit counts the owner's tokens of the new
// token's kind only, so legacy tokens and PATs are capped separately.
func testTokenLimitPerKind(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	var want []store.Token
	for _, kind := range []string{store.KindLegacy, store.KindPAT} {
		for range 2 {
			tok := newToken("alice", "")
			tok.Kind = kind
			must(t, s.CreateToken(t.Context(), tok, 2))
			want = append(want, tok)
		}
		over := newToken("alice", "")
		over.Kind = kind
		assertErr(t, s.CreateToken(t.Context(), over, 2), store.ErrTokenLimit)
		assertNotStored(t, s, over)
	}
	assertTokens(t, listTokens(t, s, "alice"), want...)
}

func testUpdateToken(t *testing.T, open opener) {
	f := setup(t, open)
	want := f.work
	want.Label, want.LabelKey = "Office", "office"
	want.Scopes = []string{"admin"}
	want.AllowedIPs = []string{"198.51.100.0/24"}
	want.Enabled = false
	want.ExpiresAt = now().Add(time.Hour)
	got, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
		tok.Label, tok.LabelKey = want.Label, want.LabelKey
		tok.Scopes, tok.AllowedIPs = want.Scopes, want.AllowedIPs
		tok.Enabled, tok.ExpiresAt = want.Enabled, want.ExpiresAt
		return nil
	})
	must(t, err)
	assertToken(t, got, want)
	assertToken(t, getToken(t, f.s, want), want)
	assertGrant(t, lookup(t, f.s, want.Hash), want, f.user)
}

func testUpdateTokenLabelTaken(t *testing.T, open opener) {
	f := setup(t, open)
	_, err := f.s.UpdateToken(t.Context(), "alice", f.home.ID, func(tok *store.Token) error {
		tok.Label, tok.LabelKey = f.work.Label, f.work.LabelKey
		return nil
	})
	assertErr(t, err, store.ErrLabelTaken)
	assertToken(t, getToken(t, f.s, f.home), f.home)
}

func testUpdateTokenOwnLabel(t *testing.T, open opener) {
	f := setup(t, open)
	want := f.work
	want.Label = "WORK"
	got, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
		tok.Label = "WORK" // LabelKey unchanged
		return nil
	})
	must(t, err)
	assertToken(t, got, want)
}

func testUpdateTokenFreesLabel(t *testing.T, open opener) {
	f := setup(t, open)
	office, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
		tok.Label, tok.LabelKey = "Office", "office"
		return nil
	})
	must(t, err)
	reuse := createToken(t, f.s, "alice", "Work")
	assertTokens(t, listTokens(t, f.s, "alice"), office, f.home, reuse)
}

func testUpdateTokenFnError(t *testing.T, open opener) {
	f := setup(t, open)
	_, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
		tok.Enabled = false
		tok.Label, tok.LabelKey = "Office", "office"
		return errBoom
	})
	assertErr(t, err, errBoom)
	assertToken(t, getToken(t, f.s, f.work), f.work)
	// The label the failed update tried to take is still free.
	createToken(t, f.s, "alice", "Office")
}

func testDeleteToken(t *testing.T, open opener) {
	f := setup(t, open)
	got, err := f.s.DeleteToken(t.Context(), "alice", f.work.ID)
	must(t, err)
	assertToken(t, got, f.work)
	assertNotStored(t, f.s, f.work)
	assertTokens(t, listTokens(t, f.s, "alice"), f.home)
	// Its label and its place under the limit are free again.
	again := newToken("alice", "Work")
	must(t, f.s.CreateToken(t.Context(), again, 2))
}

func testMissingToken(t *testing.T, open opener) {
	f := setup(t, open)
	ctx := t.Context()
	keep := func(*store.Token) error { return nil }
	cases := []struct{ name, owner, id string }{
		{"MissingID", "alice", "no-such-id"},
		{"MissingOwner", "nobody", f.work.ID},
		{"OtherOwnersID", "bob", f.work.ID},
	}
	createUser(t, f.s, "bob")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.GetToken(ctx, tc.owner, tc.id)
			assertErr(t, err, store.ErrNotFound)
			_, err = f.s.UpdateToken(ctx, tc.owner, tc.id, keep)
			assertErr(t, err, store.ErrNotFound)
			_, err = f.s.DeleteToken(ctx, tc.owner, tc.id)
			assertErr(t, err, store.ErrNotFound)
		})
	}
	t.Run("LookupUnknownHash", func(t *testing.T) {
		_, err := f.s.LookupToken(ctx, newToken("alice", "").Hash)
		assertErr(t, err, store.ErrNotFound)
	})
	assertTokens(t, listTokens(t, f.s, "alice"), f.work, f.home)
}

func testLookupSeesOwnerChanges(t *testing.T, open opener) {
	f := setup(t, open)
	owner, err := f.s.UpdateUser(t.Context(), "alice", func(u *store.User) error {
		u.Disabled = true
		return nil
	})
	must(t, err)
	assertGrant(t, lookup(t, f.s, f.work.Hash), f.work, owner)
}

// ---- last use ----

var lastUseTests = []test{
	{name: "Batch", run: testRecordLastUseBatch},
	{name: "OlderDoesNotOverwrite", run: testRecordLastUseOlder},
	{name: "MissingIgnored", run: testRecordLastUseMissing},
	{name: "Host", run: testRecordLastUseHost},
	{name: "AddressesBatch", run: testRecentAddressesBatch},
	{name: "AddressesBound", run: testRecentAddressesBound},
	{name: "AddressesDistinct", run: testRecentAddressesDistinct},
	{name: "AddressesOlderIgnored", run: testRecentAddressesOlder},
	{name: "AddressesDeletedIgnored", run: testRecentAddressesDeleted},
	{name: "AddressesKept", run: testRecentAddressesKept},
}

func testRecordLastUseBatch(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	work, home := f.work, f.home
	work.LastUsedAt, work.LastUsedIP, work.LastUsedHost = at, "192.0.2.1", "a.example.com"
	home.LastUsedAt, home.LastUsedIP, home.LastUsedHost = at.Add(time.Second), "2001:db8::1", "b.example.com"
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(work), use(home)}))
	assertToken(t, getToken(t, f.s, work), work)
	assertToken(t, getToken(t, f.s, home), home)
	assertGrant(t, lookup(t, f.s, work.Hash), work, f.user)
}

func testRecordLastUseOlder(t *testing.T, open opener) {
	f := setup(t, open)
	newer := f.work
	newer.LastUsedAt, newer.LastUsedIP, newer.LastUsedHost = now(), "192.0.2.2", "new.example.com"
	older := newer
	older.LastUsedAt, older.LastUsedIP, older.LastUsedHost = newer.LastUsedAt.Add(-time.Minute), "192.0.2.1", "old.example.com"

	// Within one batch, and across batches, the newest use wins.
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(newer), use(older)}))
	assertToken(t, getToken(t, f.s, f.work), newer)
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(older)}))
	assertToken(t, getToken(t, f.s, f.work), newer)
}

func testRecordLastUseMissing(t *testing.T, open opener) {
	f := setup(t, open)
	want := f.work
	want.LastUsedAt, want.LastUsedIP, want.LastUsedHost = now(), "192.0.2.1", "a.example.com"
	uses := []store.LastUse{
		{Owner: "alice", TokenID: "no-such-id", At: now(), IP: "192.0.2.9", Host: "x.example.com"},
		{Owner: "nobody", TokenID: f.work.ID, At: now(), IP: "192.0.2.9", Host: "x.example.com"},
		use(want),
	}
	must(t, f.s.RecordLastUse(t.Context(), uses))
	assertTokens(t, listTokens(t, f.s, "alice"), want, f.home)
}

// testRecordLastUseHost checks that the Host of the newest use is kept
// with its time and IP, whether the uses come in one batch or several,
// and that every read (Get, List, Lookup) returns it.
func testRecordLastUseHost(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	first := f.work
	first.LastUsedAt, first.LastUsedIP, first.LastUsedHost = at, "192.0.2.1", "a.example.com"
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(first)}))
	assertToken(t, getToken(t, f.s, f.work), first)

	// A later use from another site replaces the Host along with the rest.
	second := first
	second.LastUsedAt, second.LastUsedHost = at.Add(time.Second), "b.example.com"
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(second)}))
	assertToken(t, getToken(t, f.s, f.work), second)

	// Within a batch the newest use wins, whatever its position.
	third := second
	third.LastUsedAt, third.LastUsedIP, third.LastUsedHost = at.Add(3*time.Second), "192.0.2.3", "c.example.com"
	between := second
	between.LastUsedAt, between.LastUsedIP, between.LastUsedHost = at.Add(2*time.Second), "192.0.2.2", "d.example.com"
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{use(third), use(between)}))
	assertToken(t, getToken(t, f.s, f.work), third)
	assertTokens(t, listTokens(t, f.s, "alice"), third, f.home)
	assertGrant(t, lookup(t, f.s, f.work.Hash), third, f.user)
}

// addrUse is a use of tok from ip at at for host.
func addrUse(tok store.Token, ip string, at time.Time, host string) store.LastUse {
	return store.LastUse{Owner: tok.Owner, TokenID: tok.ID, At: at, IP: ip, Host: host}
}

// assertAddresses checks a token's recent addresses, in order.
func assertAddresses(t *testing.T, what string, got []store.AddressUse, want ...store.AddressUse) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].IP == want[i].IP && got[i].Host == want[i].Host && got[i].LastUsedAt.Equal(want[i].LastUsedAt)
	}
	if !ok {
		t.Fatalf("%s: recent addresses\n got %+v\nwant %+v", what, got, want)
	}
}

// assertStoredAddresses checks tok's recent addresses as GetToken and
// ListTokens return them.
func assertStoredAddresses(t *testing.T, s store.Store, tok store.Token, want ...store.AddressUse) {
	t.Helper()
	assertAddresses(t, "GetToken", getToken(t, s, tok).RecentAddresses, want...)
	for _, l := range listTokens(t, s, tok.Owner) {
		if l.ID == tok.ID {
			assertAddresses(t, "ListTokens", l.RecentAddresses, want...)
			return
		}
	}
	t.Fatalf("ListTokens has no token %s", tok.ID)
}

// testRecentAddressesBatch: one batch with uses of one token from two
// addresses (and of another token) records both addresses, newest first,
// and the newest as the last use.
func testRecentAddressesBatch(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{
		addrUse(f.work, "192.0.2.1", at, "a.example.com"),
		addrUse(f.home, "198.51.100.7", at, "c.example.com"),
		addrUse(f.work, "2001:db8::2", at.Add(time.Second), "b.example.com"),
	}))
	want := f.work
	want.LastUsedAt, want.LastUsedIP, want.LastUsedHost = at.Add(time.Second), "2001:db8::2", "b.example.com"
	assertToken(t, getToken(t, f.s, f.work), want)
	assertStoredAddresses(t, f.s, f.work,
		store.AddressUse{IP: "2001:db8::2", LastUsedAt: at.Add(time.Second), Host: "b.example.com"},
		store.AddressUse{IP: "192.0.2.1", LastUsedAt: at, Host: "a.example.com"})
	assertStoredAddresses(t, f.s, f.home, store.AddressUse{IP: "198.51.100.7", LastUsedAt: at, Host: "c.example.com"})
	// A use without an address updates the last use only.
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{addrUse(f.home, "", at.Add(time.Minute), "d.example.com")}))
	assertStoredAddresses(t, f.s, f.home, store.AddressUse{IP: "198.51.100.7", LastUsedAt: at, Host: "c.example.com"})
	if got := getToken(t, f.s, f.home); !got.LastUsedAt.Equal(at.Add(time.Minute)) || got.LastUsedIP != "" {
		t.Fatalf("last use without address = %v from %q", got.LastUsedAt, got.LastUsedIP)
	}
}

// testRecentAddressesBound: of many addresses, the five most recently
// used stay, newest first, whatever the order of the uses and batches.
func testRecentAddressesBound(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	ip := func(i int) string { return fmt.Sprintf("192.0.2.%d", i) }
	var first, second []store.LastUse
	for i := range 4 {
		first = append(first, addrUse(f.work, ip(i), at.Add(time.Duration(i)*time.Second), "a.example.com"))
	}
	for i := 8; i >= 4; i-- { // newest first in the batch, and one older than all of the first batch's
		second = append(second, addrUse(f.work, ip(i), at.Add(time.Duration(i)*time.Second), "b.example.com"))
	}
	second = append(second, addrUse(f.work, ip(20), at.Add(-time.Hour), "old.example.com"))
	must(t, f.s.RecordLastUse(t.Context(), first))
	must(t, f.s.RecordLastUse(t.Context(), second))
	var want []store.AddressUse
	for i := 8; i >= 4; i-- {
		want = append(want, store.AddressUse{IP: ip(i), LastUsedAt: at.Add(time.Duration(i) * time.Second), Host: "b.example.com"})
	}
	assertStoredAddresses(t, f.s, f.work, want...)
	if n := len(getToken(t, f.s, f.work).RecentAddresses); n != store.MaxRecentAddresses {
		t.Fatalf("%d recent addresses, want %d", n, store.MaxRecentAddresses)
	}
	// An address used again moves to the front; the oldest then goes.
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{addrUse(f.work, ip(0), at.Add(time.Minute), "c.example.com")}))
	want = append([]store.AddressUse{{IP: ip(0), LastUsedAt: at.Add(time.Minute), Host: "c.example.com"}}, want[:4]...)
	assertStoredAddresses(t, f.s, f.work, want...)
}

// testRecentAddressesDistinct: uses from one address make one entry with
// the newest use's time and site.
func testRecentAddressesDistinct(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{
		addrUse(f.work, "192.0.2.1", at, "a.example.com"),
		addrUse(f.work, "192.0.2.1", at.Add(2*time.Second), "b.example.com"),
		addrUse(f.work, "192.0.2.2", at.Add(time.Second), "a.example.com"),
	}))
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{addrUse(f.work, "192.0.2.2", at.Add(3*time.Second), "c.example.com")}))
	assertStoredAddresses(t, f.s, f.work,
		store.AddressUse{IP: "192.0.2.2", LastUsedAt: at.Add(3 * time.Second), Host: "c.example.com"},
		store.AddressUse{IP: "192.0.2.1", LastUsedAt: at.Add(2 * time.Second), Host: "b.example.com"})
}

// testRecentAddressesOlder: an older use never moves an address's time
// (or site) backwards, in a later batch or later in the same batch.
func testRecentAddressesOlder(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{
		addrUse(f.work, "192.0.2.1", at, "new.example.com"),
		addrUse(f.work, "192.0.2.1", at.Add(-time.Minute), "old.example.com"),
	}))
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{addrUse(f.work, "192.0.2.1", at.Add(-time.Hour), "older.example.com")}))
	assertStoredAddresses(t, f.s, f.work, store.AddressUse{IP: "192.0.2.1", LastUsedAt: at, Host: "new.example.com"})
	if got := getToken(t, f.s, f.work); !got.LastUsedAt.Equal(at) || got.LastUsedHost != "new.example.com" {
		t.Fatalf("last use = %v at %q, want %v at new.example.com", got.LastUsedAt, got.LastUsedHost, at)
	}
}

// testRecentAddressesDeleted: uses of a deleted token are ignored, and a
// token created later with its ID starts without addresses.
func testRecentAddressesDeleted(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{addrUse(f.work, "192.0.2.1", at, "a.example.com")}))
	_, err := f.s.DeleteToken(t.Context(), "alice", f.work.ID)
	must(t, err)
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{
		addrUse(f.work, "192.0.2.2", at.Add(time.Second), "a.example.com"),
		addrUse(f.home, "192.0.2.3", at, "b.example.com"),
	}))
	if l := listTokens(t, f.s, "alice"); len(l) != 1 || l[0].ID != f.home.ID {
		t.Fatalf("tokens after the deletion = %+v, want only %s", l, f.home.ID)
	}
	again := newToken("alice", "Again")
	again.ID = f.work.ID
	must(t, f.s.CreateToken(t.Context(), again, 0))
	assertStoredAddresses(t, f.s, again)
	assertStoredAddresses(t, f.s, f.home, store.AddressUse{IP: "192.0.2.3", LastUsedAt: at, Host: "b.example.com"})
}

// testRecentAddressesKept: UpdateToken and RotateToken keep the recent
// addresses, and CreateToken (an import) writes those it is given.
func testRecentAddressesKept(t *testing.T, open opener) {
	f := setup(t, open)
	at := now()
	must(t, f.s.RecordLastUse(t.Context(), []store.LastUse{
		addrUse(f.work, "192.0.2.1", at, "a.example.com"),
		addrUse(f.work, "192.0.2.2", at.Add(time.Second), "b.example.com"),
	}))
	want := []store.AddressUse{
		{IP: "192.0.2.2", LastUsedAt: at.Add(time.Second), Host: "b.example.com"},
		{IP: "192.0.2.1", LastUsedAt: at, Host: "a.example.com"},
	}
	updated, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
		tok.Label, tok.LabelKey = "Renamed", "renamed"
		return nil
	})
	must(t, err)
	assertAddresses(t, "UpdateToken's result", updated.RecentAddresses, want...)
	assertStoredAddresses(t, f.s, f.work, want...)
	var next store.TokenHash
	rand.Read(next[:])
	rotated, err := f.s.RotateToken(t.Context(), "alice", f.work.ID, next, now(), now().Add(time.Hour), time.Time{})
	must(t, err)
	assertAddresses(t, "RotateToken's result", rotated.RecentAddresses, want...)
	assertStoredAddresses(t, f.s, f.work, want...)

	imported := newToken("alice", "Imported")
	imported.LastUsedAt, imported.LastUsedIP, imported.LastUsedHost = at, "192.0.2.9", "c.example.com"
	imported.RecentAddresses = []store.AddressUse{
		{IP: "192.0.2.9", LastUsedAt: at, Host: "c.example.com"},
		{IP: "2001:db8::9", LastUsedAt: at.Add(-time.Hour), Host: "d.example.com"},
	}
	must(t, f.s.CreateToken(t.Context(), imported, 0))
	assertStoredAddresses(t, f.s, imported, imported.RecentAddresses...)
	// UpdateToken may also clear them.
	_, err = f.s.UpdateToken(t.Context(), "alice", imported.ID, func(tok *store.Token) error {
		tok.RecentAddresses = nil
		return nil
	})
	must(t, err)
	assertStoredAddresses(t, f.s, imported)
}

// ---- OAuth clients ----

var clientTests = []test{
	{name: "CreateGet", run: testCreateGetClient},
	{name: "RoundTrip", run: testClientRoundTrip},
	{name: "CreateDuplicate", run: testCreateDuplicateClient},
	{name: "ListSorted", run: testListClientsSorted},
	{name: "Update", run: testUpdateClient},
	{name: "UpdateFnError", run: testUpdateClientFnError},
	{name: "UpdateMayNotChangeID", run: testUpdateClientID},
	{name: "Delete", run: testDeleteClient},
	{name: "Missing", run: testMissingClient},
}

func testCreateGetClient(t *testing.T, open opener) {
	s := open(t)
	want := newClient("app")
	want.AllowedIPs = []string{"10.0.0.0/8", "2001:db8::/32"}
	want.Scopes = []string{"read", "write"}
	must(t, s.CreateClient(t.Context(), want))
	assertClient(t, getClient(t, s, "app"), want)
	assertClients(t, listClients(t, s), want)
}

func testClientRoundTrip(t *testing.T, open opener) {
	base := now()
	cases := []struct {
		name   string
		modify func(*store.Client)
	}{
		{"Minimal", func(c *store.Client) {
			c.Name, c.Scopes, c.AllowedIPs, c.Enabled = "", nil, nil, false
			c.UpdatedAt = time.Time{}
		}},
		{"Disabled", func(c *store.Client) { c.Enabled = false }},
		{"AllFields", func(c *store.Client) {
			c.Name = "Ünïcode Client"
			c.Scopes = []string{"a", "b", "c"}
			c.AllowedIPs = []string{"192.0.2.1/32", "::1/128"}
			c.UpdatedAt = base.Add(time.Hour)
			c.PreviousSecrets = []store.PreviousSecret{{Hash: store.TokenHash{1, 2, 3}, Until: base.Add(time.Hour)}}
		}},
		{"NonUTCLocation", func(c *store.Client) {
			zone := time.FixedZone("UTC+5", 5*60*60)
			c.CreatedAt = base.In(zone)
			c.UpdatedAt = base.Add(time.Hour).In(zone)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			want := newClient("app")
			tc.modify(&want)
			must(t, s.CreateClient(t.Context(), want))
			assertClient(t, getClient(t, s, "app"), want)
			assertClients(t, listClients(t, s), want)
		})
	}
}

func testCreateDuplicateClient(t *testing.T, open opener) {
	s := open(t)
	first := createClient(t, s, "app")
	second := newClient("app")
	second.Name = "Impostor"
	assertErr(t, s.CreateClient(t.Context(), second), store.ErrClientExists)
	assertClient(t, getClient(t, s, "app"), first)
	assertClients(t, listClients(t, s), first)
}

func testListClientsSorted(t *testing.T, open opener) {
	s := open(t)
	if list := listClients(t, s); len(list) != 0 {
		t.Fatalf("empty store lists %d clients", len(list))
	}
	t0 := now()
	at := func(id string, d time.Duration) store.Client {
		c := newClient(id)
		c.CreatedAt = t0.Add(d)
		return c
	}
	// Created out of order; "a" and "b" share a CreatedAt and sort by ID.
	clients := []store.Client{at("c", 2*time.Second), at("b", time.Second), at("z", 0), at("a", time.Second)}
	for _, c := range clients {
		must(t, s.CreateClient(t.Context(), c))
	}
	assertClients(t, listClients(t, s), clients[2], clients[3], clients[1], clients[0])
}

func testUpdateClient(t *testing.T, open opener) {
	s := open(t)
	want := createClient(t, s, "app")
	other := createClient(t, s, "other")
	want.Name = "Renamed"
	want.SecretHash = newClient("x").SecretHash // a rotated secret
	want.AllowedIPs = []string{"198.51.100.0/24"}
	want.Scopes = []string{"admin"}
	want.Enabled = false
	want.UpdatedAt = now().Add(time.Hour)
	got, err := s.UpdateClient(t.Context(), "app", func(c *store.Client) error {
		c.Name, c.SecretHash = want.Name, want.SecretHash
		c.AllowedIPs, c.Scopes = want.AllowedIPs, want.Scopes
		c.Enabled, c.UpdatedAt = want.Enabled, want.UpdatedAt
		return nil
	})
	must(t, err)
	assertClient(t, got, want)
	assertClient(t, getClient(t, s, "app"), want)
	assertClients(t, listClients(t, s), want, other)
}

func testUpdateClientFnError(t *testing.T, open opener) {
	s := open(t)
	want := createClient(t, s, "app")
	_, err := s.UpdateClient(t.Context(), "app", func(c *store.Client) error {
		c.Enabled = false
		c.Scopes = append(c.Scopes, "admin")
		return errBoom
	})
	assertErr(t, err, errBoom)
	assertClient(t, getClient(t, s, "app"), want)
}

// testUpdateClientID checks that an update changing the ID is refused
// (the contract names no sentinel for it) and writes nothing under
// either ID.
func testUpdateClientID(t *testing.T, open opener) {
	s := open(t)
	want := createClient(t, s, "app")
	_, err := s.UpdateClient(t.Context(), "app", func(c *store.Client) error {
		c.ID = "stolen"
		c.Enabled = false
		return nil
	})
	if err == nil {
		t.Fatal("UpdateClient changed the client's ID")
	}
	assertClient(t, getClient(t, s, "app"), want)
	_, err = s.GetClient(t.Context(), "stolen")
	assertErr(t, err, store.ErrNotFound)
	assertClients(t, listClients(t, s), want)
}

func testDeleteClient(t *testing.T, open opener) {
	s := open(t)
	app := newClient("app")
	app.AllowedIPs = []string{"192.0.2.0/24"}
	app.Scopes = []string{"read", "write"}
	must(t, s.CreateClient(t.Context(), app))
	other := createClient(t, s, "other")

	got, err := s.DeleteClient(t.Context(), "app")
	must(t, err)
	assertClient(t, got, app)
	_, err = s.GetClient(t.Context(), "app")
	assertErr(t, err, store.ErrNotFound)
	assertClients(t, listClients(t, s), other)
	// The ID is free again.
	again := createClient(t, s, "app")
	assertClients(t, listClients(t, s), other, again)
}

func testMissingClient(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	app := createClient(t, s, "app")
	_, err := s.GetClient(ctx, "nobody")
	assertErr(t, err, store.ErrNotFound)
	_, err = s.UpdateClient(ctx, "nobody", func(*store.Client) error { return nil })
	assertErr(t, err, store.ErrNotFound)
	_, err = s.DeleteClient(ctx, "nobody")
	assertErr(t, err, store.ErrNotFound)
	_, err = s.GetClient(ctx, "nobody")
	assertErr(t, err, store.ErrNotFound) // the update did not create it
	assertClients(t, listClients(t, s), app)
}

// ---- signing keyring ----

var keyringTests = []test{
	{name: "Missing", run: testKeyringMissing},
	{name: "Update", run: testUpdateKeyring},
	{name: "FnError", run: testUpdateKeyringFnError},
	{name: "CallerOwnsCopy", run: testKeyringCopies},
	{name: "NamesAreIndependent", run: testDocumentNames},
}

// testDocumentNames checks that documents of different names are kept
// apart and that each update announces its own name.
func testDocumentNames(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	rec, _ := subscribe(t, s)
	for _, name := range []string{store.DocKeyring, store.DocACL} {
		_, err := s.UpdateDocument(ctx, name, func([]byte) ([]byte, error) { return []byte("doc " + name), nil })
		must(t, err)
		rec.assertGot(t, "UpdateDocument "+name, store.Event{Kind: store.EventDocument, ID: name})
	}
	for _, name := range []string{store.DocKeyring, store.DocACL} {
		got, err := s.GetDocument(ctx, name)
		must(t, err)
		if string(got) != "doc "+name {
			t.Fatalf("GetDocument(%q) = %q", name, got)
		}
	}
	_, err := s.GetDocument(ctx, "other")
	assertErr(t, err, store.ErrNotFound)
}

func testKeyringMissing(t *testing.T, open opener) {
	s := open(t)
	_, err := s.GetDocument(t.Context(), store.DocKeyring)
	assertErr(t, err, store.ErrNotFound)
}

// testUpdateKeyring checks that fn sees nil before the first write and
// the previous document afterwards, and that the written document is both
// returned and read back.
func testUpdateKeyring(t *testing.T, open opener) {
	s := open(t)
	docs := [][]byte{[]byte(`{"keys":["k1"]}`), []byte(`{"keys":["k1","k2"]}`), []byte(`{"keys":["k2"]}`)}
	var previous []byte // nil: none yet
	for i, doc := range docs {
		var seen []byte
		got, err := s.UpdateDocument(t.Context(), store.DocKeyring, func(current []byte) ([]byte, error) {
			seen = slices.Clone(current) // fn may run more than once; keep the last
			return slices.Clone(doc), nil
		})
		must(t, err)
		if previous == nil && seen != nil {
			t.Fatalf("first UpdateKeyring saw %q, want nil", seen)
		}
		if previous != nil && string(seen) != string(previous) {
			t.Fatalf("UpdateKeyring #%d saw %q, want %q", i+1, seen, previous)
		}
		if string(got) != string(doc) {
			t.Fatalf("UpdateKeyring #%d returned %q, want %q", i+1, got, doc)
		}
		assertKeyring(t, s, doc)
		previous = doc
	}
}

func testUpdateKeyringFnError(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	_, err := s.UpdateDocument(ctx, store.DocKeyring, func(current []byte) ([]byte, error) {
		return []byte("never"), errBoom
	})
	assertErr(t, err, errBoom)
	_, err = s.GetDocument(ctx, store.DocKeyring)
	assertErr(t, err, store.ErrNotFound) // still none

	want := bigKeyring()
	_, err = s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return slices.Clone(want), nil })
	must(t, err)
	_, err = s.UpdateDocument(ctx, store.DocKeyring, func(current []byte) ([]byte, error) {
		if len(current) > 0 {
			current[0] = 'X' // fn owns current; the store must not see this
		}
		return append(current, "junk"...), errBoom
	})
	assertErr(t, err, errBoom)
	assertKeyring(t, s, want)
}

// testKeyringCopies checks that the documents a caller gets are its own:
// changing them changes nothing in the store. The document is larger than
// a page so that a backend reading from a memory map is tested too.
func testKeyringCopies(t *testing.T, open opener) {
	s := open(t)
	want := bigKeyring()
	written, err := s.UpdateDocument(t.Context(), store.DocKeyring, func([]byte) ([]byte, error) { return slices.Clone(want), nil })
	must(t, err)
	written[0] = 'X'
	assertKeyring(t, s, want)
	got, err := s.GetDocument(t.Context(), store.DocKeyring)
	must(t, err)
	got[0] = 'Y'
	assertKeyring(t, s, want)
	var seen []byte
	_, err = s.UpdateDocument(t.Context(), store.DocKeyring, func(current []byte) ([]byte, error) {
		seen = slices.Clone(current)
		return current, nil
	})
	must(t, err)
	if string(seen) != string(want) {
		t.Fatalf("UpdateKeyring saw %q, want %q", seen, want)
	}
}

// ---- deny-list ----

var denialTests = []test{
	{name: "DenyList", run: testDenyList},
	{name: "PastNotListed", run: testDenyPast},
	{name: "ReDenyKeepsLater", run: testReDeny},
	{name: "Ends", timed: testDenialEnds},
}

func testDenyList(t *testing.T, open opener) {
	s := open(t)
	assertDenials(t, listDenied(t, s))
	at := now()
	want := []store.Denial{
		{JTI: "jti-2", Until: at.Add(2 * time.Hour)},
		{JTI: "jti-1", Until: at.Add(time.Hour)},
		{JTI: "jti-3", Until: at.Add(30 * time.Minute).In(time.FixedZone("UTC+5", 5*60*60))},
	}
	for _, d := range want {
		must(t, s.Deny(t.Context(), d))
	}
	assertDenials(t, listDenied(t, s), want...)
}

func testDenyPast(t *testing.T, open opener) {
	s := open(t)
	at := now()
	live := store.Denial{JTI: "live", Until: at.Add(time.Hour)}
	must(t, s.Deny(t.Context(), store.Denial{JTI: "ended", Until: at.Add(-time.Minute)}))
	must(t, s.Deny(t.Context(), live))
	must(t, s.Deny(t.Context(), store.Denial{JTI: "long-ended", Until: at.Add(-24 * time.Hour)}))
	assertDenials(t, listDenied(t, s), live)
}

func testReDeny(t *testing.T, open opener) {
	s := open(t)
	at := now()
	later, earlier := at.Add(2*time.Hour), at.Add(time.Hour)
	// Later first, then earlier; and earlier first, then later.
	must(t, s.Deny(t.Context(), store.Denial{JTI: "a", Until: later}))
	must(t, s.Deny(t.Context(), store.Denial{JTI: "a", Until: earlier}))
	must(t, s.Deny(t.Context(), store.Denial{JTI: "b", Until: earlier}))
	must(t, s.Deny(t.Context(), store.Denial{JTI: "b", Until: later}))
	// A denial that has already ended shortens nothing.
	must(t, s.Deny(t.Context(), store.Denial{JTI: "a", Until: at.Add(-time.Minute)}))
	assertDenials(t, listDenied(t, s),
		store.Denial{JTI: "a", Until: later}, store.Denial{JTI: "b", Until: later})
}

// testDenialEnds moves the store's clock past a short denial: once its
// Until has passed it is no longer listed, before and after another Deny.
func testDenialEnds(t *testing.T, open timedOpener) {
	s, clock := open(t)
	short := store.Denial{JTI: "short", Until: clock.Now().Add(300 * time.Millisecond)}
	long := store.Denial{JTI: "long", Until: clock.Now().Add(time.Hour)}
	must(t, s.Deny(t.Context(), short))
	must(t, s.Deny(t.Context(), long))
	assertDenials(t, listDenied(t, s), long, short)
	clock.Advance(400 * time.Millisecond)
	assertDenials(t, listDenied(t, s), long)
	other := store.Denial{JTI: "other", Until: clock.Now().Add(time.Hour)}
	must(t, s.Deny(t.Context(), other))
	assertDenials(t, listDenied(t, s), long, other)
}

// ---- failure counters ----

var failureTests = []test{
	{name: "Counts", run: testCountFailure},
	{name: "Clear", run: testClearFailures},
	{name: "WindowExpires", timed: testFailureWindow},
}

func testCountFailure(t *testing.T, open opener) {
	s := open(t)
	assertPeek(t, s, "ip:192.0.2.1", 0)
	for want := int64(1); want <= 3; want++ {
		assertCount(t, s, "ip:192.0.2.1", time.Hour, want)
		assertPeek(t, s, "ip:192.0.2.1", want)
	}
	assertCount(t, s, "user:alice", time.Hour, 1)
	assertCount(t, s, "ip:192.0.2.1", time.Hour, 4)
	assertPeek(t, s, "ip:192.0.2.1", 4)
	assertPeek(t, s, "user:alice", 1)
}

// assertPeek checks FailureCount, which must not change the count.
func assertPeek(t *testing.T, s store.Store, key string, want int64) {
	t.Helper()
	for range 2 {
		got, err := s.FailureCount(t.Context(), key)
		if err != nil || got != want {
			t.Fatalf("FailureCount(%q) = %d, %v; want %d", key, got, err, want)
		}
	}
}

func testClearFailures(t *testing.T, open opener) {
	s := open(t)
	assertCount(t, s, "k", time.Hour, 1)
	assertCount(t, s, "k", time.Hour, 2)
	assertCount(t, s, "other", time.Hour, 1)
	must(t, s.ClearFailures(t.Context(), "k"))
	assertPeek(t, s, "k", 0)
	assertCount(t, s, "k", time.Hour, 1)
	assertCount(t, s, "other", time.Hour, 2)
	must(t, s.ClearFailures(t.Context(), "never-counted"))
}

// testFailureWindow moves the store's clock (with testDenialEnds, the
// tests of time): the window is measured from the first failure, so a
// failure 78 minutes after the first one starts a new window of an hour
// even though the previous failure was only 48 minutes earlier. (The
// window is an hour, not a second, so that the real time a loaded machine
// takes between the steps cannot end it early on a backend whose windows
// the server times.)
func testFailureWindow(t *testing.T, open timedOpener) {
	s, clock := open(t)
	const window = time.Hour
	assertCount(t, s, "k", window, 1)
	clock.Advance(30 * time.Minute)
	assertCount(t, s, "k", window, 2)
	clock.Advance(48 * time.Minute)
	assertPeek(t, s, "k", 0)
	assertCount(t, s, "k", window, 1)
	assertCount(t, s, "k", window, 2)
}

// ---- events ----

var eventTests = []test{
	{name: "Token", run: testTokenEvents},
	{name: "User", run: testUserEvents},
	{name: "FailedWrites", run: testNoEventOnFailure},
	{name: "Unsubscribe", run: testUnsubscribe},
	{name: "Client", run: testClientEvents},
	{name: "Keyring", run: testKeyringEvents},
	{name: "Denied", run: testDeniedEvents},
	{name: "FailedNewWrites", run: testNoEventOnFailedNewWrites},
}

func testTokenEvents(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	rec, _ := subscribe(t, s)
	ctx := t.Context()
	tok := newToken("alice", "Work")
	want := store.Event{Kind: store.EventToken, Hash: tok.Hash}

	must(t, s.CreateToken(ctx, tok, 0))
	rec.assertGot(t, "CreateToken", want)
	_, err := s.UpdateToken(ctx, "alice", tok.ID, func(tok *store.Token) error {
		tok.Enabled = false
		return nil
	})
	must(t, err)
	rec.assertGot(t, "UpdateToken", want)
	_, err = s.DeleteToken(ctx, "alice", tok.ID)
	must(t, err)
	rec.assertGot(t, "DeleteToken", want)
}

func testUserEvents(t *testing.T, open opener) {
	f := setup(t, open)
	rec, _ := subscribe(t, f.s)
	want := store.Event{Kind: store.EventUser, Owner: "alice"}

	_, err := f.s.UpdateUser(t.Context(), "alice", func(u *store.User) error {
		u.Disabled = true
		return nil
	})
	must(t, err)
	rec.assertGot(t, "UpdateUser", want)
	must(t, f.s.DeleteUser(t.Context(), "alice"))
	rec.assertGot(t, "DeleteUser", want)
}

func testNoEventOnFailure(t *testing.T, open opener) {
	cases := []struct {
		name  string
		write func(ctx context.Context, f fixture) error
		want  error
	}{
		{"CreateTokenLabelTaken", func(ctx context.Context, f fixture) error {
			return f.s.CreateToken(ctx, newToken("alice", "work"), 0)
		}, store.ErrLabelTaken},
		{"CreateTokenLimit", func(ctx context.Context, f fixture) error {
			return f.s.CreateToken(ctx, newToken("alice", ""), 2)
		}, store.ErrTokenLimit},
		{"CreateTokenMissingOwner", func(ctx context.Context, f fixture) error {
			return f.s.CreateToken(ctx, newToken("nobody", ""), 0)
		}, store.ErrNotFound},
		{"UpdateTokenFnError", func(ctx context.Context, f fixture) error {
			_, err := f.s.UpdateToken(ctx, "alice", f.work.ID, func(tok *store.Token) error {
				tok.Enabled = false
				return errBoom
			})
			return err
		}, errBoom},
		{"UpdateTokenLabelTaken", func(ctx context.Context, f fixture) error {
			_, err := f.s.UpdateToken(ctx, "alice", f.home.ID, func(tok *store.Token) error {
				tok.LabelKey = f.work.LabelKey
				return nil
			})
			return err
		}, store.ErrLabelTaken},
		{"UpdateTokenMissing", func(ctx context.Context, f fixture) error {
			_, err := f.s.UpdateToken(ctx, "alice", "no-such-id", func(*store.Token) error { return nil })
			return err
		}, store.ErrNotFound},
		{"DeleteTokenMissing", func(ctx context.Context, f fixture) error {
			_, err := f.s.DeleteToken(ctx, "alice", "no-such-id")
			return err
		}, store.ErrNotFound},
		{"UpdateUserFnError", func(ctx context.Context, f fixture) error {
			_, err := f.s.UpdateUser(ctx, "alice", func(u *store.User) error {
				u.Disabled = true
				return errBoom
			})
			return err
		}, errBoom},
		{"UpdateUserMissing", func(ctx context.Context, f fixture) error {
			_, err := f.s.UpdateUser(ctx, "nobody", func(*store.User) error { return nil })
			return err
		}, store.ErrNotFound},
		{"DeleteUserMissing", func(ctx context.Context, f fixture) error {
			return f.s.DeleteUser(ctx, "nobody")
		}, store.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, open)
			rec, _ := subscribe(t, f.s)
			assertErr(t, tc.write(t.Context(), f), tc.want)
			rec.assertNone(t, tc.name)
		})
	}
}

func testUnsubscribe(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	gone, cancel := subscribe(t, s)
	kept, _ := subscribe(t, s)
	cancel()

	tok := createToken(t, s, "alice", "")
	kept.assertGot(t, "CreateToken", store.Event{Kind: store.EventToken, Hash: tok.Hash})
	gone.assertNone(t, "CreateToken after cancel")
}

func testClientEvents(t *testing.T, open opener) {
	s := open(t)
	rec, _ := subscribe(t, s)
	ctx := t.Context()
	want := store.Event{Kind: store.EventClient, ID: "app"}

	must(t, s.CreateClient(ctx, newClient("app")))
	rec.assertGot(t, "CreateClient", want)
	_, err := s.UpdateClient(ctx, "app", func(c *store.Client) error {
		c.Enabled = false
		return nil
	})
	must(t, err)
	rec.assertGot(t, "UpdateClient", want)
	_, err = s.DeleteClient(ctx, "app")
	must(t, err)
	rec.assertGot(t, "DeleteClient", want)
}

func testKeyringEvents(t *testing.T, open opener) {
	s := open(t)
	rec, _ := subscribe(t, s)
	want := store.Event{Kind: store.EventDocument, ID: store.DocKeyring}
	for i, doc := range []string{"first", "second"} {
		_, err := s.UpdateDocument(t.Context(), store.DocKeyring, func([]byte) ([]byte, error) { return []byte(doc), nil })
		must(t, err)
		rec.assertGot(t, fmt.Sprintf("UpdateKeyring #%d", i+1), want)
	}
}

func testDeniedEvents(t *testing.T, open opener) {
	s := open(t)
	rec, _ := subscribe(t, s)
	until := now().Add(time.Hour)
	must(t, s.Deny(t.Context(), store.Denial{JTI: "jti-1", Until: until}))
	rec.assertDenied(t, "Deny", "jti-1", until)
	// Denying again is announced too; which Until the event then carries
	// (the one asked for or the later one kept) is not part of the contract.
	must(t, s.Deny(t.Context(), store.Denial{JTI: "jti-1", Until: until.Add(-time.Minute)}))
	rec.assertDenied(t, "second Deny", "jti-1", time.Time{})
}

// testNoEventOnFailedNewWrites is testNoEventOnFailure for clients and
// the keyring: prepare runs before the subscription, write after it.
func testNoEventOnFailedNewWrites(t *testing.T, open opener) {
	withClient := func(ctx context.Context, s store.Store) error {
		return s.CreateClient(ctx, newClient("app"))
	}
	withKeyring := func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return []byte("ring"), nil })
		return err
	}
	cases := []struct {
		name    string
		prepare func(ctx context.Context, s store.Store) error
		write   func(ctx context.Context, s store.Store) error
		want    error // nil: any error
	}{
		{"CreateClientExists", withClient, func(ctx context.Context, s store.Store) error {
			return s.CreateClient(ctx, newClient("app"))
		}, store.ErrClientExists},
		{"UpdateClientFnError", withClient, func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateClient(ctx, "app", func(c *store.Client) error {
				c.Enabled = false
				return errBoom
			})
			return err
		}, errBoom},
		{"UpdateClientChangesID", withClient, func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateClient(ctx, "app", func(c *store.Client) error {
				c.ID = "stolen"
				return nil
			})
			return err
		}, nil},
		{"UpdateClientMissing", withClient, func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateClient(ctx, "nobody", func(*store.Client) error { return nil })
			return err
		}, store.ErrNotFound},
		{"DeleteClientMissing", withClient, func(ctx context.Context, s store.Store) error {
			_, err := s.DeleteClient(ctx, "nobody")
			return err
		}, store.ErrNotFound},
		{"UpdateKeyringFnErrorFirst", nil, func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateDocument(ctx, store.DocKeyring, func([]byte) ([]byte, error) { return []byte("x"), errBoom })
			return err
		}, errBoom},
		{"UpdateKeyringFnError", withKeyring, func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateDocument(ctx, store.DocKeyring, func(cur []byte) ([]byte, error) { return cur, errBoom })
			return err
		}, errBoom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if tc.prepare != nil {
				must(t, tc.prepare(t.Context(), s))
			}
			rec, _ := subscribe(t, s)
			err := tc.write(t.Context(), s)
			if tc.want == nil && err == nil {
				t.Fatalf("%s succeeded, want an error", tc.name)
			}
			if tc.want != nil {
				assertErr(t, err, tc.want)
			}
			rec.assertNone(t, tc.name)
		})
	}
}

// ---- check ----

// ---- ping ----

var pingTests = []test{
	{name: "Answers", run: testPing},
}

// testPing: an open store answers Ping; a Ping whose context has ended
// does not claim success.
func testPing(t *testing.T, open opener) {
	s := open(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with an ended context succeeded")
	}
}

var checkTests = []test{
	{name: "Consistent", run: testCheckConsistent},
}

func testCheckConsistent(t *testing.T, open opener) {
	f := setup(t, open)
	createUser(t, f.s, "bob")
	createToken(t, f.s, "bob", "Work")
	_, err := f.s.DeleteToken(t.Context(), "alice", f.home.ID)
	must(t, err)
	createUser(t, f.s, "carol")
	createToken(t, f.s, "carol", "")
	must(t, f.s.DeleteUser(t.Context(), "carol"))
	createUser(t, f.s, "carol2")
	// Clients, the keyring, the deny-list and sessions (also those of a
	// deleted user) are not inconsistencies.
	createSession(t, f.s, "alice", now())
	createSession(t, f.s, "carol2", now())
	must(t, f.s.DeleteUser(t.Context(), "carol2"))
	createClient(t, f.s, "app")
	_, err = f.s.UpdateDocument(t.Context(), store.DocKeyring, func([]byte) ([]byte, error) { return []byte("ring"), nil })
	must(t, err)
	must(t, f.s.Deny(t.Context(), store.Denial{JTI: "jti", Until: now().Add(time.Hour)}))

	for _, repair := range []bool{false, true} {
		rep, err := f.s.Check(t.Context(), repair)
		must(t, err)
		if len(rep.Problems) != 0 || rep.Repaired != 0 {
			t.Fatalf("Check(repair=%v) on a consistent store = %+v", repair, rep)
		}
	}
	assertGrant(t, lookup(t, f.s, f.work.Hash), f.work, f.user)
}

// ---- concurrency ----

var concurrencyTests = []test{
	{name: "Limit", run: testConcurrentLimit},
	{name: "Label", run: testConcurrentLabel},
	{name: "UpdateUser", run: testConcurrentUpdateUser},
	{name: "CountFailure", run: testConcurrentCountFailure},
	{name: "LookupDuringWrites", run: testLookupDuringWrites},
	{name: "UpdateClient", run: testConcurrentUpdateClient},
	{name: "UpdateKeyring", run: testConcurrentUpdateKeyring},
	{name: "Deny", run: testConcurrentDeny},
}

func testConcurrentLimit(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	errs := parallel(20, func(int) error {
		return s.CreateToken(t.Context(), newToken("alice", ""), 5)
	})
	assertOutcomes(t, errs, 5, store.ErrTokenLimit)
	if n := len(listTokens(t, s, "alice")); n != 5 {
		t.Fatalf("alice has %d tokens, want 5", n)
	}
}

func testConcurrentLabel(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	errs := parallel(10, func(int) error {
		return s.CreateToken(t.Context(), newToken("alice", "Work"), 0)
	})
	assertOutcomes(t, errs, 1, store.ErrLabelTaken)
	if n := len(listTokens(t, s, "alice")); n != 1 {
		t.Fatalf("alice has %d tokens, want 1", n)
	}
}

func testConcurrentUpdateUser(t *testing.T, open opener) {
	s := open(t)
	createUser(t, s, "alice")
	const n = 20
	errs := parallel(n, func(i int) error {
		_, err := s.UpdateUser(t.Context(), "alice", func(u *store.User) error {
			u.Roles = append(u.Roles, fmt.Sprintf("r%02d", i))
			return nil
		})
		return err
	})
	assertOutcomes(t, errs, n, nil)
	// Every read-modify-write kept the others' changes.
	if roles := getUser(t, s, "alice").Roles; len(roles) != n+1 {
		t.Fatalf("alice has roles %v, want the original one plus %d", roles, n)
	}
}

func testConcurrentCountFailure(t *testing.T, open opener) {
	s := open(t)
	const n = 30
	counts := make([]int64, n)
	errs := parallel(n, func(i int) (err error) {
		counts[i], err = s.CountFailure(t.Context(), "k", time.Hour)
		return err
	})
	assertOutcomes(t, errs, n, nil)
	slices.Sort(counts)
	for i, c := range counts {
		if c != int64(i+1) {
			t.Fatalf("concurrent counts = %v, want 1..%d each once", counts, n)
		}
	}
}

// testLookupDuringWrites is mostly for the race detector: readers must see
// a complete token while writers update it.
func testLookupDuringWrites(t *testing.T, open opener) {
	f := setup(t, open)
	errs := parallel(8, func(i int) error {
		for range 20 {
			if i%2 == 0 {
				if _, err := f.s.LookupToken(t.Context(), f.work.Hash); err != nil {
					return err
				}
				continue
			}
			_, err := f.s.UpdateToken(t.Context(), "alice", f.work.ID, func(tok *store.Token) error {
				tok.Enabled = !tok.Enabled
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	assertOutcomes(t, errs, len(errs), nil)
}

func testConcurrentUpdateClient(t *testing.T, open opener) {
	s := open(t)
	createClient(t, s, "app")
	const n = 20
	errs := parallel(n, func(i int) error {
		_, err := s.UpdateClient(t.Context(), "app", func(c *store.Client) error {
			c.Scopes = append(c.Scopes, fmt.Sprintf("s%02d", i))
			return nil
		})
		return err
	})
	assertOutcomes(t, errs, n, nil)
	if scopes := getClient(t, s, "app").Scopes; len(scopes) != n+1 {
		t.Fatalf("client has scopes %v, want the original one plus %d", scopes, n)
	}
}

// testConcurrentUpdateKeyring has 10 writers append one byte each: none
// may be lost. A writer that gets ErrConflict tries again, as that error
// asks; any other error fails the test.
func testConcurrentUpdateKeyring(t *testing.T, open opener) {
	s := open(t)
	const n, tries = 10, 100
	errs := parallel(n, func(i int) error {
		for range tries {
			got, err := s.UpdateDocument(t.Context(), store.DocKeyring, func(current []byte) ([]byte, error) {
				return append(slices.Clone(current), byte(i)), nil
			})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err == nil && (len(got) == 0 || got[len(got)-1] != byte(i)) {
				return fmt.Errorf("writer %d: UpdateKeyring returned %v, want it to end with %d", i, got, i)
			}
			return err
		}
		return fmt.Errorf("writer %d: ErrConflict %d times in a row", i, tries)
	})
	assertOutcomes(t, errs, n, nil)
	got, err := s.GetDocument(t.Context(), store.DocKeyring)
	must(t, err)
	sorted := slices.Sorted(slices.Values(got))
	for i, b := range sorted {
		if b != byte(i) || len(sorted) != n {
			t.Fatalf("keyring after %d concurrent appends = %v, want each of 0..%d once", n, got, n-1)
		}
	}
	if len(got) != n {
		t.Fatalf("keyring after %d concurrent appends = %v, want %d bytes", n, got, n)
	}
}

func testConcurrentDeny(t *testing.T, open opener) {
	s := open(t)
	const n = 20
	until := now().Add(time.Hour)
	want := make([]store.Denial, n)
	errs := parallel(n, func(i int) error {
		want[i] = store.Denial{JTI: fmt.Sprintf("jti-%02d", i), Until: until.Add(time.Duration(i) * time.Second)}
		return s.Deny(t.Context(), want[i])
	})
	assertOutcomes(t, errs, n, nil)
	assertDenials(t, listDenied(t, s), want...)
}

// ---- helpers ----

// fixture is the common starting point: user alice with tokens labelled
// "Work" and "Home".
type fixture struct {
	s          store.Store
	user       store.User
	work, home store.Token
}

func setup(t *testing.T, open opener) fixture {
	t.Helper()
	s := open(t)
	f := fixture{s: s, user: createUser(t, s, "alice")}
	f.work = createToken(t, s, "alice", "Work")
	f.home = createToken(t, s, "alice", "Home")
	return f
}

// now is the current time in a form every backend round-trips exactly.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

var ticks struct {
	sync.Mutex
	last time.Time
}

// tick is now, but strictly later than the previous tick, so that tokens
// created one after another list in that order even on a backend fast
// enough to create two within a microsecond.
func tick() time.Time {
	ticks.Lock()
	defer ticks.Unlock()
	next := ticks.last.Add(time.Microsecond)
	if t := now(); t.After(next) {
		next = t
	}
	ticks.last = next
	return next
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

func newUser(name string) store.User {
	at := now()
	return store.User{
		Name:         name,
		PasswordHash: "$2a$10$" + randomHex(16),
		Roles:        []string{"user"},
		TokenLogin:   true,
		CreatedAt:    at,
		UpdatedAt:    at,
	}
}

// newToken returns a token of owner with a random ID and hash; its
// LabelKey is the lowercased label.
func newToken(owner, label string) store.Token {
	var h store.TokenHash
	rand.Read(h[:])
	return store.Token{
		ID:        randomHex(8),
		Owner:     owner,
		Kind:      store.KindPAT,
		Hash:      h,
		Label:     label,
		LabelKey:  strings.ToLower(label),
		Scopes:    []string{"read"},
		Enabled:   true,
		CreatedAt: tick(),
	}
}

func use(tok store.Token) store.LastUse {
	return store.LastUse{Owner: tok.Owner, TokenID: tok.ID, At: tok.LastUsedAt, IP: tok.LastUsedIP, Host: tok.LastUsedHost}
}

func newClient(id string) store.Client {
	var h store.TokenHash
	rand.Read(h[:])
	at := tick()
	return store.Client{
		ID:         id,
		Name:       "Client " + id,
		SecretHash: h,
		Scopes:     []string{"read"},
		Enabled:    true,
		CreatedAt:  at,
		UpdatedAt:  at,
	}
}

func createClient(t *testing.T, s store.Store, id string) store.Client {
	t.Helper()
	c := newClient(id)
	must(t, s.CreateClient(t.Context(), c))
	return c
}

func getClient(t *testing.T, s store.Store, id string) store.Client {
	t.Helper()
	c, err := s.GetClient(t.Context(), id)
	must(t, err)
	return c
}

func listClients(t *testing.T, s store.Store) []store.Client {
	t.Helper()
	list, err := s.ListClients(t.Context())
	must(t, err)
	return list
}

func listDenied(t *testing.T, s store.Store) []store.Denial {
	t.Helper()
	list, err := s.ListDenied(t.Context())
	must(t, err)
	return list
}

func equalClient(a, b store.Client) bool {
	return a.ID == b.ID && a.Name == b.Name && a.SecretHash == b.SecretHash &&
		slices.Equal(a.AllowedIPs, b.AllowedIPs) && slices.Equal(a.Scopes, b.Scopes) &&
		a.Enabled == b.Enabled && a.CreatedAt.Equal(b.CreatedAt) &&
		a.UpdatedAt.Equal(b.UpdatedAt) &&
		slices.EqualFunc(a.PreviousSecrets, b.PreviousSecrets, func(x, y store.PreviousSecret) bool {
			return x.Hash == y.Hash && x.Until.Equal(y.Until)
		})
}

func assertClient(t *testing.T, got, want store.Client) {
	t.Helper()
	if !equalClient(got, want) {
		t.Fatalf("client:\n got %+v\nwant %+v", got, want)
	}
}

// assertClients checks that list holds exactly want, in that order, with
// every field intact.
func assertClients(t *testing.T, list []store.Client, want ...store.Client) {
	t.Helper()
	ids := func(cs []store.Client) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.ID
		}
		return out
	}
	if !slices.Equal(ids(list), ids(want)) {
		t.Fatalf("clients = %v, want %v", ids(list), ids(want))
	}
	for i := range list {
		assertClient(t, list[i], want[i])
	}
}

// bigKeyring is a keyring document of 16 KiB, more than a page.
func bigKeyring() []byte {
	return []byte(`{"keys":["` + randomHex(8<<10) + `"]}`)
}

func assertKeyring(t *testing.T, s store.Store, want []byte) {
	t.Helper()
	got, err := s.GetDocument(t.Context(), store.DocKeyring)
	must(t, err)
	if string(got) != string(want) {
		t.Fatalf("keyring = %q, want %q", got, want)
	}
}

// sameUntil compares denial ends to the microsecond, the precision every
// backend keeps (the suite's times are already truncated to it).
func sameUntil(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

// assertDenials checks that list holds exactly want, in any order (the
// contract gives none).
func assertDenials(t *testing.T, list []store.Denial, want ...store.Denial) {
	t.Helper()
	byJTI := func(a, b store.Denial) int { return strings.Compare(a.JTI, b.JTI) }
	got := slices.SortedFunc(slices.Values(list), byJTI)
	want = slices.SortedFunc(slices.Values(want), byJTI)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].JTI == want[i].JTI && sameUntil(got[i].Until, want[i].Until)
	}
	if !ok {
		t.Fatalf("denials:\n got %v\nwant %v", got, want)
	}
}

func createUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u := newUser(name)
	must(t, s.CreateUser(t.Context(), u))
	return u
}

func createToken(t *testing.T, s store.Store, owner, label string) store.Token {
	t.Helper()
	tok := newToken(owner, label)
	must(t, s.CreateToken(t.Context(), tok, 0))
	return tok
}

func getUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.GetUser(t.Context(), name)
	must(t, err)
	return u
}

func getToken(t *testing.T, s store.Store, tok store.Token) store.Token {
	t.Helper()
	got, err := s.GetToken(t.Context(), tok.Owner, tok.ID)
	must(t, err)
	return got
}

func listTokens(t *testing.T, s store.Store, owner string) []store.Token {
	t.Helper()
	list, err := s.ListTokens(t.Context(), owner)
	must(t, err)
	return list
}

func lookup(t *testing.T, s store.Store, h store.TokenHash) store.Grant {
	t.Helper()
	g, err := s.LookupToken(t.Context(), h)
	must(t, err)
	return g
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func assertErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func assertCount(t *testing.T, s store.Store, key string, window time.Duration, want int64) {
	t.Helper()
	got, err := s.CountFailure(t.Context(), key, window)
	must(t, err)
	if got != want {
		t.Fatalf("CountFailure(%q) = %d, want %d", key, got, want)
	}
}

// assertNotStored checks that neither tok's record nor its hash index
// exists.
func assertNotStored(t *testing.T, s store.Store, tok store.Token) {
	t.Helper()
	_, err := s.GetToken(t.Context(), tok.Owner, tok.ID)
	assertErr(t, err, store.ErrNotFound)
	_, err = s.LookupToken(t.Context(), tok.Hash)
	assertErr(t, err, store.ErrNotFound)
}

// assertTokens checks that list holds exactly want, in that order, with
// every field intact.
func assertTokens(t *testing.T, list []store.Token, want ...store.Token) {
	t.Helper()
	ids := func(ts []store.Token) []string {
		out := make([]string, len(ts))
		for i, tok := range ts {
			out[i] = tok.ID
		}
		return out
	}
	if !slices.Equal(ids(list), ids(want)) {
		t.Fatalf("tokens = %v, want %v", ids(list), ids(want))
	}
	for i := range list {
		assertToken(t, list[i], want[i])
	}
}

func assertGrant(t *testing.T, g store.Grant, tok store.Token, owner store.User) {
	t.Helper()
	assertToken(t, g.Token, tok)
	assertUser(t, g.Owner, owner)
}

// equalUser and equalToken compare times with Equal (backends may drop
// the monotonic reading and the location) and treat nil and empty slices
// alike.
func equalUser(a, b store.User) bool {
	return a.Name == b.Name && a.PasswordHash == b.PasswordHash &&
		slices.Equal(a.Roles, b.Roles) && a.TokenLogin == b.TokenLogin &&
		a.Disabled == b.Disabled && a.CreatedAt.Equal(b.CreatedAt) &&
		a.UpdatedAt.Equal(b.UpdatedAt)
}

func equalToken(a, b store.Token) bool {
	return a.ID == b.ID && a.Owner == b.Owner && a.Kind == b.Kind &&
		a.Hash == b.Hash && a.Label == b.Label && a.LabelKey == b.LabelKey &&
		slices.Equal(a.Scopes, b.Scopes) && slices.Equal(a.AllowedIPs, b.AllowedIPs) &&
		a.Enabled == b.Enabled && a.CreatedAt.Equal(b.CreatedAt) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.LastUsedAt.Equal(b.LastUsedAt) &&
		a.LastUsedIP == b.LastUsedIP && a.LastUsedHost == b.LastUsedHost &&
		slices.EqualFunc(a.Previous, b.Previous, func(x, y store.PreviousSecret) bool {
			return x.Hash == y.Hash && x.Until.Equal(y.Until)
		})
}

func assertUser(t *testing.T, got, want store.User) {
	t.Helper()
	if !equalUser(got, want) {
		t.Fatalf("user:\n got %+v\nwant %+v", got, want)
	}
}

func assertToken(t *testing.T, got, want store.Token) {
	t.Helper()
	if !equalToken(got, want) {
		t.Fatalf("token:\n got %+v\nwant %+v", got, want)
	}
}

// parallel runs fn(0..n-1) concurrently and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}

// assertOutcomes checks that exactly wantOK of errs are nil and that all
// others match rejected.
func assertOutcomes(t *testing.T, errs []error, wantOK int, rejected error) {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case rejected == nil || !errors.Is(err, rejected):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != wantOK {
		t.Fatalf("%d of %d calls succeeded, want %d", ok, len(errs), wantOK)
	}
}

// recorder collects the events a subscriber receives.
type recorder struct {
	mu     sync.Mutex
	events []store.Event
}

func (r *recorder) add(e store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// take returns the events received so far and forgets them.
func (r *recorder) take() []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.events
	r.events = nil
	return got
}

// assertGot checks, right after a write returned, that the write delivered
// want (the contract requires delivery before the write returns).
func (r *recorder) assertGot(t *testing.T, after string, want store.Event) {
	t.Helper()
	if got := r.take(); !slices.Contains(got, want) {
		t.Fatalf("events after %s = %+v, want one to be %+v", after, got, want)
	}
}

func (r *recorder) assertNone(t *testing.T, after string) {
	t.Helper()
	if got := r.take(); len(got) != 0 {
		t.Fatalf("events after %s = %+v, want none", after, got)
	}
}

// subscribe subscribes a new recorder; cancel ends the subscription.
func subscribe(t *testing.T, s store.Store) (*recorder, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	r := &recorder{}
	must(t, s.Subscribe(ctx, r.add))
	return r, cancel
}

// assertDenied checks, right after a write returned, that it delivered an
// EventDenied for jti ending at until (any end if until is zero). Until is
// compared with sameUntil, not ==, which would also compare locations.
func (r *recorder) assertDenied(t *testing.T, after, jti string, until time.Time) {
	t.Helper()
	got := r.take()
	for _, e := range got {
		if e.Kind == store.EventDenied && e.ID == jti && e.Hash == (store.TokenHash{}) && e.Owner == "" &&
			(until.IsZero() || sameUntil(e.Until, until)) {
			return
		}
	}
	t.Fatalf("events after %s = %+v, want one to be EventDenied for %q until %v", after, got, jti, until)
}
