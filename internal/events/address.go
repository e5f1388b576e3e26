package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/store"
)

// DefaultAddressMemory is how long a token's address is remembered: a use
// from an address not seen for that long is a use from a new address.
const DefaultAddressMemory = 30 * 24 * time.Hour

// maxRecent bounds Addresses' per-node memory of recently claimed
// (token, address) pairs.
const maxRecent = 10000

// AddressStore is where Addresses remembers a token's addresses, shared by
// every node: the store's windowed counter, used as a set-if-absent
// record per token and address that expires by itself.
type AddressStore interface {
	CountFailure(ctx context.Context, key string, window time.Duration) (int64, error)
}

// Addresses emits TokenNewAddress for a token used from an address it was
// not used from within the memory period (its first use included). It is
// fed the last-use batches as they are written (lastuse.Recorder.OnWritten),
// so it sees each token's newest use per address per flush, of up to
// lastuse.MaxAddresses addresses (the most recent): a token used from
// several addresses within one last_access_flush interval is seen from
// each. Each (token, address) is claimed in the store (a record that
// expires after the memory period, counted from the first use of the
// period), so with several nodes one event is sent. A per-node memory of
// recent claims saves the store call for a token that keeps its address.
type Addresses struct {
	store   AddressStore
	emitter Emitter

	mu     sync.Mutex
	memory time.Duration
	recent map[string]time.Time // key -> when this node claimed or saw it
}

// NewAddresses returns an Addresses remembering for memory (0:
// DefaultAddressMemory).
func NewAddresses(s AddressStore, e Emitter, memory time.Duration) *Addresses {
	if memory <= 0 {
		memory = DefaultAddressMemory
	}
	return &Addresses{store: s, emitter: e, memory: memory, recent: make(map[string]time.Time)}
}

// SetMemory changes the memory period (0: DefaultAddressMemory) for the
// addresses claimed from now on.
func (a *Addresses) SetMemory(memory time.Duration) {
	if memory <= 0 {
		memory = DefaultAddressMemory
	}
	a.mu.Lock()
	a.memory = memory
	a.mu.Unlock()
}

// Written takes a batch of uses the store has written. Store errors are
// returned (the first); the uses they concern are not announced.
func (a *Addresses) Written(ctx context.Context, uses []store.LastUse) error {
	if !delivering(a.emitter) {
		return nil
	}
	a.mu.Lock()
	memory := a.memory
	a.mu.Unlock()
	var first error
	for _, u := range uses {
		if u.IP == "" {
			continue
		}
		key := fmt.Sprintf("events/address/%s/%s", u.Hash, u.IP)
		if a.seenRecently(key, u.At) {
			continue
		}
		n, err := a.store.CountFailure(ctx, key, memory)
		if err != nil {
			if first == nil {
				first = err
			}
			a.forget(key)
			continue
		}
		if n != 1 {
			continue
		}
		Emit(a.emitter, Event{
			Type: TokenNewAddress, Time: u.At, Actor: u.Owner, HashedToken: u.Hash.String(),
			Subject: Subject{Kind: SubjectToken, ID: u.TokenID, Owner: u.Owner},
			Data:    map[string]any{"address": u.IP, "host": u.Host},
		})
	}
	return first
}

// seenRecently tells whether this node claimed or saw key within an hour
// (and notes it now otherwise). The map is bounded: when full it starts
// again empty (the store still answers).
func (a *Addresses) seenRecently(key string, at time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.recent[key]; ok && at.Sub(t) < min(time.Hour, a.memory) && at.Sub(t) >= 0 {
		return true
	}
	if len(a.recent) >= maxRecent {
		clear(a.recent)
	}
	a.recent[key] = at
	return false
}

func (a *Addresses) forget(key string) {
	a.mu.Lock()
	delete(a.recent, key)
	a.mu.Unlock()
}
