package stripetest

import (
	"strings"
	"testing"
)

func TestColliding(t *testing.T) {
	names := Colliding("acct:", "alice", "mallory", 5)
	if len(names) != 5 {
		t.Fatalf("%d names, want 5", len(names))
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "mallory") || Stripe("acct:"+n) != Stripe("acct:alice") {
			t.Errorf("%q does not share alice's stripe", n)
		}
	}
}
