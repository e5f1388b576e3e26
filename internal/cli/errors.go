package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// adminError matches the error caddycmd.AdminAPIRequest returns for a
// status of 400 or more: the status and the raw body.
var adminError = regexp.MustCompile(`(?s)^caddy responded with error: HTTP (\d+): (.*)$`)

// flagOf maps the admin API's JSON members to the flags that set them, so
// that an error speaks of what the user typed.
var flagOf = map[string]string{
	"confirm":          "--confirm",
	"lifetime_seconds": "--lifetime",
	"algorithm":        "--algorithm",
	"reset":            "--reset",
	"token_login":      "--token-login",
	"disabled":         "--disabled",
	"roles":            "--role",
	"role":             "--role",
	"user":             "--user",
	"permission":       "--p",
	"resource":         "--res",
	"allowed_ips":      "--allow-ip",
	"scopes":           "--scope",
	"enabled":          "--enabled",
	"expires_in":       "--expires-in",
	"label":            "--label",
	"within":           "--within",
}

// member finds a JSON member name, quoted or not, with the value that may
// follow it (`"confirm": true`, `lifetime_seconds: 5`).
var member = regexp.MustCompile(`"?\b([a-z]+(?:_[a-z]+)*)\b"?(\s*:\s*(?:true|false|-?\d+|"[^"]*"))?`)

// readable turns an admin API error into plain words: the JSON body's
// message, with the members the CLI sent named by their flags, and "not
// found" named after what uri asked for. Other errors pass unchanged.
func readable(uri string, err error) error {
	status, msg, ok := adminMessage(err)
	if !ok {
		return err
	}
	if status == 404 && msg == "not found" {
		return errors.New(notFound(uri))
	}
	return errors.New(toFlags(msg))
}

// plain turns an admin API error into its message as the gateway wrote
// it, for answers that speak of a file rather than of flags (an import
// names the records of the export). Other errors pass unchanged.
func plain(err error) error {
	if _, msg, ok := adminMessage(err); ok {
		return errors.New(msg)
	}
	return err
}

// adminMessage takes the status and the message out of an admin API
// error: the JSON body's "error", or the raw body.
func adminMessage(err error) (status int, msg string, ok bool) {
	m := adminError.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, "", false
	}
	status, _ = strconv.Atoi(m[1])
	var body struct {
		Error string `json:"error"`
	}
	msg = strings.TrimSpace(m[2])
	if json.Unmarshal([]byte(msg), &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return status, msg, true
}

// toFlags replaces the JSON members the CLI sends with their flags:
// `"lifetime_seconds": 60` becomes `--lifetime 60`, `"confirm": true`
// becomes `--confirm`, and a leading `confirm:` (the field the admin API
// names) becomes `--confirm:`. A bare English word ("user", "mode") is
// left alone unless it is snake_case.
func toFlags(msg string) string {
	var b strings.Builder
	last := 0
	for _, ix := range member.FindAllStringSubmatchIndex(msg, -1) {
		whole, name := msg[ix[0]:ix[1]], msg[ix[2]:ix[3]]
		value := ""
		if ix[4] >= 0 {
			value = strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(msg[ix[4]:ix[5]]), ":")), `"`)
		}
		flag, ok := flagOf[name]
		isMember := strings.HasPrefix(whole, `"`) || ix[4] >= 0 || strings.Contains(name, "_") ||
			(ix[0] == 0 && strings.HasPrefix(msg[ix[1]:], ":"))
		if !ok || !isMember {
			continue
		}
		b.WriteString(msg[last:ix[0]])
		switch value {
		case "", "true":
			b.WriteString(flag)
		case "false":
			b.WriteString(flag + "=false")
		default:
			b.WriteString(flag + " " + value)
		}
		last = ix[1]
	}
	b.WriteString(msg[last:])
	return b.String()
}

// notFound says what was not found, from the admin API path.
func notFound(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "not found"
	}
	parts := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	arg := func(i int) string {
		s, err := url.PathUnescape(parts[i])
		if err != nil {
			return parts[i]
		}
		return s
	}
	switch {
	case len(parts) >= 3 && parts[1] == "users" && len(parts) == 5 && parts[3] == "tokens":
		return fmt.Sprintf("token not found: %s (of user %s)", arg(4), arg(2))
	case len(parts) >= 3 && parts[1] == "users":
		return "no such user: " + arg(2)
	case len(parts) == 4 && parts[1] == "oauth" && parts[2] == "clients":
		return "no such OAuth key: " + arg(3)
	}
	return "not found"
}
