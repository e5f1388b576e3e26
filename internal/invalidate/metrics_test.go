package invalidate_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/testutil/metricstest"
)

// Handle counts every event by kind, and a reset as a reset too.
func TestHandleCountsEvents(t *testing.T) {
	f := newFixture(t)
	m := metrics.New(metrics.Funcs{})
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	f.targets.Metrics = m
	for _, ev := range []store.Event{
		{Kind: store.EventToken, Hash: hashOf("alice pat")}, {Kind: store.EventToken},
		{Kind: store.EventUser, Owner: "bob"}, {Kind: store.EventReset}, {Kind: store.EventKind(200)},
	} {
		f.targets.Handle(ev)
	}
	got := metricstest.Gather(t, reg)
	L := metricstest.L
	for kind, want := range map[string]float64{"token": 2, "user": 1, "reset": 1, "unknown": 1, "client": 0} {
		if n := got.Value("tokengate_invalidation_events_total", L("kind", kind)); n != want {
			t.Errorf("%s events = %v, want %v", kind, n, want)
		}
	}
	if n := got.Value("tokengate_invalidation_resets_total", nil); n != 1 {
		t.Errorf("resets = %v, want 1", n)
	}
}
