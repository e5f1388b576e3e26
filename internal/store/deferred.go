package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/internal/breaker"
)

// Deferred is a Store whose backend is attached later, so that everything
// built on the store can exist before the store is opened (a config can be
// validated without opening, locking or creating anything) and keeps
// working once it is. Until Attach succeeds every method returns an
// *UnavailableError, except Subscribe, which is kept and set up on the
// backend when it is attached. While the first opening is still under way
// (Caddy may start serving before the app that opens the store has
// started), a call waits for it, up to its context or startWait; once that
// opening has failed (Unreachable), calls answer at once.
//
// # Fail fast
//
// Once attached, every call goes through a circuit breaker (Breaker): the
// calls that fail because the backend could not be reached (timeouts,
// refused or broken connections, and what the backend says as an
// UnreachableTeller) are counted, and after a few
// in a row, or one failed probe (Probe pings the backend every probe
// interval), the breaker opens: every call then fails at once with an
// *UnavailableError that says when to come back (a 503 with Retry-After),
// instead of each waiting out a timeout on a backend known to be down,
// until a probe succeeds. Answers such as ErrNotFound are the backend's
// answers, not failures.
type Deferred struct {
	live atomic.Pointer[Store]
	// settled is closed by the first Attach or Unreachable.
	settled    chan struct{}
	settleOnce sync.Once
	breaker    *breaker.Breaker
	observer   atomic.Pointer[Observer]

	mu      sync.Mutex // serialises Attach, Subscribe and Close
	pending []subscription
	closed  bool
}

// subscription is a Subscribe call waiting for the backend.
type subscription struct {
	ctx context.Context
	fn  func(Event)
}

// startWait bounds how long a call waits for the first opening of the
// store.
const startWait = 10 * time.Second

// NewDeferred returns a Deferred store with no backend, and a breaker
// with the default options (see Breaker).
func NewDeferred() *Deferred {
	return &Deferred{settled: make(chan struct{}), breaker: breaker.New(breaker.Options{Name: "store"})}
}

// Unreachable says that the first opening failed (and is retried in the
// background): until Attach, calls answer ErrUnavailable at once instead
// of waiting.
func (d *Deferred) Unreachable() { d.settleOnce.Do(func() { close(d.settled) }) }

// Breaker returns the circuit breaker in front of the backend, to
// configure it (breaker.Breaker.Configure) or ask its state.
func (d *Deferred) Breaker() *breaker.Breaker { return d.breaker }

// errNotOpen is the cause of an UnavailableError before Attach.
var errNotOpen = errors.New("the store is not open yet")

// backend returns the backend for a call, waiting first for the first
// opening to settle (see Deferred), or the error the call answers at once:
// the store is not open, or the breaker is open.
func (d *Deferred) backend(ctx context.Context) (Store, error) {
	s := d.live.Load()
	if s == nil {
		t := time.NewTimer(startWait)
		defer t.Stop()
		select {
		case <-d.settled:
		case <-ctx.Done():
		case <-t.C:
		}
		if s = d.live.Load(); s == nil {
			return nil, d.unavailable(errNotOpen)
		}
	}
	if err := d.breaker.Allow(); err != nil {
		return nil, d.unavailable(err)
	}
	return *s, nil
}

// observe tells the breaker how a call to s ended and returns its error,
// marked as an *UnavailableError when the backend could not be reached.
func (d *Deferred) observe(ctx context.Context, s Store, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return err // the caller gave up: that says nothing of the store
	case !unreachable(s, err):
		d.breaker.Success() // an answer, perhaps "not found"
		return err
	}
	d.breaker.Failure(err)
	return d.unavailable(err)
}

// unavailable wraps err as an *UnavailableError with the breaker's hint.
func (d *Deferred) unavailable(err error) error {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	return &UnavailableError{Err: err, RetryAfter: d.breaker.RetryAfter()}
}

