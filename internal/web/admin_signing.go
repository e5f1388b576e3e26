package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/jwt"
	"github.com/tokengate/tokengate/internal/keyring"
)

// signingData is the JWT signing page (seed 003).
type signingData struct {
	S keyring.SettingsView
	// Key is the validation key as an application needs it: the HS256
	// secret (base64url), or the public key as a JSON Web Key.
	Key string
	// Secret: Key is a shared secret (HS256), not a public key.
	Secret bool
	// Others are the algorithms one can switch to.
	Others []string
	// MinLifetime and MaxLifetime bound the token lifetime, in seconds.
	MinLifetime, MaxLifetime int64
}

func (u *UI) signingPage(req *request) error {
	s, err := u.opts.Keys.Settings(req.r.Context())
	if err != nil {
		return err
	}
	d := signingData{S: s, MinLifetime: int64(keyring.MinLifetime / time.Second), MaxLifetime: int64(keyring.MaxLifetime / time.Second)}
	for _, a := range jwt.Algorithms() {
		if a != s.Algorithm {
			d.Others = append(d.Others, a)
		}
	}
	if s.ValidationKey["kty"] == "oct" {
		d.Secret = true
		d.Key, _ = s.ValidationKey["k"].(string)
	} else {
		b, err := json.MarshalIndent(s.ValidationKey, "", "  ")
		if err != nil {
			return err
		}
		d.Key = string(b)
	}
	return u.render(req, http.StatusOK, "admin_signing", u.newView(req, "admin.signing.title", "signing", d))
}

// setLifetime changes the lifetime of tokens issued from now on; no key
// changes, so nothing needs confirming.
func (u *UI) setLifetime(req *request) error {
	n, err := strconv.ParseInt(strings.TrimSpace(req.r.PostForm.Get("lifetime_seconds")), 10, 64)
	if err != nil {
		return apierr.Field("lifetime_seconds", errors.New("must be a whole number of seconds"))
	}
	v, err := u.opts.Keys.Apply(req.r.Context(), keyring.Change{LifetimeSeconds: &n})
	if err != nil {
		return err
	}
	return u.done(req, v, "/admin/signing")
}

// changeKey switches the algorithm or resets the key, in the mode chosen;
// the keyring refuses it without the "I understand" box.
func (u *UI) changeKey(req *request) error {
	f := req.r.PostForm
	c := keyring.Change{Mode: f.Get("mode"), Confirm: f.Get("confirm") != ""}
	switch f.Get("action") {
	case "algorithm":
		alg := f.Get("algorithm")
		if !slices.Contains(jwt.Algorithms(), alg) {
			return apierr.Field("algorithm", errors.New("choose one of the offered algorithms"))
		}
		c.Algorithm = &alg
	case "reset":
		c.Reset = true
	default:
		return errUnknownAction
	}
	v, err := u.opts.Keys.Apply(req.r.Context(), c)
	if err != nil {
		return err
	}
	return u.done(req, v, "/admin/signing")
}
