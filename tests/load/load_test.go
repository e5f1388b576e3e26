package main

import (
	"testing"
	"time"
)

// TestShortRun runs the harness in its short mode (a second per row) so
// that it cannot rot. It asserts what does not depend on the machine's
// speed: every row but PAT creation (bcrypt-bound: a second may see none)
// got answers, rows that expect 2xx got no other answer, cached and
// malformed rows stay away from the store, and cold rows make about one
// store round trip per request.
func TestShortRun(t *testing.T) {
	results, extra, err := run(config{short: true, rounds: 1, duration: time.Second, conns: 20, threads: 2, out: t.TempDir(), failLimit: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Fatalf("only %d rows", len(results))
	}
	for _, r := range results {
		var requests, status int64
		for _, s := range r.Samples {
			requests += s.Requests
			status += s.StatusErrors
		}
		if requests == 0 && r.Group != "endpoint" {
			t.Errorf("%s (%s): no request was answered", r.Name, r.Store)
		}
		if r.Expect2xx && status > 0 {
			t.Errorf("%s (%s): %d non-2xx answers: %s", r.Name, r.Store, status, r.FailReason)
		}
		if (r.Group == "malformed" || r.Group == "cached") && r.TripsPerRequest > 0.01 {
			t.Errorf("%s (%s): %.4f store round trips per request, want none", r.Name, r.Store, r.TripsPerRequest)
		}
		if r.Group == "cold" && (r.TripsPerRequest < 0.9 || r.TripsPerRequest > 1.2) {
			t.Errorf("%s (%s): %.4f store round trips per request, want about one", r.Name, r.Store, r.TripsPerRequest)
		}
	}
	if _, ok := extra["redis propagation"]; !ok {
		t.Error("no propagation figures")
	}
	// With pub/sub silently down, node B must still refuse within about
	// its cache TTL (the harness fails the run if it takes ten times that).
	if _, ok := extra["redis pubsub_down"]; !ok {
		t.Error("no pub/sub-down figures")
	}
}
