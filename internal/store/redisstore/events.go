package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// documentEvent announces a change of the named document.
func documentEvent(name string) store.Event {
	return store.Event{Kind: store.EventDocument, ID: name}
}

// deniedEvent announces that the access token jti is denied until until.
func deniedEvent(jti string, until time.Time) store.Event {
	return store.Event{Kind: store.EventDenied, ID: jti, Until: until}
}

// A published event is the sending Store's node ID, a space and one of
//
//	t:HEX           EventToken, the token hash
//	u:NAME          EventUser
//	c:ID            EventClient
//	k:NAME          EventDocument
//	d:MICROS JTI    EventDenied, Until in Unix microseconds (see denyScript)
//	p:              no event: the sender's liveness ping (see pinger)
//
// The name, client ID, document name or jti is last, so it may contain spaces.
const (
	tokenTag    = "t:"
	userTag     = "u:"
	clientTag   = "c:"
	documentTag = "k:"
	deniedTag   = "d:"
	pingTag     = "p:"
)

// encodeEvent returns the pub/sub message for ev.
func (s *Store) encodeEvent(ev store.Event) string {
	var body string
	switch ev.Kind {
	case store.EventUser:
		body = userTag + ev.Owner
	case store.EventClient:
		body = clientTag + ev.ID
	case store.EventDocument:
		body = documentTag + ev.ID
	case store.EventDenied:
		body = deniedTag + strconv.FormatInt(ceilMicros(ev.Until), 10) + " " + ev.ID
	default:
		body = tokenTag + ev.Hash.String()
	}
	return s.node + " " + body
}

// decodeEvent reads a pub/sub message; ok is false for a malformed one.
func decodeEvent(msg string) (node string, ev store.Event, ok bool) {
	node, body, _ := strings.Cut(msg, " ")
	tag, rest := body, ""
	if len(body) >= 2 {
		tag, rest = body[:2], body[2:]
	}
	switch tag {
	case userTag:
		return node, store.UserEvent(rest), true
	case clientTag:
		return node, store.ClientEvent(rest), true
	case documentTag:
		return node, documentEvent(rest), rest != ""
	case deniedTag:
		micros, jti, found := strings.Cut(rest, " ")
		n, err := strconv.ParseInt(micros, 10, 64)
		if !found || err != nil {
			return node, ev, false
		}
		return node, deniedEvent(jti, fromMicros(n)), true
	case tokenTag:
		n, err := hex.Decode(ev.Hash[:], []byte(rest))
		ev.Kind = store.EventToken
		return node, ev, err == nil && n == len(ev.Hash)
	case pingTag: // a sign of life, never an event for subscribers
		return node, ev, false
	}
	return node, ev, false
}

// publishIn queues the announcement of ev in a transaction, so that it is
// sent if and only if the transaction's writes take effect.
func (s *Store) publishIn(ctx context.Context, p redis.Pipeliner, ev store.Event) {
	p.Publish(ctx, s.channel, s.encodeEvent(ev))
}

// subscribers are this process's event subscribers.
type subscribers struct {
	mu   sync.RWMutex
	next uint64
	subs map[uint64]subscriber
}

// subscriber is one Subscribe call.
type subscriber struct {
	ctx context.Context
	fn  func(store.Event)
}

// add registers fn until ctx is done and returns the function that
// removes it at once.
func (ss *subscribers) add(ctx context.Context, fn func(store.Event)) (remove func()) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.subs == nil {
		ss.subs = make(map[uint64]subscriber)
	}
	id := ss.next
	ss.next++
	ss.subs[id] = subscriber{ctx, fn}
	remove = func() {
		ss.mu.Lock()
		delete(ss.subs, id)
		ss.mu.Unlock()
	}
	context.AfterFunc(ctx, remove)
	return remove
}

