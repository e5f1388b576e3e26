package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp/kb"
)

// catalogue reads a language's messages from internal/i18n/locales, as
// the gateway embeds them.
func catalogue(t *testing.T, lang string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "internal", "i18n", "locales", lang, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no catalogue for %s: %v", lang, err)
	}
	msgs := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for k, v := range m {
			msgs[k] = v
		}
	}
	return msgs
}

var cyrillic = regexp.MustCompile(`\p{Cyrillic}`)

// pageWords is every text of the page a reader meets: the body's text
// (closed dialogs included) and the labels, titles and messages kept in
// attributes.
func pageWords(t testing.TB, b *browser) string {
	t.Helper()
	return evalJS[string](t, b, `[document.title, document.body.textContent,
		...[...document.querySelectorAll("[aria-label], [title], [placeholder]")].flatMap(e => [e.getAttribute("aria-label"), e.getAttribute("title"), e.getAttribute("placeholder")]),
		...Object.values(document.body.dataset)].filter(Boolean).join("\n")`)
}

// assertTranslated fails if the page shows an English message of the
// catalogue that the language translates differently (an untranslated
// string).
func assertTranslated(t *testing.T, b *browser, lang, page string, en, tr map[string]string) {
	t.Helper()
	for _, u := range untranslated(t, b, en, tr) {
		t.Errorf("%s in %s shows the English %s", page, lang, u)
	}
}

// untranslated lists the English messages of the catalogue (cut at their
// placeholders, long enough to tell) that the page shows although the
// language has its own words for them.
func untranslated(t *testing.T, b *browser, en, tr map[string]string) []string {
	t.Helper()
	words := pageWords(t, b)
	placeholder := regexp.MustCompile(`\{\d\}`)
	var found []string
	for k, v := range en {
		if tr[k] == v {
			continue // the same in both (clientId...)
		}
		for _, part := range placeholder.Split(v, -1) {
			part = strings.TrimSpace(part)
			if len(part) < 12 || !strings.Contains(part, " ") {
				continue // too short to tell
			}
			if strings.Contains(words, part) {
				found = append(found, fmt.Sprintf("%q (%s)", part, k))
			}
		}
	}
	return found
}

// assertLocalDates checks that every date of the page is written in the
// locale and time zone: as Intl formats its datetime there, with Cyrillic
// month names.
func assertLocalDates(t *testing.T, b *browser, lang, zone, page string) {
	t.Helper()
	got := evalJS[[][]string](t, b, `[...document.querySelectorAll("main time[datetime]")].map(e => {
		const o = e.hasAttribute("data-date") ? {dateStyle: "medium"} : {dateStyle: "medium", timeStyle: "short"};
		return [e.textContent, new Intl.DateTimeFormat(`+jsString(lang)+`, {...o, timeZone: `+jsString(zone)+`}).format(new Date(e.getAttribute("datetime"))), e.getAttribute("datetime")];
	})`)
	if len(got) == 0 {
		t.Errorf("%s in %s shows no date", page, lang)
	}
	for _, d := range got {
		if d[0] != d[1] {
			t.Errorf("%s in %s shows %s as %q, want %q (%s, %s)", page, lang, d[2], d[0], d[1], lang, zone)
		}
		if !cyrillic.MatchString(d[0]) {
			t.Errorf("%s in %s: the date %q has no Cyrillic month", page, lang, d[0])
		}
	}
}

