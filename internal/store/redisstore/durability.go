package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/store"
)

// Durability says how many replicas must have a write before the Store
// says it succeeded. Redis replicates asynchronously: a write that the
// primary took but no replica has yet is lost when a replica is promoted
// (a Sentinel failover) and the old primary rejoins as its replica. With
// Replicas > 0, every write of users, tokens, OAuth clients, documents
// (keyring, ACL, settings), denials and sessions is followed, on one
// connection, by a barrier (a PUBLISH, which the primary replicates after
// the write) and WAIT Replicas Timeout; when fewer replicas acknowledge
// it, the write returns a *store.NotDurableError (503: the write is on
// the primary, the client retries). Counters of failed sign-ins, last
// uses and session touches do not wait: losing one is harmless.
type Durability struct {
	// Replicas is how many replicas must acknowledge a write. 0: none,
	// the write returns as soon as the primary has it.
	Replicas int
	// Timeout bounds the wait for them (WAIT's own timeout; the
	// client's read timeout does not cut it short). Default (when
	// Replicas > 0): 1s.
	Timeout time.Duration
}

// Defaults of Durability.
const (
	// DefaultSentinelReplicas is the Replicas of a redis-sentinel:// URL
	// when Options.Durability is nil: a Sentinel deployment has a replica
	// by definition, and a failover is what it is for.
	DefaultSentinelReplicas = 1
	// DefaultDurabilityTimeout is Durability.Timeout when not given.
	DefaultDurabilityTimeout = time.Second
)

// withDefaults fills in the timeout.
func (d Durability) withDefaults() (Durability, error) {
	switch {
	case d.Replicas < 0:
		return d, fmt.Errorf("redisstore: durability replicas %d must not be negative", d.Replicas)
	case d.Timeout < 0:
		return d, fmt.Errorf("redisstore: durability timeout %v must not be negative", d.Timeout)
	case d.Replicas > 0 && d.Timeout == 0:
		d.Timeout = DefaultDurabilityTimeout
	}
	return d, nil
}

// barrierChannel is the channel of the durability barrier's PUBLISH; no
// one listens on it.
func (k keys) barrierChannel() string { return k.prefix + ":durability" }

// durable makes the write op, which returned err, durable: nothing to do
// when it failed or durability is off; otherwise the barrier and WAIT. A
// write that returned an error is not waited for: it changed nothing (or
// its undo is reported in err).
func (s *Store) durable(ctx context.Context, op string, err error) error {
	if err != nil {
		return err
	}
	replicas, err := s.replicasWanted(ctx)
	if err != nil {
		return &store.NotDurableError{Op: op, Wanted: DefaultClusterReplicas, Timeout: s.durability.Timeout,
			Err: fmt.Errorf("deciding how many replicas to wait for: %w", err)}
	}
	if replicas == 0 {
		return nil
	}
	acked, werr := s.wait(ctx, replicas)
	if werr == nil && acked >= replicas {
		return nil
	}
	return &store.NotDurableError{Op: op, Acked: acked, Wanted: replicas, Timeout: s.durability.Timeout, Err: werr}
}

// pinner is a client that lends one connection (a *redis.Client; a
// Sentinel-managed master is one too).
type pinner interface {
	Conn() *redis.Conn
}

// wait publishes the barrier and waits for the replicas on one
// connection. WAIT counts the replicas that have everything the
// connection wrote; the barrier is the connection's write, and the
// primary's replication stream is ordered, so a replica that has the
// barrier has every write that returned before it, from any connection.
// A pipeline would read WAIT's reply with the client's read timeout, not
// WAIT's own; a pinned connection lets go-redis use WAIT's.
//
// On a cluster the barrier is a key on every primary instead (see
// waitCluster).
func (s *Store) wait(ctx context.Context, replicas int) (int, error) {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return s.waitCluster(ctx, cc, replicas)
	}
	p, ok := s.client.(pinner)
	if !ok {
		return 0, fmt.Errorf("redisstore: durability needs a single-server, Sentinel or Cluster client, not %T", s.client)
	}
	conn := p.Conn()
	defer conn.Close()
	if err := conn.Publish(ctx, s.keys.barrierChannel(), s.node).Err(); err != nil {
		return 0, opErr(err, "durability barrier")
	}
	n, err := conn.Wait(ctx, replicas, s.durability.Timeout).Result()
	if err != nil {
		return 0, opErr(err, "WAIT for %d replicas", replicas)
	}
	return int(n), nil
}

