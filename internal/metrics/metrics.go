// Package metrics holds tokengate's Prometheus collectors and the small
// methods the services call to count what they do. Every method works on
// a nil *Set (and counts nothing), so that a service built without metrics
// (unit tests, the CLI) needs nothing.
//
// Labels are bounded: results, reason codes, token kinds, operation names,
// event kinds, grant types, sign-in routes. Never a user, a token, a token
// id, a client id or an address.
//
// The collectors live as long as the state they describe (caddymodule's
// shared state, which outlives config reloads), and are registered in the
// registry of every config that is loaded (caddy.Context.GetMetricsRegistry,
// which Caddy's admin endpoint serves at /metrics): counters keep counting
// across reloads.
package metrics

import (
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the first part of every metric's name.
const Namespace = "tokengate"

// Set is the collectors. Its methods are safe for concurrent use and do
// nothing on a nil *Set.
type Set struct {
	decisions        *prometheus.CounterVec
	decisionDuration *prometheus.HistogramVec
	// decided[result][reason][kind] are the decision counters, made on
	// first use (WithLabelValues allocates; the hot path must not).
	decided [resultCount][reasonCount][kindCount]atomic.Pointer[prometheus.Counter]
	// took[cached] are the latency histograms.
	took [2]prometheus.Observer

	cacheHits, cacheNegativeHits, cacheMisses prometheus.Counter

	storeOps      *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec

	events *prometheus.CounterVec
	resets prometheus.Counter

	tokenRequests *prometheus.CounterVec
	signIns       *prometheus.CounterVec

	webhook *prometheus.CounterVec

	collectors []prometheus.Collector
}

// Funcs read values that their owners keep (sizes, states, counts); each
// may be nil (its metric is then not exported).
type Funcs struct {
	// CacheEntries is the number of cached decisions.
	CacheEntries func() float64
	// CacheEvictions is how many decisions were evicted to make room.
	CacheEvictions func() float64
	// BreakerOpen is 1 while the store's circuit breaker is open, else 0.
	BreakerOpen func() float64
	// BreakerOpens is how many times the breaker opened.
	BreakerOpens func() float64
	// WebhookQueue is the number of events waiting for the event webhook.
	WebhookQueue func() float64
	// TaskFailures are, by task name (e.g. "dormancy_scan"), how many
	// runs of a background task no client waits on have failed: each is
	// exported as background_failures_total{task="..."}.
	TaskFailures map[string]func() float64
}

// LatencyBuckets are the buckets of the duration histograms, in seconds:
// from a cache hit (microseconds) to a store timeout (seconds).
var LatencyBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// New returns the collectors, not registered (see Register).
func New(f Funcs) *Set {
	s := &Set{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "decisions_total",
			Help: "Edge decisions on requests that are not the gateway's own routes, by result (allowed, refused, error), reason and token kind.",
		}, []string{"result", "reason", "kind"}),
		decisionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "decision_duration_seconds",
			Help:    "Time taken by the edge check, by whether the decision came from the cache.",
			Buckets: LatencyBuckets,
		}, []string{"cached"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "cache", Name: "hits_total",
			Help: "Look-ups answered by a cached decision that accepts the token (before per-request checks).",
		}),
		cacheNegativeHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "cache", Name: "negative_hits_total",
			Help: "Look-ups answered by a cached refusal (an unknown, revoked or switched-off token).",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "cache", Name: "misses_total",
			Help: "Look-ups of well-formed tokens that the cache could not answer (a store read or a signature check).",
		}),
		storeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "operations_total",
			Help: "Store calls, by operation (the store method).",
		}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "errors_total",
			Help: "Store calls that failed, by operation and reason: unreachable (the call failed to reach the store), refused (answered at once: the store is not open or its circuit breaker is open).",
		}, []string{"operation", "reason"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "operation_duration_seconds",
			Help:    "Time taken by store calls that reached the store, by operation.",
			Buckets: LatencyBuckets,
		}, []string{"operation"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "invalidation", Name: "events_total",
			Help: "Invalidation messages received from the store, by kind (token, user, client, denied, document, reset).",
		}, []string{"kind"}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "invalidation", Name: "resets_total",
			Help: "Subscription resets: messages may have been lost (the subscription broke and is back), so everything cached was dropped.",
		}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "token_requests_total",
			Help: "Requests to the OAuth token endpoint, by grant type and result (issued, or the OAuth error code).",
		}, []string{"grant_type", "result"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sign_ins_total",
			Help: "Password checks, by route (web, rest_token, tokens_api) and result (ok, or the error code).",
		}, []string{"source", "result"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "webhook", Name: "events_total",
			Help: "Lifecycle events of the event webhook, by outcome (queued, delivered, retried: one per extra attempt, dropped_queue_full, dropped_failed: attempts used up).",
		}, []string{"outcome"}),
	}
	s.took[0] = s.decisionDuration.WithLabelValues("false")
	s.took[1] = s.decisionDuration.WithLabelValues("true")
	s.collectors = []prometheus.Collector{
		s.decisions, s.decisionDuration, s.cacheHits, s.cacheNegativeHits, s.cacheMisses,
		s.storeOps, s.storeErrors, s.storeDuration, s.events, s.resets, s.tokenRequests, s.signIns,
		s.webhook,
	}
	for _, fn := range []struct {
		f         func() float64
		gauge     bool
		sub, name string
		help      string
	}{
		{f.CacheEntries, true, "cache", "entries", "Cached decisions (live or expired, not yet evicted)."},
		{f.CacheEvictions, false, "cache", "evictions_total", "Cached decisions evicted to make room for new ones."},
		{f.BreakerOpen, true, "store", "breaker_open", "1 while the store's circuit breaker is open (the store is known to be down), else 0."},
		{f.BreakerOpens, false, "store", "breaker_opens_total", "How many times the store's circuit breaker opened."},
		{f.WebhookQueue, true, "webhook", "queue_length", "Lifecycle events waiting for delivery to the event webhook."},
	} {
		if fn.f == nil {
			continue
		}
		if fn.gauge {
			s.collectors = append(s.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: Namespace, Subsystem: fn.sub, Name: fn.name, Help: fn.help,
			}, fn.f))
		} else {
			s.collectors = append(s.collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: Namespace, Subsystem: fn.sub, Name: fn.name, Help: fn.help,
			}, fn.f))
		}
	}
	for _, task := range slices.Sorted(maps.Keys(f.TaskFailures)) {
		s.collectors = append(s.collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: "background_failures_total",
			Help:        "Failed runs of background work that no client waits on (each also logged once per streak), by task: last_use_flush, new_address_check, expiry_scan, dormancy_scan.",
			ConstLabels: prometheus.Labels{"task": task},
		}, f.TaskFailures[task]))
	}
	return s
}

