package caddymodule

import (
	"fmt"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/events"
)

// Events configures lifecycle events: a signed JSON POST to a webhook for
// every token created or revoked, OAuth key created, switched off or on,
// or deleted, signing key rotated, user token_login switched, and token
// about to expire or expired (see the README's "Lifecycle events"). Events
// wait in a bounded in-memory queue that never holds up a request and
// that outlives config reloads; a reload's new webhook or secret holds
// from the next delivery attempt.
type Events struct {
	// Webhook is the http:// or https:// URL that receives each event as
	// a POST. Placeholders ({env.TOKENGATE_WEBHOOK}) are resolved at
	// provisioning. Required.
	Webhook string `json:"webhook,omitempty"`

	// Secret keys the HMAC-SHA256 signature of every delivery (header
	// Tokengate-Signature: t=<unix>,v1=<hex>), at least 32 bytes. Give it
	// as a placeholder, {env.TOKENGATE_WEBHOOK_SECRET}: it is resolved at
	// provisioning, never written into adapted JSON. Required.
	Secret string `json:"secret,omitempty"`

	// ExpiryWarnings are how long before a token's expiry a
	// token.expiring event is sent (once per warning; a token gets only
	// the nearest warning it is already within). Default: 30d, 7d, 1d.
	ExpiryWarnings []caddy.Duration `json:"expiry_warnings,omitempty"`

	// NoExpiryWarnings turns the warnings off (token.expired is still
	// sent). Caddyfile: `expiry_warnings off`.
	NoExpiryWarnings bool `json:"no_expiry_warnings,omitempty"`

	// AddressMemory is how long a token's client address is remembered:
	// a use from an address the token was not used from within it sends
	// token.used_from_new_address. Default: 30d.
	AddressMemory caddy.Duration `json:"address_memory,omitempty"`

	// ExpiryScanInterval is how often each node looks for tokens to warn
	// about (each event is claimed in the store, so several nodes send it
	// once). At least 1s; default: 1h.
	ExpiryScanInterval caddy.Duration `json:"expiry_scan_interval,omitempty"`

	// QueueSize bounds the events waiting for delivery; when the queue is
	// full, new events are dropped, counted and logged. Default: 1000.
	QueueSize int `json:"queue_size,omitempty"`

	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Attempts is how many times an event is tried before it is dropped
	// (logged and counted). Default: 8.
	Attempts int `json:"attempts,omitempty"`

	// Backoff is the wait after the first failed attempt; it doubles after
	// each failure up to BackoffMax. Defaults: 1s and 5m.
	Backoff    caddy.Duration `json:"backoff,omitempty"`
	BackoffMax caddy.Duration `json:"backoff_max,omitempty"`

	// webhook and secret are Webhook and Secret with their placeholders
	// resolved (Provision).
	webhook, secret string
}

// provision resolves the placeholders.
func (e *Events) provision(repl *caddy.Replacer) error {
	if e == nil {
		return nil
	}
	e.webhook = repl.ReplaceKnown(e.Webhook, "")
	e.secret = repl.ReplaceKnown(e.Secret, "")
	if e.Secret != "" && e.secret == "" {
		return fmt.Errorf("events: secret is set but resolves to nothing (is its environment variable set?)")
	}
	return nil
}