// primaryWatch notices a failover: that a Sentinel-managed client
// connects to another primary than before (go-redis asks the sentinels
// for the master's address at every dial and drops its connections to the
// old one on +switch-master), or on a Redis Cluster that a primary appears
// in the slot map that was not one before (see sawPrimaries). The Store
// then replays its journal and tells its subscribers to forget everything
// (store.EventReset, see onNewPrimary): decisions cached from the old
// primary, and events missed during the switch, are not trusted.
//
// go-redis dials the sentinels with the same dialer: their addresses (those
// in the URL) are not primaries. A sentinel that go-redis discovers beyond
// the URL's would look like a new primary once, which costs one needless
// reset: list every sentinel in the URL.
type primaryWatch struct {
	sentinels map[string]bool // addresses that are sentinels, not primaries

	mu   sync.Mutex
	addr string // the primary dialed last (on a cluster: the last new one)
	// primaries are a cluster's primaries in the latest slot map (see
	// sawPrimaries; nil for Sentinel and before the first map).
	primaries map[string]bool
	onChange  func(old, new string) // set by New, before any dial
}

// dialer wraps go-redis's dial to a Sentinel-named address (nil: its
// default dialer) so that w sees every address dialed.
func (w *primaryWatch) dialer(timeout time.Duration, next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if next == nil {
		if timeout <= 0 {
			timeout = 5 * time.Second // go-redis's default
		}
		d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		next = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			w.dialed(addr)
		}
		return conn, err
	}
}

// newPrimaryWatch returns a watch that ignores dials to sentinels.
func newPrimaryWatch(sentinels []string) *primaryWatch {
	w := &primaryWatch{sentinels: make(map[string]bool, len(sentinels))}
	for _, a := range sentinels {
		w.sentinels[a] = true
	}
	return w
}

// dialed records addr and reports a change.
func (w *primaryWatch) dialed(addr string) {
	if w.sentinels[addr] {
		return
	}
	w.mu.Lock()
	old := w.addr
	w.addr = addr
	onChange := w.onChange
	w.mu.Unlock()
	if old != "" && old != addr && onChange != nil {
		onChange(old, addr)
	}
}

// Primary returns the address of the Sentinel-managed primary the Store
// connected to last, or on a cluster the primary it found last that was
// not one before ("" for a single server, or before the first
// connection or change).
func (s *Store) Primary() string {
	if s.primary == nil {
		return ""
	}
	s.primary.mu.Lock()
	defer s.primary.mu.Unlock()
	return s.primary.addr
}

// PrimaryChanges counts the times the Store found a new primary (a
// Sentinel or Cluster failover) and reset its subscribers.
func (s *Store) PrimaryChanges() uint64 { return s.primaryChanges.Load() }

// onNewPrimary writes the journal's recent entries again on the new
// primary (see journal) and then resets the subscribers (see
// primaryWatch). It runs once at a time; a change noticed meanwhile runs
// it again afterwards.
func (s *Store) onNewPrimary(old, new string) {
	s.primaryChanges.Add(1)
	if s.life.Err() != nil {
		return // closing
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// go-redis reloads its slot map only every minute or on a
		// redirection, not when a node stops answering: until then the
		// promoted replica's slots would go to the dead primary.
		cc.ReloadState(s.life)
	}
	if s.replaying.Add(1) > 1 {
		return // the running replay goes round again
	}
	// Not on the dialing goroutine: the replay dials, and a subscriber
	// may call the store.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			r := s.replay()
			s.subs.deliver(store.Event{Kind: store.EventReset})
			if s.onNew != nil {
				s.onNew(old, new, r)
			}
			if s.replaying.Add(-1) == 0 || s.life.Err() != nil {
				return
			}
			s.replaying.Store(1)
		}
	}()
}

// The write methods: each does its write (the unexported method of the
// same name) and then makes it durable (see Durability).

// CreateUser adds u (see createUser) and waits for the replicas.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return s.durable(ctx, "create user", s.createUser(ctx, u))
}

// UpdateUser changes the user (see updateUser) and waits for the replicas.
func (s *Store) UpdateUser(ctx context.Context, name string, fn func(*store.User) error) (store.User, error) {
	var before store.User
	u, err := s.updateUser(ctx, name, func(u *store.User) error { before = *u; return fn(u) })
	if off := (!before.Disabled && u.Disabled) || (before.TokenLogin && !u.TokenLogin); off || before.PasswordHash != u.PasswordHash {
		after := u
		s.note(err, "switch off user "+name, func(ctx context.Context) error {
			_, err := s.updateUser(ctx, name, func(u *store.User) error {
				u.Disabled = u.Disabled || (!before.Disabled && after.Disabled)
				u.TokenLogin = u.TokenLogin && !(before.TokenLogin && !after.TokenLogin)
				if u.PasswordHash == before.PasswordHash {
					u.PasswordHash = after.PasswordHash
				}
				return nil
			})
			return gone(err)
		})
	}
	return u, s.durable(ctx, "update user", err)
}

// DeleteUser removes the user and its tokens (see deleteUser) and waits
// for the replicas.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	err := s.deleteUser(ctx, name)
	s.note(err, "delete user "+name, func(ctx context.Context) error { return gone(s.deleteUser(ctx, name)) })
	return s.durable(ctx, "delete user", err)
}

// CreateToken stores t (see createToken) and waits for the replicas.
func (s *Store) CreateToken(ctx context.Context, t store.Token, limit int) error {
	return s.durable(ctx, "create token", s.createToken(ctx, t, limit))
}

