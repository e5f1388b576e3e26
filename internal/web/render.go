package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/breaker"
	"github.com/tokengate/tokengate/internal/i18n"
	"github.com/tokengate/tokengate/internal/jsonbody"
	"github.com/tokengate/tokengate/internal/label"
	"github.com/tokengate/tokengate/internal/policy"
	"github.com/tokengate/tokengate/internal/session"
	"github.com/tokengate/tokengate/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages are the parsed templates, one set per page (the page file plus
// the shared "_*.html" parts).
type pages struct {
	byName map[string]*template.Template
}

func loadPages() (*pages, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	ps := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("page %s: %v", base, err)
		}
		ps.byName[base] = t
	}
	return ps, nil
}

var funcs = template.FuncMap{
	"join": strings.Join,
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"list": func(v ...any) []any { return v },
	// around splits a message at its "{0}", so that a template can put
	// markup (a name in <strong>, filled by the script) in its place.
	"around": func(msg string) [2]string {
		before, after, _ := strings.Cut(msg, "{0}")
		return [2]string{before, after}
	},
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
}

// view is what every page template gets.
type view struct {
	// L is the page's language.
	L string
	// Prefix is where the pages live.
	Prefix string
	// Title is the page's title key in the catalogue.
	Title string
	// User is the signed-in user (nil on the sign-in page).
	User *store.User
	// Admin: the user has the admin role (the admin links show).
	Admin bool
	// CSRF is the session's token for forms.
	CSRF string
	// Path is the request's path (for the language switch and "next").
	Path string
	// Nav is the current section ("tokens", "users", ...).
	Nav string
	// Message is a notice or error shown above the content.
	Message string
	// Data is the page's own data.
	Data any
	// Assets is the version query of the embedded assets.
	Assets string
}

// T returns a message of the page's language.
func (v *view) T(key string, args ...any) string { return i18n.T(v.L, key, args...) }

// Plural returns a plural message of the page's language.
func (v *view) Plural(key string, n int, args ...any) string {
	return i18n.Plural(v.L, key, n, args...)
}

// Time renders t as a <time> element: the server writes UTC, the page's
// script rewrites it in the browser's locale and time zone.
func (v *view) Time(t time.Time) template.HTML {
	if t.IsZero() {
		return ""
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `">` +
		template.HTMLEscapeString(t.UTC().Format("2006-01-02 15:04 UTC")) + `</time>`)
}

// Date renders t as a <time> element that shows the date only.
func (v *view) Date(t time.Time) template.HTML {
	if t.IsZero() {
		return ""
	}
	return template.HTML(`<time data-date datetime="` + t.UTC().Format(time.RFC3339) + `">` +
		template.HTMLEscapeString(t.UTC().Format("2006-01-02")) + `</time>`)
}

// Langs are the languages of the switch.
func (v *view) Langs() []string { return i18n.Languages }

// LangName is a language's own name.
func (v *view) LangName(l string) string { return i18n.Name(l) }

// URL is the path of a page below the prefix.
func (v *view) URL(path string) string { return v.Prefix + path }

// newView fills what every page shows.
func (u *UI) newView(req *request, title, nav string, data any) *view {
	v := &view{L: req.lang, Prefix: u.prefix, Title: title, Nav: nav, Path: req.r.URL.Path, Data: data, Assets: assetVersion}
	if req.active != nil {
		user := req.active.User
		v.User, v.Admin, v.CSRF = &user, isAdmin(req.active), req.active.CSRF()
	}
	return v
}