// call runs f, the operation op (the method's name), on the backend,
// through the breaker, and tells the Observer how it went.
func call[T any](d *Deferred, ctx context.Context, op string, f func(Store) (T, error)) (T, error) {
	obs := d.observer.Load()
	s, err := d.backend(ctx)
	if err != nil {
		if obs != nil {
			(*obs).StoreCall(op, 0, "refused")
		}
		var zero T
		return zero, err
	}
	var start time.Time
	if obs != nil {
		start = time.Now()
	}
	v, err := f(s)
	err = d.observe(ctx, s, err)
	if obs != nil {
		outcome := ""
		var ue *UnavailableError
		if errors.As(err, &ue) {
			outcome = "unreachable"
		}
		(*obs).StoreCall(op, time.Since(start), outcome)
	}
	return v, err
}

// do is call for a method that returns only an error.
func do(d *Deferred, ctx context.Context, op string, f func(Store) error) error {
	_, err := call(d, ctx, op, func(s Store) (struct{}, error) { return struct{}{}, f(s) })
	return err
}

// Observer is told of every call to the store (package metrics counts
// them): op is the method's name; outcome is "" for a call that got an
// answer (perhaps "not found"), "unreachable" for one that failed to
// reach the backend, "refused" for one answered at once without a call
// (the store is not open, or its breaker is open; took is then 0).
type Observer interface {
	StoreCall(op string, took time.Duration, outcome string)
}

// SetObserver makes o the Observer of every later call (nil: none).
func (d *Deferred) SetObserver(o Observer) {
	if o == nil {
		d.observer.Store(nil)
		return
	}
	d.observer.Store(&o)
}

// Ping pings the backend whatever the breaker says (it is how the breaker
// learns that the backend is back), and does not count for the breaker.
// Before Attach it answers an *UnavailableError.
func (d *Deferred) Ping(ctx context.Context) error {
	s := d.live.Load()
	if s == nil {
		return d.unavailable(errNotOpen)
	}
	if err := (*s).Ping(ctx); err != nil {
		return d.unavailable(err)
	}
	return nil
}

// Probe pings the backend every probe interval until ctx ends, opening the
// breaker when a ping fails and closing it when one succeeds (see
// breaker.Breaker.Run). Before Attach there is nothing to probe.
func (d *Deferred) Probe(ctx context.Context) {
	d.breaker.Run(ctx, func(ctx context.Context) error {
		if s := d.live.Load(); s != nil {
			return (*s).Ping(ctx)
		}
		return nil
	})
}

// Backend returns the attached backend, or nil before Attach succeeded.
func (d *Deferred) Backend() Store {
	if s := d.live.Load(); s != nil {
		return *s
	}
	return nil
}

// Attach makes s the backend once every Subscribe made so far is set up on
// it (so that no change goes unannounced to a cache filled from s). If a
// subscription cannot be set up, the ones made are cancelled, s is not
// attached and the error is returned; the caller still owns s and may try
// again. After a successful Attach the Deferred owns s and closes it in
// Close. Attaching twice, or after Close, is an error.
func (d *Deferred) Attach(s Store) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return errors.New("store: attach after close")
	case d.live.Load() != nil:
		return errors.New("store: a backend is already attached")
	}
	var cancels []context.CancelFunc
	for _, sub := range d.pending {
		if sub.ctx.Err() != nil {
			continue // that subscriber is gone
		}
		ctx, cancel := context.WithCancel(sub.ctx)
		if err := s.Subscribe(ctx, sub.fn); err != nil {
			cancel()
			for _, c := range cancels {
				c()
			}
			return err
		}
		cancels = append(cancels, cancel)
	}
	d.pending = nil
	d.live.Store(&s)
	d.Unreachable() // settled: waiting calls go on with s
	return nil
}

