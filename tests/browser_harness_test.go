package tests

// The browser harness: page tests drive a real headless Chromium (Debian's
// package) through chromedp and save a screenshot of every page and dialog
// under tests/screenshots.
//
// Each test starts its own browser (startBrowser): its own process, profile
// directory and cookies. Every helper takes the test, runs with a 30-second
// limit and fails the test with the page's URL and the console errors seen so
// far; none of them skips. Selectors are CSS selectors.
//
//	b := startBrowser(t, withLanguage("ru"), withTimeZone("Europe/Kyiv"))
//	b.navigate(t, gw.URL+"/account/")
//	b.typeInto(t, "#name", "ci")
//	b.click(t, "#create")
//	b.waitVisible(t, "dialog[open]")
//	b.screenshot(t, "tokens-create-dialog-ru")
//	b.assertNoConsoleErrors(t)

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
)

const (
	// browserActionTimeout bounds every helper call (and each run).
	browserActionTimeout = 30 * time.Second
	// browserStartTimeout bounds starting the browser and its first tab.
	browserStartTimeout = 60 * time.Second
	// screenshotDir is where screenshot writes, relative to the package
	// directory (go test runs there): tests/screenshots.
	screenshotDir = "screenshots"
)

// chromiumPath returns the browser to run: $CHROMIUM, else /usr/bin/chromium
// (Debian's package), else `chromium` in PATH. Without one it fails the test:
// browser tests never skip, `make test` installs the package.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("no chromium: the browser tests need Debian's chromium package; run `make test` " +
		"(it installs it) or `apt-get install chromium`, or point CHROMIUM at a Chromium binary")
	return ""
}

// browserConfig is what the browserOptions set.
type browserConfig struct {
	lang     string // "" for the browser's default (en-US)
	timeZone string // "" for the machine's zone
	phone    bool
}

// browserOption configures startBrowser.
type browserOption func(*browserConfig)

// withLanguage makes the browser speak lang (such as "ru"): the --lang flag,
// the Accept-Language header and navigator.language(s) (emulation's user
// agent override, and the header set once more as an extra header), and the
// default locale of Intl (emulation's locale override) all agree. The flag
// alone does nothing in headless mode on Linux: the header, navigator and
// Intl stay en-US; the overrides are what work.
func withLanguage(lang string) browserOption {
	return func(c *browserConfig) { c.lang = lang }
}

// withTimeZone sets the time zone the page sees (an IANA name such as
// "Europe/Kyiv"), for Date and Intl.
func withTimeZone(name string) browserOption {
	return func(c *browserConfig) { c.timeZone = name }
}

// withPhone emulates a phone: a 390x844 mobile viewport with touch.
func withPhone() browserOption {
	return func(c *browserConfig) { c.phone = true }
}

// browser is one headless Chromium with one tab, owned by one test.
type browser struct {
	ctx    context.Context // the tab's chromedp context
	output *syncBuffer     // the browser's stdout and stderr

	mu     sync.Mutex
	errors []string // console errors, exceptions, error log entries (CSP violations)
}

// startBrowser starts a headless Chromium with a fresh profile in
// t.TempDir() and a 1280x900 viewport (or a phone, withPhone), grants the
// clipboard permissions to every origin and starts collecting console
// errors. t.Cleanup closes it.
func startBrowser(t *testing.T, opts ...browserOption) *browser {
	t.Helper()
	var cfg browserConfig
	for _, o := range opts {
		o(&cfg)
	}
	b := &browser{output: &syncBuffer{}}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(b.output),
	}
	if cfg.lang != "" {
		flags = append(flags, chromedp.Flag("lang", cfg.lang))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		// Close the browser gracefully, then make sure the process is gone
		// (the allocator waits for it) before t.TempDir is removed.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelTab()
		cancelAlloc()
	})

	// The first Do starts the browser and binds it to ctx, so it gets no
	// deadline of its own; a watchdog cancels it if starting hangs.
	watchdog := time.AfterFunc(browserStartTimeout, cancelTab)
	err := chromedp.Do(ctx)
	watchdog.Stop()
	if err != nil {
		t.Fatalf("starting chromium: %v\nits output:\n%s", err, lastBytes(b.output.String(), 4000))
	}

	setup := []chromedp.Action[chromedp.Void]{
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			// No origin: granted to every origin (the test servers' ports
			// are not known yet). Without the grant, writeText from a
			// click works but readText is denied. Clipboard access also
			// needs a secure context: http://127.0.0.1 and localhost are.
			// (cdproto v0.160 has no Browser.grantPermissions; these two
			// descriptors are Chromium's clipboardReadWrite and
			// clipboardSanitizedWrite.)
			for _, name := range []string{"clipboard-read", "clipboard-write"} {
				desc := &cdpbrowser.PermissionDescriptor{Name: name}
				if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
					Permission: desc, Setting: cdpbrowser.PermissionSettingGranted,
				}); err != nil {
					return fmt.Errorf("granting %s: %w", name, err)
				}
			}
			return nil
		}),
		// The page behaves as the focused one even when another window
		// has the focus (focus and blur events, :focus-visible, the
		// clipboard's "document is not focused" check).
		cdpAction(emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}),
	}
	if cfg.lang != "" {
		setup = append(setup,
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				v, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{})
				if err != nil {
					return err
				}
				_, err = cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
					UserAgent: v.UserAgent, AcceptLanguage: cfg.lang,
				})
				return err
			}),
			cdpAction(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": cfg.lang},
			}),
			cdpAction(emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: cfg.lang}),
		)
	}
	if cfg.timeZone != "" {
		setup = append(setup, cdpAction(emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: cfg.timeZone}))
	}
	if cfg.phone {
		setup = append(setup, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	} else {
		// A 1280x900 window has a 1280x757 viewport in headless mode; pages
		// get the full 1280x900.
		setup = append(setup, chromedp.EmulateViewport(1280, 900))
	}
	b.run(t, setup...)
	return b
}

