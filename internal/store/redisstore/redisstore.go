// Package redisstore keeps tokengate's state in Redis: a single server,
// a Sentinel-managed master or a Redis Cluster (see ParseURL).
//
// # Consistency
//
// Everything about one user (record, tokens, last uses, web sessions)
// shares one cluster slot (see keys) and is changed in one MULTI/EXEC,
// with WATCH for read-modify-write and a bounded number of retries when
// another client got in between; so is each OAuth client, the keyring and
// the deny-list. Four things live in slots of their own: the hash index
// that LookupToken reads, the session index that GetSession reads (see
// sessions.go), the set of user names and the set of client IDs.
// Writes that touch them
// cannot be atomic in a cluster, so they follow one order: a record is
// written first and its index (or list entry) last, and deleted in the
// reverse order. A token thus becomes usable at the last step of its
// creation and unusable at the first step of its deletion. When a later
// step fails the earlier one is undone (best effort) and the error
// returned; what a crash leaves between the steps is found and repaired by
// Check, which treats the records as the truth. LookupToken verifies that
// the record it reaches has the hash it looked up, so a stale index never
// grants anything.
//
// # Events
//
// A write that changes what LookupToken returns, and every write of a
// client, the keyring or the deny-list, calls this process's subscribers
// before it returns and publishes the event on a pub/sub channel, in the
// same transaction (or script) as the write, or as its last step, so that
// an event is sent if and only if the write took effect (PUBLISH is
// keyless, so a cluster transaction still runs on the slot of the keys it
// writes).
package redisstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store"
)

// Store implements the contract.
var _ store.Store = (*Store)(nil)

// Defaults of Options.
const (
	DefaultPrefix        = "tg"
	defaultChannelSuffix = ":events"
)

// Options configure a Store. The zero value is valid.
type Options struct {
	// Prefix starts every key, so that several stores can share a
	// database. It must not contain '{' or '}', which would change the
	// keys' cluster hash tags. Default "tg".
	Prefix string
	// Cluster says that the client is a Redis Cluster client: Lua scripts
	// may then only touch the keys they declare, so LookupToken takes two
	// round trips instead of one. Default false; Open sets it for
	// redis-cluster:// URLs and New whenever the client is a
	// *redis.ClusterClient.
	Cluster bool
	// Channel is the pub/sub channel on which stores sharing the database
	// announce changes to each other. Default Prefix + ":events".
	Channel string
	// Durability is how many replicas must acknowledge a write before it
	// returns (see Durability). nil: the default, which Open sets to
	// DefaultSentinelReplicas replicas within DefaultDurabilityTimeout for
	// a redis-sentinel:// URL; for a redis-cluster:// URL to
	// DefaultClusterReplicas if every primary has a replica at the first
	// write, else none (see decideReplicas); and to none for a single
	// server (it may have no replica). New, given a client it cannot tell
	// apart, uses none.
	Durability *Durability
	// OnNewPrimary, if set, is called after the Store found a new
	// Sentinel-managed primary or a new primary in a cluster (a
	// failover), wrote its journal again there and reset its
	// subscribers, with the old and new addresses and what the replay
	// did; the gateway logs it.
	OnNewPrimary func(old, new string, r ReplayReport)
	// Now is the clock that denials are measured by (nil: time.Now);
	// tests inject one they can move. Failure windows are the keys' own
	// time to live, kept by the server's clock.
	Now func() time.Time
	// Logger gets the subscription's outages (one line when it breaks, one
	// when it is back) and the start-up check of what Redis keeps on disk
	// (see CheckPersistence). Default: none (zap.NewNop).
	Logger *zap.Logger
	// PingInterval is how often the Store publishes a ping of its own on
	// the channel while it is subscribed: a subscription that receives no
	// message at all (not even that ping) for a few intervals after a
	// ping was published is taken as broken and made again (see
	// SilentIntervals). Default DefaultPingInterval.
	PingInterval time.Duration
}

// DefaultPingInterval is the default of Options.PingInterval.
const DefaultPingInterval = 2 * time.Second

