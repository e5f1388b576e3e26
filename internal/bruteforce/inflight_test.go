package bruteforce

import "testing"

// A guess that read the store's count before another guess's failure was
// counted, and takes its slot after that guess gave its slot back, must
// read the count again: otherwise it sees neither the failure nor the
// guess in flight, and one more secret is checked than the limit allows.
func TestTakeAfterAFailureEndedReadsAgain(t *testing.T) {
	f := inFlight{keys: map[string]*slots{}}
	keys := []Key{{Name: "addr:192.0.2.1", Limit: 1}}
	first, _, stale := f.take(keys, []int64{1}, f.begin(keys))
	if first == nil || stale {
		t.Fatal("the first guess got no slot")
	}
	seen := f.begin(keys) // a second guess reads the store: 0 failures
	first(true)           // the first guess's failure is counted, its slot given back
	release, wait, stale := f.take(keys, []int64{1}, seen)
	if release != nil || wait != nil || !stale {
		t.Fatalf("take after a failure ended since the read: release %v, wait %v, stale %v; want stale", release != nil, wait != nil, stale)
	}
	if len(f.keys) != 0 {
		t.Errorf("%d keys still held with nothing in flight or reading", len(f.keys))
	}
	// Read again (1 failure now): the key is at its limit, nothing to take.
	// A success leaves nothing to read again.
	second, _, _ := f.take(keys, []int64{1}, f.begin(keys))
	seen = f.begin(keys)
	second(false)
	if release, _, stale := f.take(keys, []int64{1}, seen); release == nil || stale {
		t.Fatalf("take after a success: release %v, stale %v; want a slot", release != nil, stale)
	}
}