// cdpAction makes a protocol command an action on the tab.
func cdpAction[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

// listen collects console errors, uncaught exceptions and error entries of
// the browser log (CSP violations, failed loads). It runs in the tab's event
// loop: quick, no commands.
func (b *browser) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		if d.URL != "" {
			msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			parts = append(parts, remoteText(a))
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		if ev.Entry.Source == log.EntrySourceNetwork && strings.HasSuffix(ev.Entry.URL, "/favicon.ico") {
			return // the browser's own favicon request, not the page's doing
		}
		msg = fmt.Sprintf("log (%s): %s", ev.Entry.Source, ev.Entry.Text)
		if ev.Entry.URL != "" {
			msg += " (" + ev.Entry.URL + ")"
		}
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

// remoteText renders a console argument.
func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

// consoleErrors returns the console errors, uncaught exceptions and error log
// entries (CSP violations among them) seen so far.
func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// assertNoConsoleErrors fails the test if the page reported an error, other
// than those containing one of the ignore substrings (for an error a test
// provokes on purpose, such as a 401 the page answers).
func (b *browser) assertNoConsoleErrors(t testing.TB, ignore ...string) {
	t.Helper()
	var bad []string
next:
	for _, e := range b.consoleErrors() {
		for _, s := range ignore {
			if strings.Contains(e, s) {
				continue next
			}
		}
		bad = append(bad, e)
	}
	if len(bad) > 0 {
		t.Errorf("console errors on %s:\n  %s", b.pageURL(), strings.Join(bad, "\n  "))
	}
}

// run runs actions in order on the tab, each call bounded by 30 seconds; an
// error fails the test, naming the page's URL and the console errors.
func (b *browser) run(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, err)
	}
}

// runValue runs one action that returns a value, as run does.
func runValue[T any](t testing.TB, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserActionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, err)
	}
	return v
}

// fail ends the test with err, the page's URL and the console errors.
func (b *browser) fail(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("browser: %v\n  page: %s", err, b.pageURL())
	if errs := b.consoleErrors(); len(errs) > 0 {
		msg += "\n  console errors so far:\n    " + strings.Join(errs, "\n    ")
	} else {
		msg += "\n  no console errors so far"
	}
	t.Fatal(msg)
}

// pageURL is the tab's URL, or why it is unknown; for messages.
func (b *browser) pageURL() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("(unknown: %v)", err)
	}
	return u
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// isVisibleJS is a JavaScript expression: is an element matching sel there
// and rendered (not display:none, not hidden, not in a closed <dialog>)?
func isVisibleJS(sel string) string {
	return `(() => { const e = document.querySelector(` + jsString(sel) + `);
		return !!e && e.checkVisibility({visibilityProperty: true, opacityProperty: true}); })()`
}

// navigate opens url in the tab and waits for its load event.
func (b *browser) navigate(t testing.TB, url string) {
	t.Helper()
	b.run(t, chromedp.Navigate(url))
}

// url returns the tab's current URL.
func (b *browser) url(t testing.TB) string {
	t.Helper()
	return runValue(t, b, chromedp.Location())
}

