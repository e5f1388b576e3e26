// Package i18n holds the web pages' message catalogues (English, Russian,
// Ukrainian), picks a language for a request and formats messages with
// their arguments and plural forms.
//
// A catalogue is the set of JSON files locales/<lang>/*.json: flat objects
// from a key to a message. "{0}", "{1}"... in a message are replaced by
// the arguments. A plural message is a set of keys with the suffixes of
// the language's plural forms (CLDR): ".one" and ".other" in English,
// ".one", ".few" and ".many" in Russian and Ukrainian.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed locales
var files embed.FS

// Languages are the supported languages, the default first.
var Languages = []string{"en", "ru", "uk"}

// Default is the language used when nothing else matches.
const Default = "en"

// names are the languages' own names, for the language switch.
var names = map[string]string{"en": "English", "ru": "Русский", "uk": "Українська"}

// catalogues maps a language to its messages.
var catalogues = mustLoad()

func mustLoad() map[string]map[string]string {
	c, err := load(files)
	if err != nil {
		panic(err) // the catalogues are embedded: a broken one is a build defect caught by tests
	}
	return c
}

// load reads every locales/<lang>/*.json file of fsys.
func load(fsys fs.FS) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, lang := range Languages {
		out[lang] = map[string]string{}
		matches, err := fs.Glob(fsys, path.Join("locales", lang, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			b, err := fs.ReadFile(fsys, m)
			if err != nil {
				return nil, err
			}
			var msgs map[string]string
			if err := json.Unmarshal(b, &msgs); err != nil {
				return nil, fmt.Errorf("%s: %v", m, err)
			}
			for k, v := range msgs {
				if _, dup := out[lang][k]; dup {
					return nil, fmt.Errorf("%s: key %q is defined twice", m, k)
				}
				out[lang][k] = v
			}
		}
	}
	return out, nil
}

// Name returns a language's own name ("Русский").
func Name(lang string) string { return names[lang] }

// Supported reports whether lang is one of Languages.
func Supported(lang string) bool {
	_, ok := names[lang]
	return ok
}

// Keys returns the keys of a language's catalogue, sorted.
func Keys(lang string) []string {
	keys := make([]string, 0, len(catalogues[lang]))
	for k := range catalogues[lang] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Has reports whether the key (or, for a plural message, its forms) exists
// in the language.
func Has(lang, key string) bool {
	if _, ok := catalogues[lang][key]; ok {
		return true
	}
	_, ok := catalogues[lang][key+"."+PluralForm(lang, 1)]
	return ok
}

// T returns the message key in lang with args put in place of {0}, {1}...
// A missing key falls back to English, then to the key itself, so a page
// never shows an empty string.
func T(lang, key string, args ...any) string {
	msg, ok := catalogues[lang][key]
	if !ok {
		if msg, ok = catalogues[Default][key]; !ok {
			return key
		}
	}
	if len(args) == 0 || !strings.Contains(msg, "{") {
		return msg
	}
	pairs := make([]string, 0, 2*len(args))
	for i, a := range args {
		pairs = append(pairs, "{"+strconv.Itoa(i)+"}", fmt.Sprint(a))
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// Plural returns the plural message key for n in lang, with n as {0} and
// args after it.
func Plural(lang, key string, n int, args ...any) string {
	return T(lang, key+"."+PluralForm(lang, n), append([]any{n}, args...)...)
}

// PluralForm returns the CLDR plural category of the integer n in lang:
// "one" or "other" in English; "one", "few" or "many" in Russian and
// Ukrainian.
func PluralForm(lang string, n int) string {
	if n < 0 {
		n = -n
	}
	switch lang {
	case "ru", "uk":
		switch mod10, mod100 := n%10, n%100; {
		case mod10 == 1 && mod100 != 11:
			return "one"
		case mod10 >= 2 && mod10 <= 4 && (mod100 < 12 || mod100 > 14):
			return "few"
		default:
			return "many"
		}
	}
	if n == 1 {
		return "one"
	}
	return "other"
}

// PluralForms are the categories each language's plural messages define.
var PluralForms = map[string][]string{"en": {"one", "other"}, "ru": {"one", "few", "many"}, "uk": {"one", "few", "many"}}

// Negotiate picks the language of a request: the remembered choice (a
// cookie's value) when it is supported, else the first supported language
// of the Accept-Language header by quality, else Default.
func Negotiate(chosen, acceptLanguage string) string {
	if Supported(chosen) {
		return chosen
	}
	type pref struct {
		lang string
		q    float64
	}
	var prefs []pref
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if Supported(primary) && q > 0 {
			prefs = append(prefs, pref{primary, q})
		}
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	if len(prefs) > 0 {
		return prefs[0].lang
	}
	return Default
}
