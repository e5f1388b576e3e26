package tests

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp/kb"
)

// smokePage is the harness's own page: a copy button, a modal <dialog>, a
// date printed by Intl in the browser's locale and time zone, and what the
// server saw of the language.
var smokePage = template.Must(template.New("smoke").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness</title>
<style>body{font-family:sans-serif;margin:2em} dialog::backdrop{background:rgba(0,0,0,.4)}</style>
</head><body>
<h1>Harness · Проверка</h1>
<p>Accept-Language: <span id="accept">{{.}}</span>, navigator.language: <span id="lang"></span></p>
<p>Date: <span id="date"></span></p>
<p><button id="copy">Copy</button> <span id="copied"></span></p>
<p><button id="open">Open dialog</button></p>
<p><label>Outside <input id="outside"></label></p>
<dialog id="dlg"><p>Name your token</p><input id="name"> <button id="close">Close</button></dialog>
<script src="/page.js"></script>
</body></html>`))

const smokeJS = `
const when = new Date(Date.UTC(2026, 0, 15, 22, 30));
document.getElementById("date").textContent =
	new Intl.DateTimeFormat(undefined, {dateStyle: "long", timeStyle: "short"}).format(when);
document.getElementById("lang").textContent = navigator.language;
document.getElementById("copy").addEventListener("click", async () => {
	await navigator.clipboard.writeText("copied-ok");
	document.getElementById("copied").textContent = "done";
});
document.getElementById("open").addEventListener("click", () => document.getElementById("dlg").showModal());
document.getElementById("close").addEventListener("click", () => document.getElementById("dlg").close());
`

// smokeServer serves the page (with a strict CSP, as the gateway's pages
// will have), its script, a page breaking the CSP and a page with errors.
func smokeServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	csp := "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'"
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		http.SetCookie(w, &http.Cookie{Name: "smoke", Value: "1", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		_ = smokePage.Execute(w, r.Header.Get("Accept-Language"))
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write([]byte(smokeJS))
	})
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		_, _ = w.Write([]byte(`<!doctype html><p>csp</p><script>document.title = "inline ran"</script>`))
	})
	mux.HandleFunc("GET /errors", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<!doctype html><p>errors</p><script>console.error("bad thing", 42);
setTimeout(() => { document.body.dataset.thrown = "yes"; throw new Error("boom") }, 0)</script>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserHarness proves the harness on its own page: clipboard, dialog
// focus, language and time zone, phone viewport, typing, cookies, console
// errors and screenshots. Without chromium it fails; it never skips.
func TestBrowserHarness(t *testing.T) {
	srv := smokeServer(t)
	// One browser per subtest, in parallel.
	t.Run("browsers", func(t *testing.T) { smokeBrowsers(t, srv) })
}

// shot takes a screenshot and checks that its file is new and not empty.
func shot(t *testing.T, b *browser, name string) {
	t.Helper()
	path := filepath.Join(screenshotDir, name+".png")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	b.screenshot(t, name)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if fi.Size() == 0 {
		t.Errorf("screenshot %s is empty", name)
	}
}

func smokeBrowsers(t *testing.T, srv *httptest.Server) {
	t.Run("en", func(t *testing.T) {
		t.Parallel()
		b := startBrowser(t)
		b.navigate(t, srv.URL+"/")
		if got := evalJS[string](t, b, "innerWidth + 'x' + innerHeight"); got != "1280x900" {
			t.Errorf("viewport = %s, want 1280x900", got)
		}
		if got := b.text(t, "#date"); !strings.Contains(got, "January") {
			t.Errorf("date in the default locale = %q, want English", got)
		}

		// Clipboard round trip: page code writes, the test reads.
		b.click(t, "#copy")
		b.waitText(t, "#copied", "done")
		if got := b.clipboard(t); got != "copied-ok" {
			t.Errorf("clipboard = %q, want copied-ok", got)
		}

		// The dialog: it opens, the focus moves into it, Escape closes it and
		// the focus comes back to the button that opened it.
		if b.visible(t, "#dlg") {
			t.Fatal("dialog visible before it was opened")
		}
		b.click(t, "#open")
		b.waitVisible(t, "#dlg")
		if got := b.focused(t); got != "name" {
			t.Errorf("focus after opening the dialog is on %q, want name", got)
		}
		b.typeInto(t, "#name", "first")
		b.typeInto(t, "#name", "ci token")
		if got := b.value(t, "#name"); got != "ci token" {
			t.Errorf("value after typing twice = %q, want the second text only", got)
		}
		shot(t, b, "harness-dialog-en")
		b.pressKey(t, kb.Escape)
		b.waitGone(t, "#dlg")
		if got := b.focused(t); got != "open" {
			t.Errorf("focus after closing the dialog is on %q, want open", got)
		}

		// Cookies: the server's, and one the test sets.
		if c := b.cookie(t, "smoke"); c == nil || !c.HTTPOnly {
			t.Errorf("cookie smoke = %+v, want the server's HttpOnly cookie", c)
		}
		b.setCookies(t, &network.CookieParam{Name: "set", Value: "by-test", URL: srv.URL})
		if got := evalJS[string](t, b, "document.cookie"); got != "set=by-test" {
			t.Errorf("document.cookie = %q, want set=by-test", got)
		}
		if !strings.HasPrefix(b.url(t), srv.URL) {
			t.Errorf("url = %q", b.url(t))
		}
		shot(t, b, "harness-page-en")
		b.assertNoConsoleErrors(t)
	})

	t.Run("ru", func(t *testing.T) {
		t.Parallel()
		b := startBrowser(t, withLanguage("ru"), withTimeZone("Europe/Kyiv"))
		b.navigate(t, srv.URL+"/")
		// 22:30 UTC on January 15 is 00:30 on January 16 in Kyiv.
		if got := b.text(t, "#date"); !strings.Contains(got, "16 января 2026") || !strings.Contains(got, "00:30") {
			t.Errorf("date in ru, Europe/Kyiv = %q, want 16 января 2026 at 00:30", got)
		}
		if got := b.text(t, "#accept"); got != "ru" {
			t.Errorf("Accept-Language = %q, want ru", got)
		}
		if got := b.text(t, "#lang"); got != "ru" {
			t.Errorf("navigator.language = %q, want ru", got)
		}
		b.click(t, "#open")
		b.waitVisible(t, "#dlg")
		shot(t, b, "harness-dialog-ru")
		b.assertNoConsoleErrors(t)
	})

	t.Run("phone", func(t *testing.T) {
		t.Parallel()
		b := startBrowser(t, withPhone())
		b.navigate(t, srv.URL+"/")
		if got := evalJS[int](t, b, "window.innerWidth"); got != 390 {
			t.Errorf("innerWidth = %d, want 390", got)
		}
		shot(t, b, "harness-page-phone")
		b.assertNoConsoleErrors(t)
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		b := startBrowser(t)
		b.navigate(t, srv.URL+"/csp")
		b.navigate(t, srv.URL+"/errors")
		b.waitJS(t, `document.body.dataset.thrown === "yes"`)
		for _, w := range []string{"Content Security Policy", "bad thing 42", "boom"} {
			found := false
			for _, e := range b.consoleErrors() {
				found = found || strings.Contains(e, w)
			}
			if !found {
				t.Errorf("no console error containing %q in %q", w, b.consoleErrors())
			}
		}
		if got := evalJS[string](t, b, "document.title"); got == "inline ran" {
			t.Error("inline script ran despite the CSP")
		}
	})
}
