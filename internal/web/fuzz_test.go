package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/bruteforce"
	"github.com/tokengate/tokengate/internal/lastuse"
	"github.com/tokengate/tokengate/internal/pat"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store/boltstore"
	"github.com/tokengate/tokengate/internal/testutil/fuzztest"
	"github.com/tokengate/tokengate/internal/users"
)

// FuzzExpiresIn: the create dialog's lifetime (a number of days, a date
// in any time zone, "never"), at any moment, is refused with a 400 on its
// field or becomes a lifetime the token service takes: none, or 1 second
// to pat.MaxLifetime.
func FuzzExpiresIn(f *testing.F) {
	noon := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for _, s := range []struct {
		choice, date, tz string
		now              int64
	}{
		{"30", "", "", noon}, {"never", "", "", noon}, {"date", "2025-06-01", "Europe/Kyiv", noon},
		{"date", "2125-05-07", "UTC", noon}, {"date", "2025-05-31", "Pacific/Kiritimati", noon},
		{"date", "2025-06-01", "UTC", time.Date(2025, 6, 1, 23, 59, 59, 800_000_000, time.UTC).UnixNano()},
		{"date", "0000-01-01", "../etc/passwd", noon}, {"date", "2025-13-01", "Local", noon}, {"7 ", "", "", noon},
		{"-30", "", "", noon}, {"date", "9999-12-31", "America/New_York", noon}, {"", "", "", noon},
	} {
		f.Add(s.choice, s.date, s.tz, s.now)
	}
	f.Fuzz(func(t *testing.T, choice, date, tz string, nowNanos int64) {
		now := time.Unix(0, nowNanos)
		secs, err := expiresIn(choice, date, tz, now, 0)
		if err != nil {
			if p := apierr.For(err); p.Status != http.StatusBadRequest || (p.Field != "expires" && p.Field != "expires_date") {
				t.Fatalf("expiresIn(%q, %q, %q) = %v: %d on %q", choice, date, tz, err, p.Status, p.Field)
			}
			return
		}
		if secs == nil {
			if choice != "never" {
				t.Fatalf("expiresIn(%q, %q, %q) = never", choice, date, tz)
			}
			return
		}
		if *secs < 1 || *secs > int64(pat.MaxLifetime/time.Second) {
			t.Fatalf("expiresIn(%q, %q, %q) at %v = %d s, which the token service refuses", choice, date, tz, now, *secs)
		}
	})
}

// FuzzSplitList: the allowed-addresses box splits into non-empty entries
// without separators, and the entries joined by commas split the same.
func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"10.0.0.1, 10.0.0.2\n::1;fe80::/10\t", "", " , ;\r\n", "a,,b", "é\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := splitList(s)
		for _, e := range got {
			if e == "" || strings.ContainsAny(e, ", \n\r\t;") {
				t.Fatalf("splitList(%q) = %q", s, got)
			}
		}
		if again := splitList(strings.Join(got, ",")); !slices.Equal(again, got) {
			t.Fatalf("splitList(%q) = %q, joined and split again %q", s, got, again)
		}
	})
}

// FuzzTokenForms posts any form body to the token routes (create, change,
// revoke; $ID is a token of alice's) and the sign-in form through
// UI.ServeHTTP, as alice signed in with her CSRF token (unless the input
// says not to), on a real embedded store: no answer is a 5xx, no error
// answer of the token routes echoes a secret the form carried or her
// password, and a refused sign-in never shows the password typed.
func FuzzTokenForms(f *testing.F) {
	st, err := boltstore.Open(filepath.Join(f.TempDir(), "tg.db"), boltstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	us := users.NewService(st, 4, nil)
	// Failures are forgotten after a millisecond: no lock-out or
	// slow-down hides the paths behind a wrong password.
	auth, err := users.NewAuthenticator(st, bruteforce.New(st, bruteforce.Limits{Window: time.Millisecond}), 4)
	if err != nil {
		f.Fatal(err)
	}
	pats := pat.NewService(st, lastuse.New(st), 50, nil)
	sessions := session.New(st, st, session.Options{})
	us.SetSessions(sessions)
	ui, err := New(Options{Prefix: "/account", Sessions: sessions, Logins: auth, Users: us, Tokens: pats, Scopes: []string{"read", "write"}})
	if err != nil {
		f.Fatal(err)
	}
	fx := &fixture{ui: ui, store: st, users: us, pats: pats}
	fx.addUser(f, "alice", true)
	b := fx.signIn(f, "alice")
	own, err := pats.Create(ctx, "alice", pat.CreateRequest{Label: "own"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		route      uint8
		form       string
		json, csrf bool
	}{
		{0, "label=ci&scopes=read&scopes=write&expires=30&allowed_ips=10.0.0.1%2C+::1", true, true},
		{0, "label=ci2&expires=date&expires_date=2030-01-31&tz=Europe%2FKyiv", false, true},
		{0, "label=$PAT&scopes=$LEGACY&expires=$JWT&allowed_ips=$CS", true, true},
		{0, "label=x&scopes=admin&expires=never", true, true},
		{0, "label=x&expires=date&expires_date=$PAT&tz=$CS", true, true},
		{0, "label=x&expires=7&allowed_ips=$PAT%0A10.0.0.0%2F8", true, false},
		{1, "action=rename&label=renamed", true, true},
		{1, "action=allowed_ips&allowed_ips=$LEGACY", true, true},
		{1, "action=disable", false, true},
		{1, "action=$PAT", true, true},
		{2, "", true, true},
		{3, "name=alice&password=$PW&next=%2Faccount%2Ftokens", false, false},
		{3, "name=alice&password=wrong+password&source=$PW", true, false},
		{0, "%zz=1&label=", true, true},
	} {
		f.Add(s.route, s.form, s.json, s.csrf)
	}
	routes := []string{"/account/tokens", "/account/tokens/$ID", "/account/tokens/$ID/revoke", "/account/signin"}
	f.Fuzz(func(t *testing.T, route uint8, form string, asJSON, withCSRF bool) {
		secrets := fuzztest.NewSecrets(t)
		form = secrets.Expand(strings.ReplaceAll(form, "$PW", password))
		rt := routes[int(route)%len(routes)]
		if withCSRF {
			form += "&csrf=" + url.QueryEscape(b.csrf)
		}
		r := httptest.NewRequest(http.MethodPost, "http://gw.example"+strings.ReplaceAll(rt, "$ID", own.ID), strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://gw.example")
		if rt != "/account/signin" {
			// (A sign-in would end the session the other routes use.)
			r.Header.Set("Cookie", b.cookie)
		}
		if asJSON {
			r.Header.Set("Accept", "application/json")
		}
		w := httptest.NewRecorder()
		ui.ServeHTTP(w, r, "192.0.2.10")
		body := w.Body.String()
		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", rt, form, w.Code, body)
		}
		if rt == "/account/signin" {
			// The form is filled in again with the name typed (for the
			// same browser: no error message), never with the password.
			vals, _ := url.ParseQuery(form)
			pw := vals.Get("password")
			if w.Code >= 400 && len(pw) >= 4 && strings.Contains(body, pw) &&
				!strings.Contains(vals.Get("name"), pw) && !strings.Contains(vals.Get("next"), pw) {
				t.Fatalf("POST %s %q: the answer holds the password typed: %s", rt, form, body)
			}
			return
		}
		if w.Code >= 400 && strings.Contains(body, password) {
			t.Fatalf("POST %s %q: the error answer holds the password: %s", rt, form, body)
		}
		secrets.CheckAnswer(t, w.Code, w.Header(), body)
	})
}
