package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned by a Deferred store until its backend is
// attached: the store has not been opened or reached yet. Callers answer
// 503, as for any other failure of the store.
var ErrUnavailable = errors.New("the store is not open yet")

// Deferred is a Store whose backend is attached later, so that everything
// built on the store can exist before the store is opened (a config can be
// validated without opening, locking or creating anything) and keeps
// working once it is. Until Attach succeeds every method returns
// ErrUnavailable, except Subscribe, which is kept and set up on the backend
// when it is attached. While the first opening is still under way (Caddy
// may start serving before the app that opens the store has started), a
// call waits for it, up to its context or startWait; once that opening
// has failed (Unreachable), calls answer ErrUnavailable at once.
type Deferred struct {
	live atomic.Pointer[Store]
	// settled is closed by the first Attach or Unreachable.
	settled    chan struct{}
	settleOnce sync.Once

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

// NewDeferred returns a Deferred store with no backend.
func NewDeferred() *Deferred { return &Deferred{settled: make(chan struct{})} }

// Unreachable says that the first opening failed (and is retried in the
// background): until Attach, calls answer ErrUnavailable at once instead
// of waiting.
func (d *Deferred) Unreachable() { d.settleOnce.Do(func() { close(d.settled) }) }

// store returns the backend, or a store that answers ErrUnavailable,
// waiting first for the first opening to settle (see Deferred).
func (d *Deferred) store(ctx context.Context) Store {
	if s := d.live.Load(); s != nil {
		return *s
	}
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-d.settled:
	case <-ctx.Done():
	case <-t.C:
	}
	if s := d.live.Load(); s != nil {
		return *s
	}
	return unavailable{}
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
	return d.store(ctx).CreateUser(ctx, u)
}

// GetUser implements Store.
func (d *Deferred) GetUser(ctx context.Context, name string) (User, error) {
	return d.store(ctx).GetUser(ctx, name)
}

// ListUsers implements Store.
func (d *Deferred) ListUsers(ctx context.Context) ([]User, error) { return d.store(ctx).ListUsers(ctx) }

// UpdateUser implements Store.
func (d *Deferred) UpdateUser(ctx context.Context, name string, fn func(*User) error) (User, error) {
	return d.store(ctx).UpdateUser(ctx, name, fn)
}

// DeleteUser implements Store.
func (d *Deferred) DeleteUser(ctx context.Context, name string) error {
	return d.store(ctx).DeleteUser(ctx, name)
}

// CreateToken implements Store.
func (d *Deferred) CreateToken(ctx context.Context, t Token, limit int) error {
	return d.store(ctx).CreateToken(ctx, t, limit)
}

// GetToken implements Store.
func (d *Deferred) GetToken(ctx context.Context, owner, id string) (Token, error) {
	return d.store(ctx).GetToken(ctx, owner, id)
}

// ListTokens implements Store.
func (d *Deferred) ListTokens(ctx context.Context, owner string) ([]Token, error) {
	return d.store(ctx).ListTokens(ctx, owner)
}

// UpdateToken implements Store.
func (d *Deferred) UpdateToken(ctx context.Context, owner, id string, fn func(*Token) error) (Token, error) {
	return d.store(ctx).UpdateToken(ctx, owner, id, fn)
}

// DeleteToken implements Store.
func (d *Deferred) DeleteToken(ctx context.Context, owner, id string) (Token, error) {
	return d.store(ctx).DeleteToken(ctx, owner, id)
}

// LookupToken implements Store.
func (d *Deferred) LookupToken(ctx context.Context, h TokenHash) (Grant, error) {
	return d.store(ctx).LookupToken(ctx, h)
}

// RecordLastUse implements Store.
func (d *Deferred) RecordLastUse(ctx context.Context, uses []LastUse) error {
	return d.store(ctx).RecordLastUse(ctx, uses)
}

// CreateClient implements Store.
func (d *Deferred) CreateClient(ctx context.Context, c Client) error {
	return d.store(ctx).CreateClient(ctx, c)
}

// GetClient implements Store.
func (d *Deferred) GetClient(ctx context.Context, id string) (Client, error) {
	return d.store(ctx).GetClient(ctx, id)
}

// ListClients implements Store.
func (d *Deferred) ListClients(ctx context.Context) ([]Client, error) {
	return d.store(ctx).ListClients(ctx)
}

// UpdateClient implements Store.
func (d *Deferred) UpdateClient(ctx context.Context, id string, fn func(*Client) error) (Client, error) {
	return d.store(ctx).UpdateClient(ctx, id, fn)
}

// DeleteClient implements Store.
func (d *Deferred) DeleteClient(ctx context.Context, id string) (Client, error) {
	return d.store(ctx).DeleteClient(ctx, id)
}

// GetDocument implements Store.
func (d *Deferred) GetDocument(ctx context.Context, name string) ([]byte, error) {
	return d.store(ctx).GetDocument(ctx, name)
}

// UpdateDocument implements Store.
func (d *Deferred) UpdateDocument(ctx context.Context, name string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	return d.store(ctx).UpdateDocument(ctx, name, fn)
}

// Deny implements Store.
func (d *Deferred) Deny(ctx context.Context, den Denial) error { return d.store(ctx).Deny(ctx, den) }

// ListDenied implements Store.
func (d *Deferred) ListDenied(ctx context.Context) ([]Denial, error) {
	return d.store(ctx).ListDenied(ctx)
}

