package bruteforce

import "sync"

// inFlight counts the guesses being checked on this node per key. Its
// mutex is held only to take or give back slots, never while a secret is
// checked.
type inFlight struct {
	mu   sync.Mutex
	keys map[string]*slots
}

// slots are one key's guesses in flight; wake is closed (and replaced)
// when one of them ends, for guesses waiting on that key.
type slots struct {
	n    int64
	wake chan struct{}
}

// take takes a slot on every key when each has fewer than allow[i] in
// flight, and returns the function that gives them back. Otherwise it
// takes nothing and returns a channel closed when a guess on the first
// full key ends.
func (f *inFlight) take(keys []Key, allow []int64) (release func(), wait <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range keys {
		s := f.keys[k.Name]
		if s != nil && s.n >= allow[i] {
			if s.wake == nil {
				s.wake = make(chan struct{})
			}
			return nil, s.wake
		}
	}
	for _, k := range keys {
		s := f.keys[k.Name]
		if s == nil {
			s = &slots{}
			f.keys[k.Name] = s
		}
		s.n++
	}
	var once sync.Once
	return func() { once.Do(func() { f.give(keys) }) }, nil
}

// give gives back a slot on every key and wakes the guesses waiting on
// them; a key with nothing in flight is forgotten, so the map holds only
// keys being guessed now.
func (f *inFlight) give(keys []Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		s := f.keys[k.Name]
		s.n--
		if s.wake != nil {
			close(s.wake)
			s.wake = nil
		}
		if s.n == 0 {
			delete(f.keys, k.Name)
		}
	}
}