// withDefaults fills in defaults and checks the options.
func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return o, fmt.Errorf("redisstore: prefix %q must not contain '{' or '}'", o.Prefix)
	}
	if o.Channel == "" {
		o.Channel = o.Prefix + defaultChannelSuffix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.PingInterval < 0 {
		return o, fmt.Errorf("redisstore: ping interval %v must not be negative", o.PingInterval)
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.Durability != nil {
		d, err := o.Durability.withDefaults()
		if err != nil {
			return o, err
		}
		o.Durability = &d
	}
	return o, nil
}

// Store is a store.Store kept in Redis. Its methods are safe for
// concurrent use.
type Store struct {
	client  redis.UniversalClient
	keys    keys
	channel string
	cluster bool
	now     func() time.Time
	logger  *zap.Logger
	// pingEvery is Options.PingInterval in nanoseconds (SetPingInterval
	// changes it); pingAcked is when the latest ping that Redis
	// acknowledged was sent, in nanoseconds since born (0: none yet), so
	// that the monotonic clock measures the silence.
	pingEvery, pingAcked atomic.Int64
	born                 time.Time
	// durability is what writes wait for (see Durability).
	durability Durability
	// autoDurability: a cluster with the default durability, whose
	// replicas are decided at the first write (autoReplicas, -1 until
	// then; see decideReplicas). slots is a cluster's slot map.
	autoDurability bool
	autoReplicas   atomic.Int64
	autoMu         sync.Mutex
	slots          clusterSlots
	// primary notices a new primary of a Sentinel-managed client or a
	// cluster (nil for a single server); primaryChanges counts them.
	primary        *primaryWatch
	primaryChanges atomic.Uint64
	// journal keeps the recent writes that took something away, replayed
	// on a new primary (see journal.go); replaying counts the changes
	// not yet handled by the running replay.
	journal    journal
	replaying  atomic.Int64
	replayMu   sync.Mutex
	lastReplay ReplayReport
	onNew      func(old, new string, r ReplayReport)
	// node identifies this Store in published events, so that it can
	// ignore its own: its subscribers got them when the write returned.
	node       string
	ops        atomic.Uint64
	roundTrips atomic.Uint64
	// lookupArgs are computed once; see lookupScript.
	lookupArgs []any

	subs     subscribers
	listener listener
	// life ends when the Store is closed; it stops the listener.
	life     context.Context
	shutdown context.CancelFunc
	wg       sync.WaitGroup
}

// New returns a Store that uses client, which it closes on Close. It adds
// a hook to client that counts commands (see Ops). New panics if opts are
// invalid (see Options.Prefix); Open returns an error instead.
func New(client redis.UniversalClient, opts Options) *Store {
	opts, err := opts.withDefaults()
	if err != nil {
		panic(err)
	}
	k := keys{prefix: opts.Prefix}
	s := &Store{
		client:     client,
		keys:       k,
		channel:    opts.Channel,
		cluster:    opts.Cluster,
		now:        opts.Now,
		logger:     opts.Logger,
		born:       time.Now(),
		node:       newNodeID(),
		lookupArgs: lookupArgs(k),
	}
	s.pingEvery.Store(int64(opts.PingInterval))
	s.autoReplicas.Store(-1)
	if opts.Durability != nil {
		s.durability = *opts.Durability
	}
	s.onNew = opts.OnNewPrimary
	s.life, s.shutdown = context.WithCancel(context.Background())
	s.listener.init()
	hook := opsHook{&s.ops, &s.roundTrips}
	if cc, ok := client.(*redis.ClusterClient); ok {
		s.cluster = true
		// Count on the nodes: a WATCH transaction runs on a node's client
		// and would escape a hook on the cluster client. Nodes that the
		// client created before New are not counted.
		cc.OnNewNode(func(c *redis.Client) { c.AddHook(hook) })
		cc.AddHook(movesHook{})
	} else {
		client.AddHook(hook)
	}
	return s
}

// Open connects to the Redis that url names (see ParseURL) and returns a
// Store on it. It does not contact the server: the first call does.
func Open(url string, opts Options) (*Store, error) {
	co, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if co.Cluster != nil {
		opts.Cluster = true
	}
	if opts.Durability == nil && co.Failover != nil {
		opts.Durability = &Durability{Replicas: DefaultSentinelReplicas}
	}
	auto := opts.Durability == nil && co.Cluster != nil
	if auto {
		opts.Durability = &Durability{Replicas: DefaultClusterReplicas}
	}
	if _, err := opts.withDefaults(); err != nil {
		return nil, err
	}
	var watch *primaryWatch
	switch {
	case co.Failover != nil:
		watch = newPrimaryWatch(co.Failover.SentinelAddrs)
		co.Failover.Dialer = watch.dialer(co.Failover.DialTimeout, co.Failover.Dialer)
	case co.Cluster != nil:
		watch = newPrimaryWatch(nil) // fed by the slot map, see sawPrimaries
	}
	s := New(co.NewClient(), opts)
	s.autoDurability = auto
	if watch != nil {
		// No connection is made before the first call, so no dial misses
		// onChange.
		watch.mu.Lock()
		watch.onChange = s.onNewPrimary
		watch.mu.Unlock()
		s.primary = watch
	}
	return s, nil
}

// newNodeID returns a random identifier for a Store.
func newNodeID() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// Ops returns how many commands the Store has sent, counting each command
// of a pipeline or transaction (MULTI and EXEC included). A benchmark
// compares it before and after an operation.
func (s *Store) Ops() uint64 { return s.ops.Load() }

// RoundTrips counts the exchanges with Redis: a single command, or a whole
// pipeline or transaction, is one.
func (s *Store) RoundTrips() uint64 { return s.roundTrips.Load() }

// Close stops the event listener and closes the client.
func (s *Store) Close() error {
	s.shutdown()
	s.wg.Wait()
	return s.client.Close()
}

// opsHook counts the commands sent through a client.
type opsHook struct{ n, trips *atomic.Uint64 }

// DialHook counts nothing: dialing sends no command of the Store.
func (h opsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts a single command.
func (h opsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if counted(ctx) {
			h.n.Add(1)
			h.trips.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts every command of a pipeline or transaction.
func (h opsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

// maxTxAttempts bounds the retries of an optimistic transaction whose
// watched keys another client changed.
const maxTxAttempts = 20

// errContention is returned when a transaction lost maxTxAttempts races.
var errContention = errors.New("redisstore: too many concurrent updates, transaction abandoned")

// watch runs fn in a WATCH on keys (all in one slot) and runs it again,
// after a short random pause, when the final EXEC fails because a watched
// key changed. On a cluster it also runs it again when the slot moved or
// is moving (see moves). fn may thus run several times; its error is
// returned as is.
func (s *Store) watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	var mv moves
	for attempt := 0; ; {
		err := s.client.Watch(ctx, fn, keys...)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			attempt++
			if attempt == maxTxAttempts {
				return errContention
			}
			pause := time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		case s.cluster && slotMoving(err):
			if werr := mv.wait(ctx, s.client, err); werr != nil {
				return werr
			}
		default:
			return err
		}
	}
}

// undoTimeout bounds a best-effort undo after a failed write.
const undoTimeout = 5 * time.Second

// undoContext returns a context for undoing a failed write: it outlives a
// cancelled ctx (often the reason of the failure) but not for long.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
}

// undone undoes a failed write's first steps with undo (nil: nothing to
// undo) and returns err, joined with the undo's own failure if it failed
// too: the store is then inconsistent (an index or set entry without its
// record, or the reverse) until a repair, and the caller must hear it.
func undone(ctx context.Context, err error, undo func(context.Context) error) error {
	if undo == nil {
		return err
	}
	uctx, cancel := undoContext(ctx)
	defer cancel()
	if uerr := undo(uctx); uerr != nil {
		return errors.Join(err, opErr(uerr, "undoing the partial write failed too; "+
			"run `tokengate store check --repair` to make the store consistent"))
	}
	return err
}

// ignoreNil drops redis.Nil, which a pipeline returns when one of its
// reads found nothing; the caller checks each command instead.
func ignoreNil(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// optional returns the value of a read that may find nothing, as "".
func optional(cmd *redis.StringCmd) (string, error) {
	v, err := cmd.Result()
	return v, ignoreNil(err)
}

// opErr explains a Redis error: what the store was doing. It keeps the
// error for errors.Is (redis.TxFailedErr for watch, for instance).
func opErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redisstore: "+format+": %w", append(args, err)...)
}