// CountFailure implements Store.
func (d *Deferred) CountFailure(ctx context.Context, key string, window time.Duration) (int64, error) {
	return d.store(ctx).CountFailure(ctx, key, window)
}

// FailureCount implements Store.
func (d *Deferred) FailureCount(ctx context.Context, key string) (int64, error) {
	return d.store(ctx).FailureCount(ctx, key)
}

// ClearFailures implements Store.
func (d *Deferred) ClearFailures(ctx context.Context, key string) error {
	return d.store(ctx).ClearFailures(ctx, key)
}

// CreateSession implements Store.
func (d *Deferred) CreateSession(ctx context.Context, s Session) error {
	return d.store(ctx).CreateSession(ctx, s)
}

// GetSession implements Store.
func (d *Deferred) GetSession(ctx context.Context, id TokenHash) (Session, error) {
	return d.store(ctx).GetSession(ctx, id)
}

// TouchSession implements Store.
func (d *Deferred) TouchSession(ctx context.Context, id TokenHash, at time.Time) error {
	return d.store(ctx).TouchSession(ctx, id, at)
}

// DeleteSession implements Store.
func (d *Deferred) DeleteSession(ctx context.Context, id TokenHash) error {
	return d.store(ctx).DeleteSession(ctx, id)
}

// DeleteUserSessions implements Store.
func (d *Deferred) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	return d.store(ctx).DeleteUserSessions(ctx, user)
}

// Check implements Store.
func (d *Deferred) Check(ctx context.Context, repair bool) (CheckReport, error) {
	return d.store(ctx).Check(ctx, repair)
}

// unavailable is the backend of a Deferred before Attach: every method
// fails with ErrUnavailable. It implements the whole Store itself (no
// embedded nil Store), so that a method added to a role and not here is a
// compile error rather than a nil dereference before Attach. (Deferred
// answers Subscribe and Close itself; unavailable's are never called.)
type unavailable struct{}

var _ Store = unavailable{}

func (unavailable) Subscribe(context.Context, func(Event)) error { return ErrUnavailable }
func (unavailable) Close() error                                 { return nil }

func (unavailable) CreateUser(context.Context, User) error { return ErrUnavailable }
func (unavailable) GetUser(context.Context, string) (User, error) {
	return User{}, ErrUnavailable
}
func (unavailable) ListUsers(context.Context) ([]User, error) { return nil, ErrUnavailable }
func (unavailable) UpdateUser(context.Context, string, func(*User) error) (User, error) {
	return User{}, ErrUnavailable
}
func (unavailable) DeleteUser(context.Context, string) error      { return ErrUnavailable }
func (unavailable) CreateToken(context.Context, Token, int) error { return ErrUnavailable }
func (unavailable) GetToken(context.Context, string, string) (Token, error) {
	return Token{}, ErrUnavailable
}
func (unavailable) ListTokens(context.Context, string) ([]Token, error) { return nil, ErrUnavailable }
func (unavailable) UpdateToken(context.Context, string, string, func(*Token) error) (Token, error) {
	return Token{}, ErrUnavailable
}
func (unavailable) DeleteToken(context.Context, string, string) (Token, error) {
	return Token{}, ErrUnavailable
}
func (unavailable) LookupToken(context.Context, TokenHash) (Grant, error) {
	return Grant{}, ErrUnavailable
}
func (unavailable) RecordLastUse(context.Context, []LastUse) error { return ErrUnavailable }
func (unavailable) CreateClient(context.Context, Client) error     { return ErrUnavailable }
func (unavailable) GetClient(context.Context, string) (Client, error) {
	return Client{}, ErrUnavailable
}
func (unavailable) ListClients(context.Context) ([]Client, error) { return nil, ErrUnavailable }
func (unavailable) UpdateClient(context.Context, string, func(*Client) error) (Client, error) {
	return Client{}, ErrUnavailable
}
func (unavailable) DeleteClient(context.Context, string) (Client, error) {
	return Client{}, ErrUnavailable
}
func (unavailable) GetDocument(context.Context, string) ([]byte, error) { return nil, ErrUnavailable }
func (unavailable) UpdateDocument(context.Context, string, func([]byte) ([]byte, error)) ([]byte, error) {
	return nil, ErrUnavailable
}
func (unavailable) Deny(context.Context, Denial) error           { return ErrUnavailable }
func (unavailable) ListDenied(context.Context) ([]Denial, error) { return nil, ErrUnavailable }
func (unavailable) CountFailure(context.Context, string, time.Duration) (int64, error) {
	return 0, ErrUnavailable
}
func (unavailable) FailureCount(context.Context, string) (int64, error) { return 0, ErrUnavailable }
func (unavailable) ClearFailures(context.Context, string) error         { return ErrUnavailable }
func (unavailable) Check(context.Context, bool) (CheckReport, error) {
	return CheckReport{}, ErrUnavailable
}

func (unavailable) CreateSession(context.Context, Session) error { return ErrUnavailable }
func (unavailable) GetSession(context.Context, TokenHash) (Session, error) {
	return Session{}, ErrUnavailable
}
func (unavailable) TouchSession(context.Context, TokenHash, time.Time) error { return ErrUnavailable }
func (unavailable) DeleteSession(context.Context, TokenHash) error           { return ErrUnavailable }
func (unavailable) DeleteUserSessions(context.Context, string) (int, error)  { return 0, ErrUnavailable }

// Interface guard
var _ Store = (*Deferred)(nil)