// Register registers the collectors with reg (a config's registry). A
// collector already registered there (a second provisioning with the same
// registry) is not an error, as in Caddy's own code.
func (s *Set) Register(reg prometheus.Registerer) error {
	if s == nil || reg == nil {
		return nil
	}
	for _, c := range s.collectors {
		if err := Register(reg, c); err != nil {
			return err
		}
	}
	return nil
}

// Register registers c with reg, ignoring a collector registered before.
func Register(reg prometheus.Registerer, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil
		}
		return err
	}
	return nil
}

// AuditFailures returns the collector of audit log write failures: failed
// reads the count its owner keeps (audit.Log.Failures).
func AuditFailures(failed func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "audit", Name: "write_failures_total",
		Help: "Token request log records that could not be written to the audit files.",
	}, failed)
}

// Decision counts one edge decision: err nil (allowed) or why it was
// refused, the token's kind (see KindOf), whether it came from the cache,
// and how long it took.
func (s *Set) Decision(err error, kind Kind, cached bool, took time.Duration) {
	if s == nil {
		return
	}
	result, reason := resultAllowed, ReasonOK
	if err != nil {
		reason = ReasonOf(err)
		result = resultRefused
		if reason.serverSide() {
			result = resultError
		}
	}
	p := &s.decided[result][reason][kind]
	c := p.Load()
	if c == nil {
		made := s.decisions.WithLabelValues(resultNames[result], reasonNames[reason], kindNames[kind])
		p.CompareAndSwap(nil, &made)
		c = p.Load()
	}
	(*c).Inc()
	i := 0
	if cached {
		i = 1
	}
	s.took[i].Observe(took.Seconds())
}

// CacheLookup counts a look-up of a well-formed token in the decision
// cache: a miss, or a hit on a decision that accepts (negative false) or
// refuses (negative true) the token.
func (s *Set) CacheLookup(hit, negative bool) {
	switch {
	case s == nil:
	case !hit:
		s.cacheMisses.Inc()
	case negative:
		s.cacheNegativeHits.Inc()
	default:
		s.cacheHits.Inc()
	}
}

// Event counts an invalidation message of kind (see store.EventKind's
// names); a reset is also counted as a reset.
func (s *Set) Event(kind string) {
	if s == nil {
		return
	}
	s.events.WithLabelValues(kind).Inc()
	if kind == "reset" {
		s.resets.Inc()
	}
}

// TokenRequest counts a request to the token endpoint: its grant type
// (client_credentials, missing or other; never the client's own string)
// and its result (err nil: issued; else the OAuth error code).
func (s *Set) TokenRequest(grantType string, err error) {
	if s == nil {
		return
	}
	switch grantType {
	case "client_credentials", "missing":
	default:
		grantType = "other"
	}
	s.tokenRequests.WithLabelValues(grantType, Code(err, "issued")).Inc()
}

// Sign-in routes, the source label of SignIn.
const (
	SignInWeb       = "web"
	SignInRESTToken = "rest_token"
	SignInTokensAPI = "tokens_api"
)

// SignIn counts a password check on a route (SignInWeb...): err nil (ok)
// or the error code of its refusal.
func (s *Set) SignIn(source string, err error) {
	if s == nil {
		return
	}
	s.signIns.WithLabelValues(source, Code(err, "ok")).Inc()
}

// Outcomes of a lifecycle event (the outcome label of WebhookEvent).
const (
	WebhookQueued        = "queued"
	WebhookDelivered     = "delivered"
	WebhookRetried       = "retried"
	WebhookDroppedFull   = "dropped_queue_full"
	WebhookDroppedFailed = "dropped_failed"
)

// WebhookEvent counts what happened to a lifecycle event (WebhookQueued...).
func (s *Set) WebhookEvent(outcome string) {
	if s == nil {
		return
	}
	s.webhook.WithLabelValues(outcome).Inc()
}
