// Package lastuse batches "last access" updates so that using a token
// costs no store write per request: uses are kept in memory and written in
// one batch per interval. Per token a batch keeps the newest use from each
// of up to MaxAddresses distinct addresses (the most recent ones), so the
// store's recent addresses and the new-address events (which see each
// written batch) see every address of a token used from a fleet within
// one interval, a thief's one use among the fleet's too, and memory stays
// bounded when a token is used from thousands.
package lastuse

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
	"github.com/tokengate/tokengate/internal/streak"
)

// Recorder collects token uses and writes them in batches.
type Recorder struct {
	store store.LastUses

	mu      sync.Mutex
	pending map[key][]store.LastUse
	// writing is the batch a Flush is writing: still shown by Pending
	// until the store has it, so a reader between the two sees the use.
	writing map[key][]store.LastUse

	// flushes follows the flushes by Run that failed.
	flushes streak.Streak

	// written, if set, is told each batch the store took (see OnWritten).
	written atomic.Pointer[func(context.Context, []store.LastUse)]
}

// OnWritten makes every flush that the store took call fn with its batch,
// on the flushing goroutine (so fn should be quick or bounded): the
// events package finds there the tokens used from new addresses.
func (r *Recorder) OnWritten(fn func(context.Context, []store.LastUse)) {
	r.written.Store(&fn)
}

type key struct{ owner, id string }

// MaxAddresses bounds the distinct addresses a batch keeps per token. The
// store keeps only the store.MaxRecentAddresses newest, but the batch is
// also what the new-address events see: with five, a fleet of five
// addresses using a token after a thief's one use within the same
// last_access_flush interval would push that use out unannounced.
const MaxAddresses = 64

// New returns a Recorder that writes to s.
func New(s store.LastUses) *Recorder {
	return &Recorder{store: s, pending: make(map[key][]store.LastUse)}
}

// Record queues a use. Per token and address the newest use wins; of a
// token's addresses the MaxAddresses most recently used are kept (a use
// older than all of them, when there are that many, is dropped).
func (r *Recorder) Record(u store.LastUse) {
	k := key{u.Owner, u.TokenID}
	r.mu.Lock()
	r.pending[k] = merge(r.pending[k], u)
	r.mu.Unlock()
}

// merge returns uses (at most one per IP, at most MaxAddresses) with u
// merged in as Record describes.
func merge(uses []store.LastUse, u store.LastUse) []store.LastUse {
	oldest := -1
	for i, o := range uses {
		if o.IP == u.IP {
			if u.At.After(o.At) {
				uses[i] = u
			}
			return uses
		}
		if oldest < 0 || o.At.Before(uses[oldest].At) {
			oldest = i
		}
	}
	if len(uses) < MaxAddresses {
		return append(uses, u)
	}
	if u.At.After(uses[oldest].At) {
		uses[oldest] = u
	}
	return uses
}

// newest returns the newest of uses (the first of equal ones).
func newest(uses []store.LastUse) store.LastUse {
	var n store.LastUse
	for i, u := range uses {
		if i == 0 || u.At.After(n.At) {
			n = u
		}
	}
	return n
}

// Pending returns the queued uses of owner's tokens by token id, so that a
// listing made on this node shows uses not yet written.
func (r *Recorder) Pending(owner string) map[string]store.LastUse {
	out := make(map[string]store.LastUse)
	for id, uses := range r.pendingUses(owner) {
		out[id] = newest(uses)
	}
	return out
}

// pendingUses returns the queued uses of owner's tokens by token id, all
// of each token's addresses (see Record).
func (r *Recorder) pendingUses(owner string) map[string][]store.LastUse {
	out := make(map[string][]store.LastUse)
	r.mu.Lock()
	for _, m := range []map[key][]store.LastUse{r.writing, r.pending} {
		for k, uses := range m {
			if k.owner != owner {
				continue
			}
			for _, u := range uses {
				out[k.id] = merge(out[k.id], u)
			}
		}
	}
	r.mu.Unlock()
	return out
}

// Apply overlays the uses queued on this node on owner's tokens, so that a
// listing shows last accesses and recent addresses not yet written. A nil
// Recorder does nothing.
func (r *Recorder) Apply(owner string, ts []store.Token) {
	if r == nil {
		return
	}
	pending := r.pendingUses(owner)
	for i := range ts {
		t := &ts[i]
		uses, ok := pending[t.ID]
		if !ok {
			continue
		}
		if u := newest(uses); u.At.After(t.LastUsedAt) {
			t.LastUsedAt, t.LastUsedIP, t.LastUsedHost = u.At, u.IP, u.Host
		}
		for _, u := range uses {
			t.RecentAddresses = store.MergeAddress(t.RecentAddresses, u.IP, u.At, u.Host)
		}
	}
}

// Flush writes what is queued. If the write fails the uses are queued
// again (unless newer ones arrived meanwhile) and the error is returned.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return nil
	}
	batch := make([]store.LastUse, 0, len(r.pending))
	for _, uses := range r.pending {
		batch = append(batch, uses...)
	}
	r.writing, r.pending = r.pending, make(map[key][]store.LastUse, len(r.pending))
	r.mu.Unlock()

	err := r.store.RecordLastUse(ctx, batch)
	if err != nil {
		for _, u := range batch {
			r.Record(u)
		}
	}
	r.mu.Lock()
	r.writing = nil
	r.mu.Unlock()
	if fn := r.written.Load(); err == nil && fn != nil {
		(*fn)(ctx, batch)
	}
	return err
}

// Failures returns how many flushes by Run failed (each is retried at the
// next interval with the uses it could not write). A nil Recorder has none.
func (r *Recorder) Failures() uint64 {
	if r == nil {
		return 0
	}
	return r.flushes.Failures()
}

// Run flushes every interval until ctx is done, then flushes once more
// (with a fresh, bounded context) so that a clean shutdown loses nothing.
// A failed flush is counted (Failures) and logged at Warn once per streak
// of failures, and once more, with the count, when writing works again.
func (r *Recorder) Run(ctx context.Context, interval time.Duration, logger *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r.flushLogged(final, logger)
			return
		case <-t.C:
			r.flushLogged(ctx, logger)
		}
	}
}

// flushLogged flushes and reports the outcome as Run documents. Only one
// goroutine at a time may call it.
func (r *Recorder) flushLogged(ctx context.Context, logger *zap.Logger) {
	// A failed flush queues its uses again, so the flush after it always
	// writes: a nil error then means the store took them.
	r.flushes.Record(r.Flush(ctx), logger, "writing last token use")
}