// UpdateToken changes the token (see updateToken) and waits for the
// replicas.
func (s *Store) UpdateToken(ctx context.Context, owner, id string, fn func(*store.Token) error) (store.Token, error) {
	var before store.Token
	t, err := s.updateToken(ctx, owner, id, func(t *store.Token) error { before = *t; return fn(t) })
	if before.Enabled && !t.Enabled {
		s.note(err, "switch off token "+id, func(ctx context.Context) error {
			_, err := s.updateToken(ctx, owner, id, func(t *store.Token) error { t.Enabled = false; return nil })
			return gone(err)
		})
	}
	return t, s.durable(ctx, "update token", err)
}

// RotateToken gives the token a new secret (see rotateToken) and waits
// for the replicas. The journal replays it (so the old secret ends when
// it was told to) only while the token still has the secret the rotation
// replaced.
func (s *Store) RotateToken(ctx context.Context, owner, id string, next store.TokenHash, now, until, expiresBy time.Time) (store.Token, error) {
	t, old, err := s.rotateToken(ctx, owner, id, next, now, until, expiresBy, store.TokenHash{})
	s.note(err, "rotate token "+id, func(ctx context.Context) error {
		_, _, err := s.rotateToken(ctx, owner, id, next, now, until, expiresBy, old)
		if errors.Is(err, errReplaced) {
			return nil
		}
		return gone(err)
	})
	return t, s.durable(ctx, "rotate token", err)
}

// DeleteToken revokes and removes the token (see deleteToken) and waits
// for the replicas.
func (s *Store) DeleteToken(ctx context.Context, owner, id string) (store.Token, error) {
	t, err := s.deleteToken(ctx, owner, id)
	s.note(err, "delete token "+id, func(ctx context.Context) error {
		_, err := s.deleteToken(ctx, owner, id)
		return gone(err)
	})
	return t, s.durable(ctx, "delete token", err)
}

// CreateClient adds c (see createClient) and waits for the replicas.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.durable(ctx, "create client", s.createClient(ctx, c))
}

// UpdateClient changes the client (see updateClient) and waits for the
// replicas.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) (store.Client, error) {
	var before store.Client
	c, err := s.updateClient(ctx, id, func(c *store.Client) error { before = *c; return fn(c) })
	if (before.Enabled && !c.Enabled) || before.SecretHash != c.SecretHash {
		after := c
		s.note(err, "switch off client "+id, func(ctx context.Context) error {
			_, err := s.updateClient(ctx, id, func(c *store.Client) error {
				c.Enabled = c.Enabled && !(before.Enabled && !after.Enabled)
				if c.SecretHash == before.SecretHash {
					c.SecretHash, c.PreviousSecrets = after.SecretHash, after.PreviousSecrets
				}
				return nil
			})
			return gone(err)
		})
	}
	return c, s.durable(ctx, "update client", err)
}

// DeleteClient removes the client (see deleteClient) and waits for the
// replicas.
func (s *Store) DeleteClient(ctx context.Context, id string) (store.Client, error) {
	c, err := s.deleteClient(ctx, id)
	s.note(err, "delete client "+id, func(ctx context.Context) error {
		_, err := s.deleteClient(ctx, id)
		return gone(err)
	})
	return c, s.durable(ctx, "delete client", err)
}

// UpdateDocument replaces the document (see updateDocument) and waits for
// the replicas.
func (s *Store) UpdateDocument(ctx context.Context, name string, fn func(current []byte) ([]byte, error)) ([]byte, error) {
	doc, err := s.updateDocument(ctx, name, fn)
	return doc, s.durable(ctx, "update document "+name, err)
}

// Deny puts a jti on the deny-list (see deny) and waits for the replicas.
func (s *Store) Deny(ctx context.Context, d store.Denial) error {
	err := s.deny(ctx, d)
	s.note(err, "deny "+d.JTI, func(ctx context.Context) error { return s.deny(ctx, d) })
	return s.durable(ctx, "deny", err)
}

// CreateSession stores a web session (see createSession) and waits for the
// replicas.
func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	return s.durable(ctx, "create session", s.createSession(ctx, sess))
}

// DeleteSession ends a web session (see deleteSession) and waits for the
// replicas.
func (s *Store) DeleteSession(ctx context.Context, id store.TokenHash) error {
	err := s.deleteSession(ctx, id)
	s.note(err, "delete session", func(ctx context.Context) error { return gone(s.deleteSession(ctx, id)) })
	return s.durable(ctx, "delete session", err)
}

// DeleteUserSessions ends a user's web sessions (see deleteUserSessions)
// and waits for the replicas.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	n, err := s.deleteUserSessions(ctx, user)
	s.note(err, "delete sessions of "+user, func(ctx context.Context) error {
		_, err := s.deleteUserSessions(ctx, user)
		return gone(err)
	})
	return n, s.durable(ctx, "delete user sessions", err)
}
