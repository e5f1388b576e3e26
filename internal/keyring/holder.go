package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/events"
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
	// doc is the name of the store document the keys are kept in
	// (store.DocKeyring, or an identity assertion keyring).
	doc string

	// mu guards the sealing state below.
	mu      sync.Mutex
	secrets *Secrets // nil: no secrets_key, material in clear
	// reseal: material sealed with secrets_key_previous is to be sealed
	// again with secrets_key, once (set by SetSecrets). Once only: during
	// a rolling rotation a node not yet restarted seals with the old key,
	// and two nodes resealing on every load would rewrite the keyring
	// back and forth.
	reseal bool
	logger *zap.Logger
	// reported is the last error of opening the keyring that was logged,
	// so that it is logged once, not per request ("" after a success).
	reported string
	// events gets signing_key.rotated (nil: none).
	events events.Emitter
}

// SetEvents makes Apply emit lifecycle events to e (nil: none). Called
// while wiring, before the Holder is used.
func (h *Holder) SetEvents(e events.Emitter) { h.events = e }

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
	return NewDocumentHolder(s, store.DocKeyring, p, alg, lifetime, now)
}

// NewDocumentHolder is NewHolder for keys kept in the store document
// name: a keyring of its own, with the same life cycle, sealing and
// reloads (the identity assertion keys use one per algorithm).
func NewDocumentHolder(s store.Documents, name string, p Policy, alg string, lifetime time.Duration, now func() time.Time) *Holder {
	if now == nil {
		now = time.Now
	}
	h := &Holder{store: s, doc: name, now: now, logger: zap.NewNop()}
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
	sec, _ := h.sealingState()
	b, err := h.store.UpdateDocument(ctx, h.doc, func(current []byte) ([]byte, error) {
		d, err := h.decodeOrNew(sec, current)
		if err != nil {
			return nil, err
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		return sec.Encode(d)
	})
	if err != nil {
		return snapshot{}, h.report(err)
	}
	// The store announced the change (every node, this one included,
	// drops its copy); drop ours here too, so that this node never signs
	// or verifies with the keys just replaced, subscribed or not. The next
	// Get reads the store: another node may have written since. (Called
	// from load, this also keeps the load from installing its result.)
	h.Invalidate()
	d, _, err := sec.Decode(b)
	if err != nil {
		return snapshot{}, err
	}
	return parse(d)
}

// load reads the keyring for h.keys, creating it or carrying out a due
// change first if need be.
func (h *Holder) load(ctx context.Context) (snapshot, error) {
	b, err := h.store.GetDocument(ctx, h.doc)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.update(ctx, func(*Document) error { return nil })
	case err != nil:
		return snapshot{}, err
	}
	sec, reseal := h.sealingState()
	d, sealing, err := sec.Decode(b)
	if err != nil {
		return snapshot{}, h.report(err)
	}
	h.report(nil)
	// A rotation or retirement is due: carry it out (atomically: another
	// node may be doing the same; Advance on the current copy is idempotent).
	changed, err := d.Advance(h.policy(), h.now())
	if err != nil {
		return snapshot{}, err
	}
	if stale := sec.Stale(sealing, reseal); changed || stale {
		s, err := h.update(ctx, func(d *Document) error {
			_, err := d.Advance(h.policy(), h.now())
			return err
		})
		if err == nil && stale {
			h.resealed(sec, sealing)
		}
		return s, err
	}
	if reseal {
		h.resealed(nil, sealing) // nothing was left to seal again
	}
	return parse(d)
}

func (h *Holder) decodeOrNew(sec *Secrets, current []byte) (*Document, error) {
	if current == nil {
		c := h.cfg.Load()
		return New(c.alg, c.lifetime, c.policy, h.now())
	}
	d, _, err := sec.Decode(current)
	return d, err
}

// parse turns an opened keyring into a snapshot.
func parse(d *Document) (snapshot, error) {
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

// SetSecrets makes the holder seal the keyring with s (nil: no
// secrets_key, material in clear) from its next write, and open it with s
// from its next read; a keyring sealed with s's previous key is sealed
// again with its current key on the next read (once). Errors of opening
// the keyring are logged once on logger (nil: not logged), at each
// change of reason. Use CheckSecrets first when the store can be read.
func (h *Holder) SetSecrets(s *Secrets, logger *zap.Logger) {
	if logger == nil {
		logger = zap.NewNop()
	}
	h.mu.Lock()
	h.secrets, h.reseal, h.logger, h.reported = s, s.PreviousKeyID() != "", logger, ""
	h.mu.Unlock()
	h.Invalidate()
}

// UseSecrets checks that the stored keyring opens with s and, if it does,
// installs s (see SetSecrets) and seals the keyring again with s's
// current key if it holds material in clear or sealed with the previous
// key. A keyring that does not open (a wrong secrets_key, or none for a
// sealed keyring) is an error matching ErrSealed, and s is not installed:
// the caller refuses to start. A store that cannot be read installs s
// and returns nil: the first read then says what is wrong (and the
// token endpoint, the JWKS and access token checks answer 503).
func (h *Holder) UseSecrets(ctx context.Context, s *Secrets, logger *zap.Logger) error {
	b, err := h.store.GetDocument(ctx, h.doc)
	if err == nil {
		if _, _, err := s.Decode(b); err != nil {
			return err
		}
	}
	h.SetSecrets(s, logger)
	if err != nil { // no keyring yet (made on first use), or unreadable
		return nil
	}
	if _, err := h.Get(ctx); err != nil && errors.Is(err, ErrSealed) {
		return err // another node changed the keys meanwhile
	}
	return nil
}

// sealingState returns the secrets the keyring is sealed with and
// whether it is still to be sealed again (see SetSecrets).
func (h *Holder) sealingState() (*Secrets, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.secrets, h.reseal
}

// resealed notes that the keyring was sealed again with sec's current key
// (sec nil: nothing needed it), and logs it.
func (h *Holder) resealed(sec *Secrets, was Sealing) {
	h.mu.Lock()
	h.reseal = false
	logger := h.logger
	h.mu.Unlock()
	if sec == nil {
		return
	}
	from := "the signing keys in clear"
	if !was.Clear {
		from = "the signing keys sealed with secrets_key_previous (id " + sec.PreviousKeyID() + ")"
	}
	logger.Info("sealed "+from+" with secrets_key", zap.String("secrets_key_id", sec.KeyID()))
}

// errReported stands for an error of opening the keyring already logged:
// the requests it fails log their error too (at each 503), and need not
// repeat the whole reason every time.
var errReported = fmt.Errorf("%w (the reason was logged once by tokengate.keyring)", ErrSealed)

// report logs an error of opening the keyring, once per reason, and
// returns what to answer: err the first time, errReported after; nil (a
// keyring that opened) forgets the last one. Other errors pass unchanged.
func (h *Holder) report(err error) error {
	if err != nil && !errors.Is(err, ErrSealed) {
		return err
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	h.mu.Lock()
	again := msg == h.reported
	h.reported = msg
	logger := h.logger
	h.mu.Unlock()
	if err != nil && again {
		return errReported
	}
	if err != nil {
		msg := "the signing keys in the store cannot be opened: the token endpoint, the JWKS " +
			"and access token checks answer 503 until the right secrets_key is configured"
		if h.doc != store.DocKeyring {
			msg = "the identity assertion keys in the store cannot be opened: their key set (jwks_path) and the requests " +
				"of the sites that send identity assertions answer 503 until the right secrets_key is configured"
		}
		logger.Error(msg, zap.String("document", h.doc), zap.Error(err))
	}
	return err
}