// deliver calls every subscriber with ev, outside the lock so that a
// subscriber's remove cannot deadlock with a delivery. A subscriber whose
// context is done is skipped even before AfterFunc has removed it: once
// its cancel has returned, nothing more is delivered to it (except by a
// delivery that had already passed that check, which no store can rule
// out without making cancel wait for it).
func (ss *subscribers) deliver(ev store.Event) {
	ss.mu.RLock()
	subs := make([]subscriber, 0, len(ss.subs))
	for _, sub := range ss.subs {
		subs = append(subs, sub)
	}
	ss.mu.RUnlock()
	for _, sub := range subs {
		if sub.ctx.Err() == nil {
			sub.fn(ev)
		}
	}
}

// Subscribe calls fn for every event, from this process (synchronously,
// before the write returns) and from other processes (from the listener
// goroutine; fn may thus be called concurrently), until ctx is done. The
// first call starts the Store's one pub/sub subscription and Subscribe
// waits until it is confirmed, so that no event of another process that
// follows a successful Subscribe is missed; it returns the error if the
// subscription cannot be made (fn is then not registered). Later, after a
// broken subscription is restored, fn gets store.EventReset.
func (s *Store) Subscribe(ctx context.Context, fn func(store.Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.life.Err() != nil {
		return errClosed
	}
	remove := s.subs.add(ctx, fn)
	s.listener.start.Do(func() {
		s.wg.Add(2)
		go s.listen()
		go s.pinger()
	})
	if err := s.listener.wait(ctx, s.life); err != nil {
		remove()
		return err
	}
	return nil
}

// Bounds of the pause between attempts to restore a broken subscription.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// SilentIntervals: a subscription that has received no message at all for
// this many ping intervals since a ping of this Store was acknowledged by
// Redis is broken, though its connection looks open (a frozen server, a
// proxy that drops messages): the ping reached the channel but not us.
const SilentIntervals = 2

// SetPingInterval changes Options.PingInterval (d <= 0: the default); the
// next ping and the next silence check use it.
func (s *Store) SetPingInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultPingInterval
	}
	s.pingEvery.Store(int64(d))
}

// pingInterval returns the current Options.PingInterval.
func (s *Store) pingInterval() time.Duration { return time.Duration(s.pingEvery.Load()) }

// errClosed is returned by Subscribe on a closed Store.
var errClosed = errors.New("redisstore: store closed")

// listener is the state of the Store's pub/sub subscription.
type listener struct {
	start sync.Once

	mu      sync.Mutex
	up      bool          // subscribed now
	err     error         // why not, after an attempt failed
	changed chan struct{} // closed and replaced when up or err changes
}

// init prepares the listener before any goroutine uses it.
func (l *listener) init() { l.changed = make(chan struct{}) }

