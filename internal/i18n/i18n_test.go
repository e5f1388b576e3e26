package i18n

import (
	"strings"
	"testing"
)

// TestCataloguesAgree: every message exists in every language, plural
// messages with every form the language needs, and the placeholders agree.
func TestCataloguesAgree(t *testing.T) {
	base := func(lang, key string) (string, bool) {
		for _, f := range append(PluralForms[lang], "other", "few", "many", "one") {
			if b, ok := strings.CutSuffix(key, "."+f); ok {
				return b, true
			}
		}
		return key, false
	}
	messages := map[string]map[string]bool{} // lang -> message (plural base or key)
	for _, lang := range Languages {
		messages[lang] = map[string]bool{}
		for _, k := range Keys(lang) {
			if catalogues[lang][k] == "" {
				t.Errorf("%s: %s is empty", lang, k)
			}
			b, plural := base(lang, k)
			messages[lang][b] = true
			if plural {
				for _, f := range PluralForms[lang] {
					if _, ok := catalogues[lang][b+"."+f]; !ok {
						t.Errorf("%s: plural %s lacks the form %q", lang, b, f)
					}
				}
			}
		}
	}
	for _, lang := range Languages {
		for _, other := range Languages {
			for m := range messages[other] {
				if !messages[lang][m] {
					t.Errorf("%s lacks %q (present in %s)", lang, m, other)
				}
			}
		}
	}
	for _, k := range Keys(Default) {
		for _, lang := range Languages {
			msg, ok := catalogues[lang][k]
			if !ok {
				continue // a plural form of another language, checked above
			}
			for i := 0; i < 4; i++ {
				ph := "{" + string(rune('0'+i)) + "}"
				if strings.Contains(catalogues[Default][k], ph) != strings.Contains(msg, ph) {
					t.Errorf("%s: %s: placeholder %s differs from English", lang, k, ph)
				}
			}
		}
	}
	if len(Keys(Default)) < 20 {
		t.Fatalf("the English catalogue has only %d keys", len(Keys(Default)))
	}
}

func TestPluralForms(t *testing.T) {
	for _, c := range []struct {
		lang string
		n    int
		want string
	}{
		{"en", 0, "other"}, {"en", 1, "one"}, {"en", 2, "other"},
		{"ru", 1, "one"}, {"ru", 2, "few"}, {"ru", 4, "few"}, {"ru", 5, "many"}, {"ru", 11, "many"},
		{"ru", 12, "many"}, {"ru", 21, "one"}, {"ru", 22, "few"}, {"ru", 111, "many"}, {"ru", 0, "many"},
		{"uk", 1, "one"}, {"uk", 3, "few"}, {"uk", 14, "many"}, {"uk", 101, "one"},
	} {
		if got := PluralForm(c.lang, c.n); got != c.want {
			t.Errorf("PluralForm(%s, %d) = %s, want %s", c.lang, c.n, got, c.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ cookie, header, want string }{
		{"", "", "en"},
		{"", "ru-RU,ru;q=0.9,en;q=0.8", "ru"},
		{"", "de-DE, uk;q=0.5, en;q=0.4", "uk"},
		{"", "en;q=0.2, ru;q=0.9", "ru"},
		{"uk", "ru", "uk"},
		{"xx", "ru", "ru"},
		{"", "ru;q=0, en", "en"},
		{"", "ru;q=bogus", "en"},
		{"", "*", "en"},
	} {
		if got := Negotiate(c.cookie, c.header); got != c.want {
			t.Errorf("Negotiate(%q, %q) = %s, want %s", c.cookie, c.header, got, c.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	if got := T("en", "no.such.key"); got != "no.such.key" {
		t.Errorf("missing key = %q", got)
	}
	if got := Plural("ru", "tokens.count", 3); !strings.Contains(got, "3") {
		t.Errorf("plural without its number: %q", got)
	}
	if Plural("ru", "tokens.count", 1) == Plural("ru", "tokens.count", 5) {
		t.Error("Russian one and many forms are the same")
	}
}
