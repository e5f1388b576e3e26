package bruteforce

import "sync"

// inFlight counts the guesses being checked on this node per key. Its
// mutex is held only to take or give back slots, never while a secret is
// checked.
type inFlight struct {
	mu   sync.Mutex
	keys map[string]*slots
}

// slots are one key's guesses in flight on this node.
type slots struct {
	n int64
	// failed counts the guesses that ended counted as failures: a guess
	// that read the store's count before one of them ended must read it
	// again (see begin and take).
	failed uint64
	// readers are guesses between begin and take: the entry stays while
	// they need its failed count.
	readers int
	// wake is closed (and replaced) when a guess on this key ends.
	wake chan struct{}
}

// begin notes that a guess is about to read the keys' failures from the
// store, and returns how many guesses had ended as failures so far.
func (f *inFlight) begin(keys []Key) []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := make([]uint64, len(keys))
	for i, k := range keys {
		s := f.keys[k.Name]
		if s == nil {
			s = &slots{}
			f.keys[k.Name] = s
		}
		s.readers++
		seen[i] = s.failed
	}
	return seen
}

// take, after begin and the store read, takes a slot on every key when
// each has fewer than allow[i] in flight, and returns the function that
// gives them back (saying whether the guess failed). When a guess on one
// of the keys ended as a failure since begin, the store read may have
// missed it: take takes nothing and says to read again (stale). When a key
// is full, it takes nothing and returns a channel closed when a guess on
// that key ends.
func (f *inFlight) take(keys []Key, allow []int64, seen []uint64) (release func(failed bool), wait <-chan struct{}, stale bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range keys {
		s := f.keys[k.Name]
		s.readers--
		stale = stale || s.failed != seen[i]
	}
	for i, k := range keys {
		if s := f.keys[k.Name]; !stale && wait == nil && s.n >= allow[i] {
			if s.wake == nil {
				s.wake = make(chan struct{})
			}
			wait = s.wake
		}
	}
	if stale || wait != nil {
		f.forget(keys)
		return nil, wait, stale
	}
	for _, k := range keys {
		f.keys[k.Name].n++
	}
	var once sync.Once
	return func(failed bool) { once.Do(func() { f.give(keys, failed) }) }, nil, false
}

// cancel ends a begin that will not take (the store read failed, or a key
// is at its limit).
func (f *inFlight) cancel(keys []Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.keys[k.Name].readers--
	}
	f.forget(keys)
}

// give gives back a slot on every key, counts a failure there if the guess
// failed, and wakes the guesses waiting on them.
func (f *inFlight) give(keys []Key, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		s := f.keys[k.Name]
		s.n--
		if failed {
			s.failed++
		}
		if s.wake != nil {
			close(s.wake)
			s.wake = nil
		}
	}
	f.forget(keys)
}

// forget drops the entries of keys that nothing is in flight on or
// reading, so the map holds only keys being guessed now.
func (f *inFlight) forget(keys []Key) {
	for _, k := range keys {
		if s := f.keys[k.Name]; s != nil && s.n == 0 && s.readers == 0 {
			delete(f.keys, k.Name)
		}
	}
}