// Subscribe sets fn up on the backend, or keeps it until Attach.
func (d *Deferred) Subscribe(ctx context.Context, fn func(Event)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.live.Load(); s != nil {
		return (*s).Subscribe(ctx, fn)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.pending = append(d.pending, subscription{ctx, fn})
	return nil
}

// Close closes the backend if one is attached; a later Attach fails.
func (d *Deferred) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.Unreachable() // nothing will be attached: nobody waits
	if s := d.live.Load(); s != nil {
		return (*s).Close()
	}
	return nil
}

// CreateUser implements Store.
func (d *Deferred) CreateUser(ctx context.Context, u User) error {
	return do(d, ctx, "CreateUser", func(s Store) error { return s.CreateUser(ctx, u) })
}

// GetUser implements Store.
func (d *Deferred) GetUser(ctx context.Context, name string) (User, error) {
	return call(d, ctx, "GetUser", func(s Store) (User, error) { return s.GetUser(ctx, name) })
}

// ListUsers implements Store.
func (d *Deferred) ListUsers(ctx context.Context) ([]User, error) {
	return call(d, ctx, "ListUsers", func(s Store) ([]User, error) { return s.ListUsers(ctx) })
}

// UpdateUser implements Store.
func (d *Deferred) UpdateUser(ctx context.Context, name string, fn func(*User) error) (User, error) {
	return call(d, ctx, "UpdateUser", func(s Store) (User, error) { return s.UpdateUser(ctx, name, fn) })
}

// DeleteUser implements Store.
func (d *Deferred) DeleteUser(ctx context.Context, name string) error {
	return do(d, ctx, "DeleteUser", func(s Store) error { return s.DeleteUser(ctx, name) })
}

// CreateToken implements Store.
func (d *Deferred) CreateToken(ctx context.Context, t Token, limit int) error {
	return do(d, ctx, "CreateToken", func(s Store) error { return s.CreateToken(ctx, t, limit) })
}

// GetToken implements Store.
func (d *Deferred) GetToken(ctx context.Context, owner, id string) (Token, error) {
	return call(d, ctx, "GetToken", func(s Store) (Token, error) { return s.GetToken(ctx, owner, id) })
}

// ListTokens implements Store.
func (d *Deferred) ListTokens(ctx context.Context, owner string) ([]Token, error) {
	return call(d, ctx, "ListTokens", func(s Store) ([]Token, error) { return s.ListTokens(ctx, owner) })
}

// UpdateToken implements Store.
func (d *Deferred) UpdateToken(ctx context.Context, owner, id string, fn func(*Token) error) (Token, error) {
	return call(d, ctx, "UpdateToken", func(s Store) (Token, error) { return s.UpdateToken(ctx, owner, id, fn) })
}

// DeleteToken implements Store.
func (d *Deferred) DeleteToken(ctx context.Context, owner, id string) (Token, error) {
	return call(d, ctx, "DeleteToken", func(s Store) (Token, error) { return s.DeleteToken(ctx, owner, id) })
}

// LookupToken implements Store.
func (d *Deferred) LookupToken(ctx context.Context, h TokenHash) (Grant, error) {
	return call(d, ctx, "LookupToken", func(s Store) (Grant, error) { return s.LookupToken(ctx, h) })
}

// RotateToken implements Store.
func (d *Deferred) RotateToken(ctx context.Context, owner, id string, next TokenHash, now, until, expiresBy time.Time) (Token, error) {
	return call(d, ctx, "RotateToken", func(s Store) (Token, error) {
		return s.RotateToken(ctx, owner, id, next, now, until, expiresBy)
	})
}

// RecordLastUse implements Store.
func (d *Deferred) RecordLastUse(ctx context.Context, uses []LastUse) error {
	return do(d, ctx, "RecordLastUse", func(s Store) error { return s.RecordLastUse(ctx, uses) })
}

// CreateClient implements Store.
func (d *Deferred) CreateClient(ctx context.Context, c Client) error {
	return do(d, ctx, "CreateClient", func(s Store) error { return s.CreateClient(ctx, c) })
}

// GetClient implements Store.
func (d *Deferred) GetClient(ctx context.Context, id string) (Client, error) {
	return call(d, ctx, "GetClient", func(s Store) (Client, error) { return s.GetClient(ctx, id) })
}

