package leak_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/testutil/oauthtest"
	"github.com/tokengate/tokengate/internal/token"
)

// readmeBlock returns the fenced block of lang between the README's
// <!-- name --> and <!-- /name --> markers.
func readmeBlock(t *testing.T, name, lang string) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- "+name+" -->\n```"+lang+"\n")
	block, _, ok2 := strings.Cut(rest, "```\n<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("the README has no %s block", name)
	}
	return block
}

// fresh returns newly issued secrets of each kind the README names.
func fresh(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for range 20 {
		p, err1 := token.NewPAT()
		s, err2 := token.NewClientSecret()
		l, err3 := token.NewLegacy()
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		out["pat"] = append(out["pat"], p)
		out["client_secret"] = append(out["client_secret"], s)
		out["legacy"] = append(out["legacy"], l)
	}
	e := oauthtest.New(t)
	c := e.NewClient(t, oauthclient.NewClient{})
	for range 5 {
		out["access_token"] = append(out["access_token"], e.Issue(t, c.ClientID, "read").Token)
	}
	return out
}

// nearMisses are strings each expression must not match.
func nearMisses(secrets map[string][]string) map[string][]string {
	pat, secret, legacy := secrets["pat"][0], secrets["client_secret"][0], secrets["legacy"][0]
	return map[string][]string{
		"pat": {
			pat[:len(pat)-1], "tgp_" + strings.Repeat("A", 35), pat + "x", "x" + pat, "tgs_" + pat[4:],
			"tgp-" + pat[4:], pat[:10] + "_" + pat[11:], "TGP_" + pat[4:],
		},
		"client_secret": {
			secret[:len(secret)-1], secret + "Z", "tgp_" + secret[4:], "tgc_0123456789abcdef", "a" + secret,
		},
		"legacy": {
			legacy[:39], legacy + "0", strings.ToUpper(legacy[:1]) + legacy[1:39] + "G", "z" + legacy,
		},
		"access_token": {
			"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln", // claims start with sub
			"eyJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL3gifQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln",    // header starts with typ
			pat, legacy,
		},
	}
}

// TestREADMERegexes compiles each expression the README publishes and
// checks that it finds freshly issued secrets of its kind (alone and
// inside a line of text) and none of the near misses.
func TestREADMERegexes(t *testing.T) {
	secrets := fresh(t)
	misses := nearMisses(secrets)
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(readmeBlock(t, "secret-regexes", "text")), "\n") {
		kind, expr, ok := strings.Cut(line, " ")
		expr = strings.TrimSpace(expr)
		if !ok || expr == "" {
			t.Fatalf("README regex line %q is not <kind> <regex>", line)
		}
		seen[kind] = true
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if len(secrets[kind]) == 0 {
			t.Fatalf("the README names a kind %q the test does not know", kind)
		}
		for _, s := range secrets[kind] {
			if got := re.FindString(s); got != s {
				t.Errorf("%s: %q finds %q in a fresh secret %q", kind, expr, got, s)
			}
			if got := re.FindString(`export TOKEN="` + s + `" # ci`); got != s {
				t.Errorf("%s: %q finds %q in a line holding %q", kind, expr, got, s)
			}
		}
		for _, m := range misses[kind] {
			if got := re.FindString(m); got != "" {
				t.Errorf("%s: %q matches the near miss %q (found %q)", kind, expr, m, got)
			}
		}
	}
	for kind := range secrets {
		if !seen[kind] {
			t.Errorf("the README has no regex for %s", kind)
		}
	}
}

// TestREADMEGitleaks parses the README's gitleaks rules as TOML, checks
// each rule's shape, and runs each regex (its secretGroup when set) over
// fresh secrets as gitleaks would: keyword prefilter, then the match.
func TestREADMEGitleaks(t *testing.T) {
	var cfg struct {
		Rules []struct {
			ID          string   `toml:"id"`
			Description string   `toml:"description"`
			Regex       string   `toml:"regex"`
			SecretGroup int      `toml:"secretGroup"`
			Keywords    []string `toml:"keywords"`
		} `toml:"rules"`
	}
	md, err := toml.Decode(readmeBlock(t, "gitleaks-rules", "toml"), &cfg)
	if err != nil {
		t.Fatalf("the gitleaks rules are not TOML: %v", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Fatalf("unexpected keys in the gitleaks rules: %v", un)
	}
	secrets := fresh(t)
	misses := nearMisses(secrets)
	// Where each kind appears in a file, as a scanned repository holds it.
	context := map[string]string{
		"pat": `TOKENGATE_PAT=%s`, "client_secret": `client_secret: "%s"`,
		"legacy": `curl -H "X-Auth-Token: %s" https://api.example.com/`, "access_token": `Authorization: Bearer %s`,
	}
	kinds := map[string]string{
		"tokengate-personal-access-token": "pat", "tokengate-oauth-client-secret": "client_secret",
		"tokengate-legacy-token": "legacy", "tokengate-access-token": "access_token",
	}
	if len(cfg.Rules) != len(kinds) {
		t.Fatalf("%d gitleaks rules, want %d", len(cfg.Rules), len(kinds))
	}
	for _, r := range cfg.Rules {
		kind, ok := kinds[r.ID]
		if !ok || r.Description == "" || r.Regex == "" || len(r.Keywords) == 0 {
			t.Fatalf("rule %+v: unknown id or missing description, regex or keywords", r)
		}
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			t.Fatalf("%s: %v", r.ID, err)
		}
		find := func(text string) string {
			lower := strings.ToLower(text)
			hit := false
			for _, k := range r.Keywords {
				hit = hit || strings.Contains(lower, strings.ToLower(k))
			}
			if !hit {
				return ""
			}
			m := re.FindStringSubmatch(text)
			if len(m) <= r.SecretGroup {
				return ""
			}
			return m[r.SecretGroup]
		}
		for _, s := range secrets[kind] {
			line := strings.Replace(context[kind], "%s", s, 1)
			if got := find(line); got != s {
				t.Errorf("%s finds %q in %q", r.ID, got, line)
			}
		}
		for _, m := range misses[kind] {
			line := strings.Replace(context[kind], "%s", m, 1)
			if got := find(line); got != "" {
				t.Errorf("%s finds %q in the near miss %q", r.ID, got, line)
			}
		}
	}
	// The legacy rule wants a name beside the hex: a git commit id alone
	// is not reported.
	commit := "commit " + secrets["legacy"][0]
	for _, r := range cfg.Rules {
		if r.ID == "tokengate-legacy-token" && regexp.MustCompile(r.Regex).MatchString(commit) {
			t.Errorf("the legacy rule reports a bare commit id: %q", commit)
		}
	}
}
