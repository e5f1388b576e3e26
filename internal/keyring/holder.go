package keyring

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

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
// an EventDocument. Get costs an atomic load when the copy is fresh.
type Holder struct {
	store store.Documents
	cfg   atomic.Pointer[holderConfig]
	now   func() time.Time
	cur   atomic.Pointer[snapshot]
	// gen counts invalidations: a load that read the store before the
	// latest one does not install what it read (it may be the keyring
	// before an immediate rotation), and a Get after an invalidation does
	// not share the result of a load begun before it.
	gen   atomic.Uint64
	group singleflight.Group
}

// holderConfig is replaced as a whole by Configure.
type holderConfig struct {
	policy   Policy
	alg      string
	lifetime time.Duration
}

type snapshot struct {
	keys     *Keys
	loadedAt time.Time
	due      time.Time // next scheduled change (zero: none)
}

// NewHolder returns a Holder. alg and lifetime are used only if the store
// has no keyring yet (""/0: HS256, 1h). now nil means time.Now.
func NewHolder(s store.Documents, p Policy, alg string, lifetime time.Duration, now func() time.Time) *Holder {
	if alg == "" {
		alg = DefaultAlg
	}
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if now == nil {
		now = time.Now
	}
	h := &Holder{store: s, now: now}
	h.cfg.Store(&holderConfig{policy: p, alg: alg, lifetime: lifetime})
	return h
}

func (h *Holder) policy() Policy { return h.cfg.Load().policy }

// Get returns the current keys.
func (h *Holder) Get(ctx context.Context) (*Keys, error) {
	now := h.now()
	if s := h.cur.Load(); s != nil && now.Sub(s.loadedAt) < refreshEvery && (s.due.IsZero() || now.Before(s.due)) {
		return s.keys, nil
	}
	gen := h.gen.Load()
	v, err, _ := h.group.Do(strconv.FormatUint(gen, 10), func() (any, error) { return h.load(ctx, gen) })
	if err != nil {
		return nil, err
	}
	return v.(*Keys), nil
}

// Refresh reads the store again, unless this node's copy is younger than
// refreshFloor, and returns the keys. A verifier that meets a kid it does
// not know calls it: another node may have just changed the keyring
// (an immediate reset signs with a new key at once) and its announcement
// may not have arrived here yet.
func (h *Holder) Refresh(ctx context.Context) (*Keys, error) {
	s := h.cur.Load()
	if s != nil && h.now().Sub(s.loadedAt) < refreshFloor {
		return s.keys, nil
	}
	h.cur.CompareAndSwap(s, nil)
	return h.Get(ctx)
}

// Invalidate makes the next Get read the store (after an EventDocument).
// A load already under way keeps its result to itself.
func (h *Holder) Invalidate() {
	h.gen.Add(1)
	h.cur.Store(nil)
}

// Update changes the keyring with fn atomically and returns the result.
func (h *Holder) Update(ctx context.Context, fn func(*Document) error) (*Keys, error) {
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
		return nil, err
	}
	// The store announced the change (every node, this one included,
	// drops its copy); drop ours here too, so that this node never signs
	// or verifies with the keys just replaced, subscribed or not. The next
	// Get reads the store: another node may have written since.
	h.Invalidate()
	d, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return Parse(d)
}

func (h *Holder) load(ctx context.Context, gen uint64) (*Keys, error) {
	b, err := h.store.GetDocument(ctx, store.DocKeyring)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.Update(ctx, func(*Document) error { return nil })
	case err != nil:
		return nil, err
	}
	d, err := Decode(b)
	if err != nil {
		return nil, err
	}
	// A rotation or retirement is due: carry it out (atomically: another
	// node may be doing the same; Advance on the current copy is idempotent).
	if changed, err := d.Advance(h.policy(), h.now()); err != nil {
		return nil, err
	} else if changed {
		return h.Update(ctx, func(d *Document) error {
			_, err := d.Advance(h.policy(), h.now())
			return err
		})
	}
	return h.install(b, gen)
}

func (h *Holder) decodeOrNew(current []byte) (*Document, error) {
	if current == nil {
		c := h.cfg.Load()
		return New(c.alg, c.lifetime, c.policy, h.now())
	}
	return Decode(current)
}

// install parses b and keeps it as this node's copy, unless an
// invalidation came after gen was read (then the next Get reads again).
func (h *Holder) install(b []byte, gen uint64) (*Keys, error) {
	d, err := Decode(b)
	if err != nil {
		return nil, err
	}
	ks, err := Parse(d)
	if err != nil {
		return nil, err
	}
	if h.gen.Load() == gen {
		snap := &snapshot{keys: ks, loadedAt: h.now(), due: nextChange(d)}
		h.cur.Store(snap)
		if h.gen.Load() != gen { // an invalidation slipped in: take it back
			h.cur.CompareAndSwap(snap, nil)
		}
	}
	return ks, nil
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