// set records the subscription's state and wakes the waiters.
func (l *listener) set(up bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up, l.err = up, err
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns nil once the subscription is confirmed, or the error of the
// latest failed attempt, or when ctx or the Store's life ends.
func (l *listener) wait(ctx, life context.Context) error {
	for {
		l.mu.Lock()
		up, err, changed := l.up, l.err, l.changed
		l.mu.Unlock()
		switch {
		case up:
			return nil
		case err != nil:
			return opErr(err, "subscribe")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-life.Done():
			return errClosed
		}
	}
}

// listen keeps the subscription up until the Store is closed. Each session
// is a fresh subscription; a session that ends (the connection broke, or
// went silent) is followed after a pause by another, and when that one is
// confirmed the subscribers get store.EventReset, as events may have been
// lost between. An outage is logged twice: when a confirmed subscription
// breaks (with the cause) and when one is confirmed again (with how long
// it was out); the failed attempts between are logged at Debug only.
func (s *Store) listen() {
	defer s.wg.Done()
	backoff := minBackoff
	confirmed := false // some session was confirmed before
	var (
		up       bool      // the current session was confirmed
		lostAt   time.Time // when the subscription broke
		attempts int       // sessions tried since
	)
	onUp := func() {
		backoff = minBackoff
		up = true
		s.listener.set(true, nil)
		if confirmed {
			s.subs.deliver(store.Event{Kind: store.EventReset})
			s.logger.Info("store subscription restored: caches emptied, since changes made meanwhile on other nodes may have been missed",
				zap.String("channel", s.channel), zap.Duration("out_for", time.Since(lostAt)),
				zap.Int("attempts", attempts))
		}
		confirmed = true
	}
	for {
		up = false
		err := s.session(s.life, onUp)
		if s.life.Err() != nil {
			return
		}
		if up {
			lostAt, attempts = time.Now(), 0
			s.logger.Error("store subscription lost: changes made on other nodes are not seen "+
				"(cached decisions may be stale, at most cache_ttl) until it is back; resubscribing",
				zap.String("channel", s.channel), zap.Error(err))
		} else if confirmed {
			s.logger.Debug("store subscription still down; retrying", zap.String("channel", s.channel), zap.Error(err))
		}
		attempts++
		s.listener.set(false, err)
		select {
		case <-s.life.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session subscribes and delivers other processes' events until the
// connection fails, goes silent (see silence) or ctx ends, and returns
// why. onUp runs when the subscription is confirmed.
func (s *Store) session(ctx context.Context, onUp func()) error {
	ps := s.client.Subscribe(ctx, s.channel)
	defer ps.Close()
	// Receive does not watch ctx; closing the PubSub ends a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	heard := time.Now()      // the session's start, then the latest message
	var unanswered time.Time // the first ping acknowledged after heard
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.pingInterval())
		if err != nil {
			if !isTimeout(err) {
				return err
			}
			if err := s.silence(heard, &unanswered); err != nil {
				return err
			}
			continue
		}
		heard, unanswered = time.Now(), time.Time{}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel {
				onUp()
			}
		case *redis.Message:
			s.receive(m.Payload)
		}
	}
}

// silence returns an error when nothing was heard since heard although a
// ping of this Store, published after that, was acknowledged by Redis
// SilentIntervals ping intervals ago or more: the channel works (Redis
// took the ping) but the subscription does not deliver. unanswered keeps
// the first such ping between calls. While no ping gets through (Redis is
// down or frozen for everyone) a quiet subscription is not blamed:
// nothing can be published that it misses.
func (s *Store) silence(heard time.Time, unanswered *time.Time) error {
	if unanswered.IsZero() {
		if n := s.pingAcked.Load(); n != 0 {
			if acked := s.born.Add(time.Duration(n)); acked.After(heard) {
				*unanswered = acked
			}
		}
		return nil
	}
	every := s.pingInterval()
	if time.Since(*unanswered) < SilentIntervals*every {
		return nil
	}
	return fmt.Errorf("redisstore: no message on the subscription for %v, not even this node's own ping (published every %v)",
		time.Since(heard).Round(time.Millisecond), every)
}

// pinger publishes a ping of this Store every ping interval until the
// Store is closed, and notes when the latest one Redis acknowledged was
// sent (see silence). Pings are not counted in Ops and RoundTrips.
func (s *Store) pinger() {
	defer s.wg.Done()
	msg := s.node + " " + pingTag
	ctx := context.WithValue(s.life, uncounted{}, true)
	for {
		every := s.pingInterval()
		select {
		case <-s.life.Done():
			return
		case <-time.After(every):
		}
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, every)
		err := s.client.Publish(pctx, s.channel, msg).Err()
		cancel()
		if err == nil {
			s.pingAcked.Store(int64(sent.Sub(s.born)))
		}
		if s.cluster {
			pctx, cancel := context.WithTimeout(ctx, every)
			s.watchSlots(pctx)
			cancel()
		}
	}
}

// receive delivers an event published by another Store.
func (s *Store) receive(payload string) {
	node, ev, ok := decodeEvent(payload)
	if !ok || node == s.node {
		return
	}
	s.subs.deliver(ev)
}

// isTimeout reports whether err is a read timeout, which leaves the
// subscription intact.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
