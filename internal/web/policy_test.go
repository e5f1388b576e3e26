package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/policy"
)

// TestTokenPolicyForm: under a maximum lifetime the dialog offers only
// the lifetimes it allows and "the longest allowed" instead of "never";
// a lifetime above it is refused next to the lifetime field, in the
// page's language; "the longest allowed" gets the maximum. With
// require_expiry and no maximum, "never" is not offered and is refused.
func TestTokenPolicyForm(t *testing.T) {
	f := newFixture(t)
	f.pats.SetPolicy(policy.Policy{PATMaxLifetime: 45 * 24 * time.Hour})
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	page := b.do(t, "GET", "/account/tokens", nil)
	if strings.Contains(page.body, `value="60"`) || strings.Contains(page.body, `value="90"`) || !strings.Contains(page.body, `value="30"`) {
		t.Error("the dialog offers lifetimes above the maximum, or not those below it")
	}
	if !strings.Contains(page.body, "Longest allowed (45 days)") || strings.Contains(page.body, ">Never</option>") {
		t.Error(`the dialog does not offer "Longest allowed (45 days)" instead of "Never"`)
	}

	r := b.do(t, "POST", "/account/tokens", url.Values{"label": {"long"}, "expires": {"60"}, "csrf": {b.csrf}},
		"Accept", "application/json", "Accept-Language", "ru")
	j := r.json(t)
	if r.status != http.StatusBadRequest || j["field"] != "expires" || j["message"] != "Срок действия: наибольший срок по политике токенов — 45 дней." {
		t.Errorf("60 days under a 45-day maximum: %d %v", r.status, j)
	}
	r = b.post(t, "/account/tokens", url.Values{"label": {"max"}, "expires": {"never"}})
	if r.status != http.StatusCreated {
		t.Fatalf("the longest allowed: %d %s", r.status, r.body)
	}
	ts := f.tokens(t, "alice")
	if len(ts) != 1 || ts[0].ExpiresAt.Sub(ts[0].CreatedAt) != 45*24*time.Hour {
		t.Fatalf("tokens %+v, want one living 45 days", ts)
	}

	f.pats.SetPolicy(policy.Policy{RequireExpiry: true})
	page = b.do(t, "GET", "/account/tokens", nil)
	if strings.Contains(page.body, `<option value="never"`) {
		t.Error("never is offered although the policy requires an expiry")
	}
	r = b.post(t, "/account/tokens", url.Values{"label": {"forever"}, "expires": {"never"}})
	if j := r.json(t); r.status != http.StatusBadRequest || j["field"] != "expires" || !strings.Contains(j["message"].(string), "requires an expiry") {
		t.Errorf("never under require_expiry: %d %v", r.status, j)
	}
}

// TestTokenPolicyDateAtMaximum: the date on which the maximum lifetime
// ends is a date the dialog takes (with or without script): the token
// ends at the maximum, within that day, instead of being refused because
// the end of the day is past the maximum; the day after is refused. A
// maximum under a day is offered as "the longest allowed" in hours.
func TestTokenPolicyDateAtMaximum(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	limit := 45 * 24 * time.Hour
	secs, err := expiresIn("date", "2027-01-20", "UTC", now, limit)
	if err != nil || *secs != int64(limit/time.Second) {
		t.Fatalf("the last day of a 45-day maximum: %v %v, want %d s", secs, err, int64(limit/time.Second))
	}
	secs, err = expiresIn("date", "2027-01-21", "UTC", now, limit)
	if err != nil || *secs <= int64(limit/time.Second) {
		t.Fatalf("the day after the maximum: %v %v, want more than the maximum (the service refuses it)", secs, err)
	}
	secs, err = expiresIn("date", "2026-12-10", "UTC", now, limit)
	if err != nil || *secs != int64(4*24*3600+2*3600) {
		t.Fatalf("a day within the maximum: %v %v, want until its end", secs, err)
	}

	f := newFixture(t)
	f.pats.SetPolicy(policy.Policy{PATMaxLifetime: limit})
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	last := time.Now().UTC().Add(limit).Format("2006-01-02")
	r := b.post(t, "/account/tokens", url.Values{"label": {"last day"}, "expires": {"date"}, "expires_date": {last}, "tz": {"UTC"}})
	if r.status != http.StatusCreated {
		t.Fatalf("the date the maximum ends, form post: %d %s", r.status, r.body)
	}
	ts := f.tokens(t, "alice")
	if len(ts) != 1 || ts[0].ExpiresAt.Sub(ts[0].CreatedAt) > limit || ts[0].ExpiresAt.Sub(ts[0].CreatedAt) < limit-time.Minute {
		t.Fatalf("tokens %+v, want one living the 45-day maximum", ts)
	}

	f.pats.SetPolicy(policy.Policy{PATMaxLifetime: 12 * time.Hour})
	page := b.do(t, "GET", "/account/tokens", nil, "Accept-Language", "uk")
	if !strings.Contains(page.body, "Найдовший допустимий (12 годин)") {
		t.Error(`under a 12-hour maximum the dialog does not offer "the longest allowed (12 hours)"`)
	}
}

// TestTokenPolicyRefusalGrammar: the refusal names the maximum in the
// nominative, so every plural form reads right in Russian and Ukrainian
// ("не более 1 день" / "не більше 2 дні" did not).
func TestTokenPolicyRefusalGrammar(t *testing.T) {
	f := newFixture(t)
	f.pats.SetPolicy(policy.Policy{PATMaxLifetime: 2 * 24 * time.Hour})
	f.addUser(t, "alice", true)
	b := f.signIn(t, "alice")
	for lang, want := range map[string]string{
		"ru": "Срок действия: наибольший срок по политике токенов — 2 дня.",
		"uk": "Строк дії: найдовший строк за політикою токенів — 2 дні.",
		"en": "Lifetime: the token policy allows at most 2 days.",
	} {
		r := b.do(t, "POST", "/account/tokens", url.Values{"label": {"long"}, "expires": {"7"}, "csrf": {b.csrf}},
			"Accept", "application/json", "Accept-Language", lang)
		if j := r.json(t); r.status != http.StatusBadRequest || j["message"] != want {
			t.Errorf("%s: %d %v, want %q", lang, r.status, j, want)
		}
	}
}