// validate checks the resolved values without changing them. Its errors
// never hold the secret (nor the URL, which may carry a credential).
func (e *Events) validate() error {
	if e == nil {
		return nil
	}
	u, err := url.Parse(e.webhook)
	switch {
	case e.webhook == "":
		return fmt.Errorf("events: webhook <url> is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("events: webhook must be an http:// or https:// URL")
	case e.secret == "":
		return fmt.Errorf("events: secret is required (at least %d bytes; give it as {env.NAME})", events.MinSecretLength)
	case len(e.secret) < events.MinSecretLength:
		return fmt.Errorf("events: secret must be at least %d bytes long", events.MinSecretLength)
	case e.NoExpiryWarnings && len(e.ExpiryWarnings) > 0:
		return fmt.Errorf("events: expiry_warnings off and a list of warnings are exclusive")
	case e.ExpiryScanInterval != 0 && e.ExpiryScanInterval < caddy.Duration(minScanInterval):
		return fmt.Errorf("events: expiry_scan_interval must be at least %v (each scan reads every token)", minScanInterval)
	case e.AddressMemory < 0 || e.Timeout < 0 || e.Backoff < 0 || e.BackoffMax < 0:
		return fmt.Errorf("events: durations must not be negative")
	case e.QueueSize < 0 || e.Attempts < 0:
		return fmt.Errorf("events: queue_size and attempts must not be negative")
	case e.BackoffMax != 0 && e.BackoffMax < e.Backoff:
		return fmt.Errorf("events: backoff's maximum must not be below its first wait")
	}
	for _, w := range e.ExpiryWarnings {
		if w <= 0 {
			return fmt.Errorf("events: expiry_warnings must be positive durations")
		}
	}
	return nil
}

// webhookConfig is what the shared webhook delivers with (a nil e: off).
func (e *Events) webhookConfig(logger *zap.Logger) events.WebhookConfig {
	if e == nil {
		return events.WebhookConfig{Logger: logger}
	}
	return events.WebhookConfig{
		URL: e.webhook, Secret: []byte(e.secret), QueueSize: e.QueueSize, Timeout: time.Duration(e.Timeout),
		Attempts: e.Attempts, Backoff: time.Duration(e.Backoff), BackoffMax: time.Duration(e.BackoffMax),
		Logger: logger,
	}
}

// warnings returns the scanner's warnings (nil: the defaults).
func (e *Events) warnings() []time.Duration {
	if e == nil {
		return nil
	}
	if e.NoExpiryWarnings {
		return []time.Duration{}
	}
	if len(e.ExpiryWarnings) == 0 {
		return nil
	}
	out := make([]time.Duration, len(e.ExpiryWarnings))
	for i, w := range e.ExpiryWarnings {
		out[i] = time.Duration(w)
	}
	return out
}

// addressMemory returns the address memory (0: the default).
func (e *Events) addressMemory() time.Duration {
	if e == nil {
		return 0
	}
	return time.Duration(e.AddressMemory)
}

// scanInterval returns the scan interval (0: the default).
func (e *Events) scanInterval() time.Duration {
	if e == nil {
		return 0
	}
	return time.Duration(e.ExpiryScanInterval)
}

// parseEvents reads an events block:
//
//	events {
//		webhook <url>
//		secret <secret>
//		expiry_warnings <duration...> | off
//		expiry_scan_interval <duration>
//		address_memory <duration>
//		queue_size <n>
//		timeout <duration>
//		attempts <n>
//		backoff <first> [<max>]
//	}
func parseEvents(d *caddyfile.Dispenser) (*Events, error) {
	e := new(Events)
	err := eachNested(d, "events", func(sub string) (err error) {
		switch sub {
		case "webhook":
			e.Webhook, err = oneArg(d)
		case "secret":
			e.Secret, err = oneArg(d)
		case "expiry_warnings":
			err = e.parseWarnings(d)
		case "address_memory":
			e.AddressMemory, err = durationArg(d)
		case "expiry_scan_interval":
			e.ExpiryScanInterval, err = durationArg(d)
		case "queue_size":
			e.QueueSize, err = intArg(d, 1)
		case "timeout":
			e.Timeout, err = durationArg(d)
		case "attempts":
			e.Attempts, err = intArg(d, 1)
		case "backoff":
			err = e.parseBackoff(d)
		default:
			err = d.Errf("events: unrecognized subdirective %q", sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Events) parseWarnings(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		e.NoExpiryWarnings = true
		return nil
	}
	if len(args) == 0 {
		return d.Err("expiry_warnings takes durations (30d 7d 1d) or off")
	}
	for _, a := range args {
		v, err := caddy.ParseDuration(a)
		if err != nil || v <= 0 {
			return d.Errf("expiry_warnings: invalid duration %q", a)
		}
		e.ExpiryWarnings = append(e.ExpiryWarnings, caddy.Duration(v))
	}
	return nil
}

func (e *Events) parseBackoff(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.Err("backoff takes <first> [<max>]")
	}
	for i, a := range args {
		v, err := caddy.ParseDuration(a)
		if err != nil || v <= 0 {
			return d.Errf("backoff: invalid duration %q", a)
		}
		if i == 0 {
			e.Backoff = caddy.Duration(v)
		} else {
			e.BackoffMax = caddy.Duration(v)
		}
	}
	return nil
}