// ListClients implements Store.
func (d *Deferred) ListClients(ctx context.Context) ([]Client, error) {
	return call(d, ctx, "ListClients", func(s Store) ([]Client, error) { return s.ListClients(ctx) })
}

// UpdateClient implements Store.
func (d *Deferred) UpdateClient(ctx context.Context, id string, fn func(*Client) error) (Client, error) {
	return call(d, ctx, "UpdateClient", func(s Store) (Client, error) { return s.UpdateClient(ctx, id, fn) })
}

// DeleteClient implements Store.
func (d *Deferred) DeleteClient(ctx context.Context, id string) (Client, error) {
	return call(d, ctx, "DeleteClient", func(s Store) (Client, error) { return s.DeleteClient(ctx, id) })
}

// GetDocument implements Store.
func (d *Deferred) GetDocument(ctx context.Context, name string) ([]byte, error) {
	return call(d, ctx, "GetDocument", func(s Store) ([]byte, error) { return s.GetDocument(ctx, name) })
}

// UpdateDocument implements Store.
func (d *Deferred) UpdateDocument(ctx context.Context, name string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	return call(d, ctx, "UpdateDocument", func(s Store) ([]byte, error) { return s.UpdateDocument(ctx, name, fn) })
}

// Deny implements Store.
func (d *Deferred) Deny(ctx context.Context, den Denial) error {
	return do(d, ctx, "Deny", func(s Store) error { return s.Deny(ctx, den) })
}

// ListDenied implements Store.
func (d *Deferred) ListDenied(ctx context.Context) ([]Denial, error) {
	return call(d, ctx, "ListDenied", func(s Store) ([]Denial, error) { return s.ListDenied(ctx) })
}

// CountFailure implements Store.
func (d *Deferred) CountFailure(ctx context.Context, key string, window time.Duration) (int64, error) {
	return call(d, ctx, "CountFailure", func(s Store) (int64, error) { return s.CountFailure(ctx, key, window) })
}

// FailureCount implements Store.
func (d *Deferred) FailureCount(ctx context.Context, key string) (int64, error) {
	return call(d, ctx, "FailureCount", func(s Store) (int64, error) { return s.FailureCount(ctx, key) })
}

// ClearFailures implements Store.
func (d *Deferred) ClearFailures(ctx context.Context, key string) error {
	return do(d, ctx, "ClearFailures", func(s Store) error { return s.ClearFailures(ctx, key) })
}

// CreateSession implements Store.
func (d *Deferred) CreateSession(ctx context.Context, sess Session) error {
	return do(d, ctx, "CreateSession", func(s Store) error { return s.CreateSession(ctx, sess) })
}

// GetSession implements Store.
func (d *Deferred) GetSession(ctx context.Context, id TokenHash) (Session, error) {
	return call(d, ctx, "GetSession", func(s Store) (Session, error) { return s.GetSession(ctx, id) })
}

// TouchSession implements Store.
func (d *Deferred) TouchSession(ctx context.Context, id TokenHash, at time.Time) error {
	return do(d, ctx, "TouchSession", func(s Store) error { return s.TouchSession(ctx, id, at) })
}

// DeleteSession implements Store.
func (d *Deferred) DeleteSession(ctx context.Context, id TokenHash) error {
	return do(d, ctx, "DeleteSession", func(s Store) error { return s.DeleteSession(ctx, id) })
}

// DeleteUserSessions implements Store.
func (d *Deferred) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	return call(d, ctx, "DeleteUserSessions", func(s Store) (int, error) { return s.DeleteUserSessions(ctx, user) })
}

// Check implements Store.
func (d *Deferred) Check(ctx context.Context, repair bool) (CheckReport, error) {
	return call(d, ctx, "Check", func(s Store) (CheckReport, error) { return s.Check(ctx, repair) })
}

// Interface guard
var _ Store = (*Deferred)(nil)