// noHorizontalOverflow fails if the page is wider than the screen.
func noHorizontalOverflow(t *testing.T, b *browser, page string) {
	t.Helper()
	if w := evalJS[[]int](t, b, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		wide := evalJS[[]string](t, b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className + "#" + e.id)`)
		t.Errorf("%s overflows on a phone: scrollWidth %d > innerWidth %d; too wide: %v", page, w[0], w[1], wide)
	}
}

// TestBrowserLanguages: the sign-in page, the token page and its dialogs
// and the administrator's users page in Russian and Ukrainian (headings
// from the catalogues, no English left, dates in the locale and time
// zone), a Cyrillic label end to end, the language menu remembered over
// Accept-Language; the token page at a phone's width.
func TestBrowserLanguages(t *testing.T) {
	up := startUpstream(t)
	g := startGateway(t, embedded, up, gatewayConfig{siteOptions: uiSite})
	en := catalogue(t, "en")
	var secrets []string

	for _, c := range []struct{ lang, zone, user string }{
		{"ru", "Europe/Moscow", "ivan"},
		{"uk", "Europe/Kyiv", "olena"},
	} {
		t.Run(c.lang, func(t *testing.T) {
			tr := catalogue(t, c.lang)
			for _, k := range []string{"signin.title", "tokens.title", "create.title", "secret.title", "admin.users.title"} {
				if tr[k] == "" || tr[k] == en[k] || !cyrillic.MatchString(tr[k]) {
					t.Fatalf("%s catalogue: %s = %q", c.lang, k, tr[k])
				}
			}
			g.mustCLI(alicePassword+"\n", "user", "add", c.user, "--role", "admin", "--token-login")
			b := startBrowser(t, withLanguage(c.lang), withTimeZone(c.zone))

			b.navigate(t, g.base+"/account/tokens")
			b.waitVisible(t, "#signin-name")
			if got := b.text(t, "main h1"); got != tr["signin.title"] {
				t.Errorf("sign-in heading %q, want %q", got, tr["signin.title"])
			}
			if got := evalJS[string](t, b, `document.documentElement.lang`); got != c.lang {
				t.Errorf("the sign-in page's lang is %q", got)
			}
			if got := b.text(t, `label[for=signin-name]`); got != tr["signin.name"] {
				t.Errorf("the user name label reads %q, want %q", got, tr["signin.name"])
			}
			assertTranslated(t, b, c.lang, "sign-in", en, tr)
			b.screenshot(t, "signin-"+c.lang)

			signInPage(t, b, g, c.user, alicePassword)
			if got := b.text(t, "main h1"); got != tr["tokens.title"] {
				t.Errorf("token page heading %q, want %q", got, tr["tokens.title"])
			}
			b.click(t, "#create-open")
			b.waitVisible(t, "#create-dialog")
			if got := b.text(t, "#create-title"); got != tr["create.title"] {
				t.Errorf("create dialog title %q, want %q", got, tr["create.title"])
			}
			if got := b.text(t, `label[for=create-label]`); got != tr["create.label"] || !cyrillic.MatchString(got) {
				t.Errorf("the label field's label reads %q", got)
			}
			// The rules as you type speak the language too.
			b.typeInto(t, "#create-label", strings.Repeat("ж", 21))
			if e := labelError(t, b, "#create-form"); !cyrillic.MatchString(e) {
				t.Errorf("the too-long label message is %q", e)
			}
			// The date field shows only for "a date".
			if b.visible(t, "#create-date") {
				t.Error("the date field shows while the lifetime is 30 days")
			}
			b.selectOption(t, "#create-expires", "date")
			if !b.visible(t, "#create-date") {
				t.Error("the date field is hidden after choosing a date")
			}
			b.selectOption(t, "#create-expires", "30")
			label := "Телеграм ключ"
			b.typeInto(t, "#create-label", label)
			if e := labelError(t, b, "#create-form"); e != "" {
				t.Errorf("a Cyrillic label of 13 characters is refused as you type: %q", e)
			}
			b.screenshot(t, "tokens-create-dialog-"+c.lang)
			b.click(t, "#create-form button[type=submit]")
			b.waitVisible(t, "#secret-dialog")
			if got := b.text(t, "#secret-title"); got != tr["secret.title"] {
				t.Errorf("secret dialog title %q, want %q", got, tr["secret.title"])
			}
			secret := b.value(t, "#secret-value")
			secrets = append(secrets, secret)
			b.screenshot(t, "tokens-secret-dialog-"+c.lang)
			b.exec(t, `window.__oldPage = true`)
			b.click(t, "#secret-dialog [data-copy]")
			b.waitJS(t, `!window.__oldPage && document.readyState === "complete"`)
			b.waitVisible(t, "tr[data-token]")
			if got := b.text(t, "tr[data-token] .label-text"); got != label {
				t.Errorf("the row's label reads %q, want %q", got, label)
			}
			if got := b.clipboard(t); got != secret {
				t.Errorf("the clipboard holds %.8q...", got)
			}
			if out := g.mustCLI("", "user", "tokens", c.user); !strings.Contains(out, label) {
				t.Errorf("the CLI lists %s's tokens as %s", c.user, out)
			}
			if r := do(t, http.MethodGet, g.base+"/orders", bearer(secret), ""); r.status != http.StatusOK {
				t.Errorf("the token labelled %q through the gateway: %d %s", label, r.status, r.body)
			}
			b.navigate(t, g.base+"/account/tokens")
			if got := b.text(t, "tr[data-token] .last-access"); !cyrillic.MatchString(got) {
				t.Errorf("last access after a use reads %q", got)
			}
			if got := b.text(t, "table.tokens thead"); !strings.Contains(got, tr["tokens.col.created"]) {
				t.Errorf("the table's columns read %q", got)
			}
			assertLocalDates(t, b, c.lang, c.zone, "the token page")
			assertTranslated(t, b, c.lang, "the token page", en, tr)
			b.screenshot(t, "tokens-"+c.lang)

			b.navigate(t, g.base+"/account/admin/users")
			if got := b.text(t, "main h1"); got != tr["admin.users.title"] {
				t.Errorf("users page heading %q, want %q", got, tr["admin.users.title"])
			}
			if got := b.text(t, "table.users thead"); !strings.Contains(got, tr["admin.users.col.name"]) {
				t.Errorf("the users table's columns read %q", got)
			}
			assertLocalDates(t, b, c.lang, c.zone, "the users page")
			assertTranslated(t, b, c.lang, "the users page", en, tr)
			b.screenshot(t, "admin-users-"+c.lang)
			b.click(t, `button[data-open=add-user]`)
			b.waitVisible(t, "#add-user")
			if got := b.text(t, "#add-user-title"); got != tr["admin.users.add_title"] {
				t.Errorf("the add user dialog's title %q", got)
			}
			b.screenshot(t, "admin-users-add-dialog-"+c.lang)
			b.pressKey(t, kb.Escape)

			// The language menu: English, remembered over Accept-Language.
			b.waitGone(t, "#add-user")
			b.click(t, "details.lang summary")
			b.click(t, `details.lang a[hreflang=en]`)
			b.waitJS(t, `document.readyState === "complete" && document.documentElement.lang === "en"`)
			if u := b.url(t); !strings.HasSuffix(u, "/account/admin/users") {
				t.Errorf("after choosing English the browser is at %s", u)
			}
			if got := b.text(t, "main h1"); got != en["admin.users.title"] {
				t.Errorf("after choosing English the heading is %q", got)
			}
			if ck := b.cookie(t, "tokengate-lang"); ck == nil || ck.Value != "en" {
				t.Errorf("the language cookie: %+v", ck)
			}
			b.navigate(t, g.base+"/account/tokens")
			if got := b.text(t, "main h1"); got != en["tokens.title"] {
				t.Errorf("after a reload with Accept-Language %s the heading is %q", c.lang, got)
			}
			// The check for English left in a page sees it where it is.
			if n := len(untranslated(t, b, en, tr)); n < 10 {
				t.Errorf("the English token page has only %d English messages the check sees", n)
			}
			if al := evalJS[string](t, b, `navigator.language`); !strings.HasPrefix(al, c.lang) {
				t.Errorf("the browser's language is %q, the test proves nothing", al)
			}
			b.assertNoConsoleErrors(t)
		})
	}

	t.Run("phone", func(t *testing.T) {
		g.mustCLI(alicePassword+"\n", "user", "add", "alice", "--token-login")
		s1, _ := createPAT(t, g, "alice", alicePassword, `{"label":"a rather long label","scopes":["read","write"],"allowed_ips":["203.0.113.0/24","2001:db8::/32"]}`)
		s2, _ := createPAT(t, g, "alice", alicePassword, `{"label":"ci"}`)
		secrets = append(secrets, s1, s2)
		if r := do(t, http.MethodGet, g.base+"/orders", bearer(s2), ""); r.status != http.StatusOK {
			t.Fatalf("a token: %d", r.status)
		}
		b := startBrowser(t, withPhone())
		b.navigate(t, g.base+"/account/signin")
		b.waitVisible(t, "#signin-name")
		if w := evalJS[int](t, b, `window.innerWidth`); w != 390 {
			t.Fatalf("the page's width on the phone is %d", w)
		}
		noHorizontalOverflow(t, b, "the sign-in page")
		b.screenshot(t, "signin-phone")
		signInPage(t, b, g, "alice", alicePassword)
		b.waitVisible(t, "tr[data-token]")
		noHorizontalOverflow(t, b, "the token page")
		b.screenshot(t, "tokens-phone")
		b.click(t, "#create-open")
		b.waitVisible(t, "#create-dialog")
		noHorizontalOverflow(t, b, "the create dialog")
		if r := evalJS[float64](t, b, `document.querySelector("#create-dialog").getBoundingClientRect().right`); r > 390 {
			t.Errorf("the create dialog ends at %.0f px on a 390 px screen", r)
		}
		b.screenshot(t, "tokens-create-dialog-phone")
		b.pressKey(t, kb.Escape)
		b.waitGone(t, "#create-dialog")
		b.click(t, `tr[data-token] button[data-open=edit-dialog]`)
		b.waitVisible(t, "#edit-dialog")
		noHorizontalOverflow(t, b, "the edit dialog")
		// A token that is on offers "Switch off" only, not both.
		if !b.visible(t, `#edit-dialog form:has(input[value=disable])`) || b.visible(t, `#edit-dialog form:has(input[value=enable])`) {
			t.Errorf("the edit dialog of an active token shows: %q", b.text(t, "#edit-dialog"))
		}
		b.screenshot(t, "tokens-edit-dialog-phone")
		b.assertNoConsoleErrors(t)
	})
	g.assertNoSecrets(secrets...)
}
