// Package stripetest finds names that shared a lock in the brute-force
// limiter before issue 11: it held one of 256 mutexes, chosen by the low
// byte of the FNV-1a hash of the counter's name ("acct:alice",
// "client:tgc_..."), across the secret check and the slow-down, so guesses
// at made-up names on a victim's stripe stalled the victim. Tests use these
// names to show that a guess at one account never waits on another's.
package stripetest

import "fmt"

// Stripe is the stripe the old limiter locked for a counter name.
func Stripe(counter string) uint8 {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(counter); i++ {
		h = (h ^ uint32(counter[i])) * 16777619
	}
	return uint8(h)
}

// Colliding returns n names, namePrefix followed by a number, whose
// counters (counterPrefix + name) share the stripe of victim's counter
// (counterPrefix + victim).
func Colliding(counterPrefix, victim, namePrefix string, n int) []string {
	want := Stripe(counterPrefix + victim)
	var names []string
	for i := 0; len(names) < n; i++ {
		name := fmt.Sprintf("%s%d", namePrefix, i)
		if name != victim && Stripe(counterPrefix+name) == want {
			names = append(names, name)
		}
	}
	return names
}