// evalJS evaluates a JavaScript expression and decodes its result into T; a
// promise is awaited.
func evalJS[T any](t testing.TB, b *browser, expr string) T {
	t.Helper()
	return runValue(t, b, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// text returns the rendered text (innerText) of the first element matching
// sel, waiting for it to be in the page.
func (b *browser) text(t testing.TB, sel string) string {
	t.Helper()
	return runValue(t, b, chromedp.Text(chromedp.CSS(sel)))
}

// value returns the current value of the input, textarea or select matching
// sel, waiting for it to be in the page.
func (b *browser) value(t testing.TB, sel string) string {
	t.Helper()
	return runValue(t, b, chromedp.Value(chromedp.CSS(sel)))
}

// visible tells, without waiting, whether an element matching sel is in the
// page and rendered.
func (b *browser) visible(t testing.TB, sel string) bool {
	t.Helper()
	return evalJS[bool](t, b, isVisibleJS(sel))
}

// waitVisible waits until an element matching sel is in the page and
// rendered (as visible says).
func (b *browser) waitVisible(t testing.TB, sel string) {
	t.Helper()
	b.waitJS(t, isVisibleJS(sel))
}

// waitGone waits until no element matching sel is rendered: removed, hidden
// or in a closed <dialog>.
func (b *browser) waitGone(t testing.TB, sel string) {
	t.Helper()
	b.waitJS(t, "!"+isVisibleJS(sel))
}

// waitJS waits (up to 30 seconds) until the JavaScript expression expr is
// truthy. The page checks it every 20 ms and on every DOM change; a
// navigation in between (the page's execution context replaced) starts the
// wait again in the new page. chromedp.Poll is not used: it evaluates in the
// execution context chromedp last tracked, which right after a navigation can
// be the old page's ("Cannot find context with specified id").
func (b *browser) waitJS(t testing.TB, expr string) {
	t.Helper()
	page := `new Promise((resolve, reject) => {
		const check = () => { try { return !!(` + expr + `) } catch (e) { reject(e); return true } };
		if (check()) return resolve(true);
		const done = () => { clearInterval(timer); observer.disconnect(); clearTimeout(limit) };
		const again = () => { if (check()) { done(); resolve(true) } };
		const timer = setInterval(again, 20);
		const observer = new MutationObserver(again);
		observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
		const limit = setTimeout(() => { done(); resolve(false) }, %d);
	})`
	deadline := time.Now().Add(browserActionTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			b.fail(t, fmt.Errorf("waiting for %s: still false after %v", expr, browserActionTimeout))
		}
		ctx, cancel := context.WithTimeout(b.ctx, left+time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(page, left.Milliseconds()), chromedp.EvalAwaitPromise))
		cancel()
		switch {
		case err == nil && ok:
			return
		case err == nil:
			b.fail(t, fmt.Errorf("waiting for %s: still false after %v", expr, browserActionTimeout))
		case isContextGone(err) && time.Now().Before(deadline):
			continue // a navigation replaced the page: wait in the new one
		default:
			b.fail(t, fmt.Errorf("waiting for %s: %w", expr, err))
		}
	}
}

// isContextGone tells whether err says the page's JavaScript world went away
// under an evaluation (a navigation).
func isContextGone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Execution context was destroyed") ||
		strings.Contains(s, "Cannot find context with specified id") ||
		strings.Contains(s, "Inspected target navigated or closed")
}

// waitText waits until the rendered text of an element matching sel contains
// want.
func (b *browser) waitText(t testing.TB, sel, want string) {
	t.Helper()
	b.waitJS(t, `(() => { const e = document.querySelector(`+jsString(sel)+`);
		return !!e && e.innerText.includes(`+jsString(want)+`); })()`)
}

// click clicks (with the mouse, at its center) the first element matching sel,
// waiting for it to be rendered.
func (b *browser) click(t testing.TB, sel string) {
	t.Helper()
	b.run(t, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto clears the input or textarea matching sel (an input event tells the
// page) and types text into it key by key.
func (b *browser) typeInto(t testing.TB, sel, text string) {
	t.Helper()
	b.run(t,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(`+jsString(sel)+`);
			e.focus(); e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})); })()`),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// pressKey sends keys (characters, or kb constants such as kb.Escape, kb.Tab,
// kb.Enter) to the focused element.
func (b *browser) pressKey(t testing.TB, keys string) {
	t.Helper()
	b.run(t, chromedp.KeyEvent(keys))
}

// focused returns the id of the focused element ("" when it has none, or when
// the body has the focus).
func (b *browser) focused(t testing.TB) string {
	t.Helper()
	return evalJS[string](t, b, `document.activeElement && document.activeElement !== document.body ? document.activeElement.id : ""`)
}

// cookies returns every cookie the browser holds, for any site and path.
func (b *browser) cookies(t testing.TB) []*network.Cookie {
	t.Helper()
	return runValue(t, b, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, storage.GetCookies, storage.GetCookiesParams{})
		return res.Cookies, err
	})
}

// cookie returns the cookie called name, or nil.
func (b *browser) cookie(t testing.TB, name string) *network.Cookie {
	t.Helper()
	for _, c := range b.cookies(t) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// setCookies sets cookies in the browser (each needs URL, or Domain and Path).
func (b *browser) setCookies(t testing.TB, cookies ...*network.CookieParam) {
	t.Helper()
	b.run(t, cdpAction(network.SetCookies, network.SetCookiesParams{Cookies: cookies}))
}

// clipboard returns the clipboard's text, read by the page
// (navigator.clipboard.readText); a page must be open.
func (b *browser) clipboard(t testing.TB) string {
	t.Helper()
	return evalJS[string](t, b, `navigator.clipboard.readText()`)
}

// screenshotName is what a screenshot may be called: lower case words
// joined by hyphens, such as "tokens-create-dialog-ru".
var screenshotName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// screenshot saves a full-page PNG of the tab to
// tests/screenshots/<name>.png, replacing an older one.
func (b *browser) screenshot(t testing.TB, name string) {
	t.Helper()
	if !screenshotName.MatchString(name) {
		t.Fatalf("screenshot name %q: use lower case words joined by hyphens", name)
	}
	png := runValue(t, b, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lastBytes returns at most the last n bytes of s.
func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
