package keyring

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/internal/nodecopy"
	"github.com/tokengate/tokengate/internal/store"
)

// Defaults for a keyring created on first use.
const (
	DefaultAlg      = "HS256" // seed 003: HS256 with a generated secret
	DefaultLifetime = time.Hour
	// refreshEvery bounds how long a node trusts its copy if it missed an
	// EventDocument.
	refreshEvery = 30 * time.Second
	// refreshFloor is the least time between two reloads asked for by
	// Refresh, so that tokens naming made-up kids cost no store reads.
	refreshFloor = time.Second
)

// Holder keeps the parsed keyring of this node, loads it from the store
// (creating it on first use), carries out due rotations and reloads after
// an EventDocument. Get costs an atomic load and a clock read when the
// copy is fresh.
type Holder struct {
	store store.Documents
	cfg   atomic.Pointer[holderConfig]
	now   func() time.Time
	// keys is this node's copy. An invalidation moves it to a new
	// generation: a load that read the store before the latest one does
	// not install what it read (it may be the keyring before an immediate
	// rotation), and a Get after an invalidation does not share the
	// result of a load begun before it.
	keys *nodecopy.Copy[snapshot]
}

// holderConfig is replaced as a whole by Configure.
type holderConfig struct {
	policy   Policy
	alg      string
	lifetime time.Duration
}

type snapshot struct {
	keys *Keys
	due  time.Time // next scheduled change (zero: none)
}

// NewHolder returns a Holder. alg and lifetime are used only if the store
// has no keyring yet (""/0: HS256, 1h). now nil means time.Now.
func NewHolder(s store.Documents, p Policy, alg string, lifetime time.Duration, now func() time.Time) *Holder {
	if now == nil {
		now = time.Now
	}
	h := &Holder{store: s, now: now}
	h.Configure(p, alg, lifetime)
	h.keys = nodecopy.New(h.load, nodecopy.Options[snapshot]{Now: now, Expires: expires})
	return h
}

// expires is when a copy loaded at loadedAt is read again: after
// refreshEvery, or at the next scheduled change if that comes first.
func expires(s snapshot, loadedAt time.Time) time.Time {
	until := loadedAt.Add(refreshEvery)
	if !s.due.IsZero() && s.due.Before(until) {
		until = s.due
	}
	return until
}

func (h *Holder) policy() Policy { return h.cfg.Load().policy }

// Get returns the current keys.
func (h *Holder) Get(ctx context.Context) (*Keys, error) {
	s, err := h.keys.Get(ctx)
	return s.keys, err
}

// Refresh reads the store again, unless this node's copy is younger than
// refreshFloor, and returns the keys. A verifier that meets a kid it does
// not know calls it: another node may have just changed the keyring
// (an immediate reset signs with a new key at once) and its announcement
// may not have arrived here yet.
func (h *Holder) Refresh(ctx context.Context) (*Keys, error) {
	s, err := h.keys.Refresh(ctx, refreshFloor)
	return s.keys, err
}

// Invalidate makes the next Get read the store (after an EventDocument).
// A load already under way keeps its result to itself.
func (h *Holder) Invalidate() { h.keys.Invalidate() }

// Update changes the keyring with fn atomically and returns the result.
func (h *Holder) Update(ctx context.Context, fn func(*Document) error) (*Keys, error) {
	s, err := h.update(ctx, fn)
	return s.keys, err
}

func (h *Holder) update(ctx context.Context, fn func(*Document) error) (snapshot, error) {
	b, err := h.store.UpdateDocument(ctx, store.DocKeyring, func(current []byte) ([]byte, error) {
		d, err := h.decodeOrNew(current)
		if err != nil {
			return nil, err
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		return d.Encode()
	})
	if err != nil {
		return snapshot{}, err
	}
	// The store announced the change (every node, this one included,
	// drops its copy); drop ours here too, so that this node never signs
	// or verifies with the keys just replaced, subscribed or not. The next
	// Get reads the store: another node may have written since. (Called
	// from load, this also keeps the load from installing its result.)
	h.Invalidate()
	return parse(b)
}

// load reads the keyring for h.keys, creating it or carrying out a due
// change first if need be.
func (h *Holder) load(ctx context.Context) (snapshot, error) {
	b, err := h.store.GetDocument(ctx, store.DocKeyring)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.update(ctx, func(*Document) error { return nil })
	case err != nil:
		return snapshot{}, err
	}
	d, err := Decode(b)
	if err != nil {
		return snapshot{}, err
	}
	// A rotation or retirement is due: carry it out (atomically: another
	// node may be doing the same; Advance on the current copy is idempotent).
	if changed, err := d.Advance(h.policy(), h.now()); err != nil {
		return snapshot{}, err
	} else if changed {
		return h.update(ctx, func(d *Document) error {
			_, err := d.Advance(h.policy(), h.now())
			return err
		})
	}
	return parse(b)
}

func (h *Holder) decodeOrNew(current []byte) (*Document, error) {
	if current == nil {
		c := h.cfg.Load()
		return New(c.alg, c.lifetime, c.policy, h.now())
	}
	return Decode(current)
}

// parse decodes a stored keyring.
func parse(b []byte) (snapshot, error) {
	d, err := Decode(b)
	if err != nil {
		return snapshot{}, err
	}
	ks, err := Parse(d)
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{keys: ks, due: nextChange(d)}, nil
}

// nextChange is the earliest scheduled rotation or retirement.
func nextChange(d *Document) time.Time {
	var due time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if d.Pending != nil {
		earlier(d.Pending.At)
	}
	for _, k := range d.Keys {
		if k.State == StateRetiring {
			earlier(k.RetireAt)
		}
	}
	return due
}

// Configure sets the policy and the settings used if the store has no
// keyring yet (after a config reload); "" and 0 keep the defaults.
func (h *Holder) Configure(p Policy, alg string, lifetime time.Duration) {
	if alg == "" {
		alg = DefaultAlg
	}
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	h.cfg.Store(&holderConfig{policy: p, alg: alg, lifetime: lifetime})
}
