package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/metrics"
)

// Webhook defaults.
const (
	DefaultQueueSize   = 1000
	DefaultTimeout     = 10 * time.Second
	DefaultAttempts    = 8
	DefaultBackoff     = time.Second
	DefaultBackoffMax  = 5 * time.Minute
	maxResponseDrained = 64 << 10
)

// WebhookConfig is where and how events are delivered. The zero URL turns
// delivery off (Emit then drops events without queueing them).
type WebhookConfig struct {
	// URL receives each event as a POST with a JSON body.
	URL string
	// Secret keys the HMAC-SHA256 signature (SignatureHeader).
	Secret []byte
	// QueueSize bounds the events waiting for delivery; when it is full a
	// new event is dropped (counted, logged once per streak).
	QueueSize int
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Attempts is how many times an event is tried before it is dropped.
	Attempts int
	// Backoff is the wait after the first failed attempt; it doubles after
	// each failure up to BackoffMax.
	Backoff, BackoffMax time.Duration
	// Logger gets the drops and the delivery failures (never a body or the
	// secret).
	Logger *zap.Logger
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.BackoffMax < c.Backoff {
		c.BackoffMax = max(DefaultBackoffMax, c.Backoff)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Webhook is an Emitter that delivers events to a URL. Emit only appends
// to a bounded in-memory queue (it never waits on the network); Run, one
// worker, sends the events in order, each until it is answered 2xx or its
// attempts are used up, with exponential backoff between attempts.
//
// It is made once and outlives config reloads (caddymodule keeps it in
// its shared state): Configure applies a new config's URL, secret and
// limits to the events still queued and to every later attempt.
// Queued events are kept in memory only: a process that stops loses them.
type Webhook struct {
	metrics *metrics.Set
	client  *http.Client
	now     func() time.Time

	mu    sync.Mutex
	cfg   WebhookConfig
	queue []Event
	// full is true during a streak of events dropped for a full queue
	// (logged once, at its start).
	full bool
	wake chan struct{}
}

// NewWebhook returns a Webhook that delivers nothing until Configure gives
// it a URL. m (may be nil) counts what happens to events; now nil means
// time.Now.
func NewWebhook(m *metrics.Set, now func() time.Time) *Webhook {
	if now == nil {
		now = time.Now
	}
	return &Webhook{
		metrics: m, now: now, cfg: WebhookConfig{}.withDefaults(), wake: make(chan struct{}, 1),
		client: &http.Client{
			// A redirect would carry the signed body elsewhere: a 3xx is a
			// failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Configure applies c (zero fields: the defaults). A smaller QueueSize
// keeps the events already queued; only new ones wait for room.
func (w *Webhook) Configure(c WebhookConfig) {
	c = c.withDefaults()
	w.mu.Lock()
	w.cfg = c
	w.mu.Unlock()
}

func (w *Webhook) config() WebhookConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg
}

// Enabled tells whether events are delivered (a URL is configured).
func (w *Webhook) Enabled() bool {
	return w != nil && w.config().URL != ""
}

// Len returns how many events wait for delivery.
func (w *Webhook) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Emit queues e for delivery, filling its ID and Time when they are
// empty. It never blocks: with no URL configured it does nothing, with a
// full queue it drops e (counted as dropped_queue_full; logged at the
// start of each streak of drops).
func (w *Webhook) Emit(e Event) {
	if w == nil {
		return
	}
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.Time.IsZero() {
		e.Time = w.now()
	}
	e.Time = e.Time.UTC()
	w.mu.Lock()
	if w.cfg.URL == "" {
		w.mu.Unlock()
		return
	}
	if len(w.queue) >= w.cfg.QueueSize {
		first := !w.full
		w.full = true
		logger := w.cfg.Logger
		w.mu.Unlock()
		w.metrics.WebhookEvent(metrics.WebhookDroppedFull)
		if first {
			logger.Warn("event webhook queue is full: dropping events until it has room (not logged again in this streak)",
				zap.String("event_type", e.Type), zap.String("event_id", e.ID))
		}
		return
	}
	if w.full {
		w.full = false
		w.cfg.Logger.Info("event webhook queue has room again")
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	w.metrics.WebhookEvent(metrics.WebhookQueued)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pop takes the oldest queued event.
func (w *Webhook) pop() (Event, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return Event{}, false
	}
	e := w.queue[0]
	w.queue[0] = Event{}
	w.queue = w.queue[1:]
	if len(w.queue) == 0 {
		w.queue = nil // let the backing array go
	}
	return e, true
}

// Run delivers queued events until ctx is done. Only one Run per Webhook.
func (w *Webhook) Run(ctx context.Context) {
	for {
		e, ok := w.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		w.deliver(ctx, e)
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver tries e until it is answered 2xx, its attempts are used up or
// ctx is done. Each attempt reads the current config, so a reload's new
// URL or secret holds from the next attempt.
func (w *Webhook) deliver(ctx context.Context, e Event) {
	body, err := json.Marshal(e)
	if err != nil { // only Data could fail, and services put plain values in it
		w.config().Logger.Error("encoding event", zap.String("event_type", e.Type), zap.Error(err))
		w.metrics.WebhookEvent(metrics.WebhookDroppedFailed)
		return
	}
	wait := time.Duration(0)
	var last error
	for attempt := 1; ; attempt++ {
		cfg := w.config()
		if cfg.URL == "" {
			return // switched off by a reload: queued events are dropped
		}
		if attempt > cfg.Attempts {
			break
		}
		if attempt > 1 {
			w.metrics.WebhookEvent(metrics.WebhookRetried)
			wait = min(max(2*wait, cfg.Backoff), cfg.BackoffMax)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			cfg = w.config()
			if cfg.URL == "" {
				return
			}
		}
		if last = w.send(ctx, cfg, e, body); last == nil {
			w.metrics.WebhookEvent(metrics.WebhookDelivered)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == 1 {
			cfg.Logger.Debug("event delivery failed; retrying with backoff",
				zap.String("event_id", e.ID), zap.String("event_type", e.Type), zap.Error(last))
		}
	}
	w.metrics.WebhookEvent(metrics.WebhookDroppedFailed)
	w.config().Logger.Warn("event dropped: the webhook did not accept it",
		zap.String("event_id", e.ID), zap.String("event_type", e.Type),
		zap.Int("attempts", w.config().Attempts), zap.Error(last))
}

// errStatus is a delivery answered with another status than 2xx.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("webhook answered %d", int(e)) }

// send makes one attempt.
func (w *Webhook) send(ctx context.Context, cfg WebhookConfig, e Event, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokengate-webhook/1")
	req.Header.Set(IDHeader, e.ID)
	req.Header.Set(TypeHeader, e.Type)
	req.Header.Set(SignatureHeader, Sign(cfg.Secret, body, w.now()))
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a credential of the receiver's
		}
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrained)); err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errStatus(resp.StatusCode)
	}
	return nil
}

// Interface guards
var _ Emitter = (*Webhook)(nil)