// render writes a page. Pages are never cached: one may have shown a
// secret, and going back must not show it again.
func (u *UI) render(req *request, status int, page string, v *view) error {
	t, ok := u.pages.byName[page]
	if !ok {
		return fmt.Errorf("no page %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("rendering %s: %w", page, err)
	}
	h := req.w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", v.L)
	h.Set("Vary", "Cookie, Accept-Language")
	req.w.WriteHeader(status)
	req.w.Write(buf.Bytes()) // a client that went away needs no answer
	return nil
}

// failure is the JSON the page's script gets for a refused action.
type failure struct {
	// Error is a stable code (apierr's, or signed_out, csrf, cross_origin).
	Error string `json:"error"`
	// Message is in the page's language, ready to show.
	Message string `json:"message"`
	// Field names the form field the message belongs next to.
	Field string `json:"field,omitempty"`
	// SignIn is where to sign in again, when the session has ended.
	SignIn string `json:"signin,omitempty"`
}

// fail answers a refused or failed request: JSON for the page's script, a
// redirect to sign-in for a page asked for without a session, else the
// error page.
func (u *UI) fail(req *request, err error) {
	status, f := u.describe(req, err)
	if status >= 500 && !errors.Is(err, breaker.ErrOpen) { // an open breaker was logged once
		u.logger.Error("page request failed", zap.String("path", req.r.URL.Path), zap.Int("status", status), zap.Error(err))
	} else if ce := u.logger.Check(zap.DebugLevel, "page request refused"); ce != nil {
		ce.Write(zap.String("path", req.r.URL.Path), zap.Int("status", status), zap.String("reason", err.Error()))
	}
	// A rate limit or a store that is down (503) says when to come back.
	apierr.SetRetryAfter(req.w.Header(), apierr.For(err))
	if errors.Is(err, session.ErrNoSession) {
		session.ClearCookie(req.w, req.r)
		if req.r.Method == http.MethodGet && !wantsJSON(req.r) {
			http.Redirect(req.w, req.r, f.SignIn, http.StatusSeeOther)
			return
		}
	}
	if wantsJSON(req.r) {
		req.w.Header().Set("Cache-Control", "no-store")
		jsonbody.Write(req.w, status, f)
		return
	}
	v := u.newView(req, "error.title", "", f)
	if err := u.render(req, status, "error", v); err != nil {
		u.logger.Error("rendering the error page", zap.Error(err))
		http.Error(req.w, f.Message, status)
	}
}

// describe turns an error into a status and a message in the page's
// language. Messages name the problem without echoing a secret.
func (u *UI) describe(req *request, err error) (int, failure) {
	t := func(key string, args ...any) string { return i18n.T(req.lang, key, args...) }
	switch {
	case errors.Is(err, session.ErrNoSession):
		return http.StatusUnauthorized, failure{Error: "signed_out", Message: t("err.signed_out"), SignIn: u.signInURL(req)}
	case errors.Is(err, errCSRF):
		return http.StatusForbidden, failure{Error: "csrf", Message: t("err.csrf")}
	case errors.Is(err, errCrossOrigin):
		return http.StatusForbidden, failure{Error: "cross_origin", Message: t("err.cross_origin")}
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, failure{Error: "too_large", Message: t("err.too_large")}
	case errors.Is(err, errBadForm):
		return http.StatusBadRequest, failure{Error: "invalid_request", Message: t("err.bad_form")}
	case errors.Is(err, errNotAdmin):
		return http.StatusForbidden, failure{Error: "forbidden", Message: t("err.not_admin")}
	}
	p := apierr.For(err)
	f := failure{Error: p.Code, Field: p.Field}
	var limited *apierr.RateLimited
	var refused *pageRefusal
	var tooLong *policy.LifetimeError
	switch {
	case errors.As(err, &refused):
		f.Message, f.Field = t(refused.Key), refused.Field
	case errors.As(err, &tooLong):
		f.Message, f.Field = t("err.policy_max_lifetime", lifetimeWords(req.lang, tooLong.Max)), "expires"
	case errors.Is(err, policy.ErrExpiryRequired):
		f.Message, f.Field = t("err.policy_expiry_required"), "expires"
	case errors.Is(err, label.ErrEmpty):
		f.Message = t("err.label_empty")
	case errors.Is(err, label.ErrTooLong):
		f.Message = t("err.label_too_long", label.MaxLen)
	case errors.Is(err, label.ErrInvalid):
		f.Message = t("err.label_invalid")
	case errors.Is(err, store.ErrLabelTaken):
		f.Message = t("err.label_taken")
	case p.Status == http.StatusConflict && p.Field == "label":
		f.Message = t("err.label_taken")
	case errors.Is(err, store.ErrUserExists):
		f.Message = t("admin.err.user_exists")
	case errors.Is(err, store.ErrTokenLimit):
		f.Message = t("err.token_limit")
	case errors.As(err, &limited):
		f.Message = t("err.rate_limited", int(limited.RetryAfter.Seconds()+0.999))
	case p.Status == http.StatusNotFound:
		f.Message = t("err.not_found")
	case p.Status >= 500:
		f.Message = t("err.unavailable")
	case p.Field != "" && i18n.Has(req.lang, "err.field."+p.Field):
		f.Message = t("err.field."+p.Field, p.Description)
	default:
		f.Message = t("err.generic", p.Description)
	}
	return p.Status, f
}

// lifetimeWords says a maximum lifetime in lang: whole days as the
// dialog says them, else whole hours, else seconds.
func lifetimeWords(lang string, d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return i18n.Plural(lang, "create.days", int(d/(24*time.Hour)))
	case d >= time.Hour && d%time.Hour == 0:
		return i18n.Plural(lang, "create.hours", int(d/time.Hour))
	}
	return i18n.Plural(lang, "create.seconds", int(d/time.Second))
}

// pageRefusal is a refusal of the pages' own, not of a service: Err says
// the status and code (through apierr), Key is the catalogue message and
// Field the form field it belongs next to ("" for the form as a whole).
type pageRefusal struct {
	Err   error
	Key   string
	Field string
}

func (e *pageRefusal) Error() string { return e.Err.Error() }
func (e *pageRefusal) Unwrap() error { return e.Err }

// signInURL is the sign-in page that comes back to this page afterwards.
func (u *UI) signInURL(req *request) string {
	next := req.r.URL.Path
	if req.r.Method != http.MethodGet {
		next = req.r.Header.Get("X-Page") // the page the script's form lives on
	}
	if !u.safeNext(next) {
		return u.url("/signin")
	}
	return u.url("/signin") + "?next=" + queryEscape(next)
}
