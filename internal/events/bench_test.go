package events_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokengate/tokengate/internal/events"
	"github.com/tokengate/tokengate/internal/metrics"
)

// BenchmarkEmit is what a change pays to announce itself: queueing an
// event (the receiver answers at once, so the queue drains), and dropping
// one when the queue is full.
func BenchmarkEmit(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ev := events.Event{Type: events.TokenCreated, Subject: events.Subject{Kind: events.SubjectToken, ID: "x", Owner: "alice"}, HashedToken: "00"}
	b.Run("queued", func(b *testing.B) {
		w := events.NewWebhook(metrics.New(metrics.Funcs{}), nil)
		w.Configure(events.WebhookConfig{URL: srv.URL, Secret: secret, QueueSize: 1 << 20})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)
		b.ReportAllocs()
		for b.Loop() {
			w.Emit(ev)
		}
	})
	b.Run("queue_full", func(b *testing.B) {
		w := events.NewWebhook(metrics.New(metrics.Funcs{}), nil)
		w.Configure(events.WebhookConfig{URL: srv.URL, Secret: secret, QueueSize: 1})
		w.Emit(ev) // no worker: the queue stays full
		b.ReportAllocs()
		for b.Loop() {
			w.Emit(ev)
		}
	})
}
