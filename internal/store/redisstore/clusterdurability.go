package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/store/redisstore/clusternodes"
)

// Durability on a Redis Cluster
//
// A cluster replicates each shard (a primary and its replicas) on its
// own, and a write of the Store may touch keys of several shards (a
// user's record, the token index, the set of user names). PUBLISH, the
// barrier of a single server, goes over the cluster bus, not into a
// shard's replication stream. So the cluster barrier is a small key
// written on every primary, in a slot that primary serves, on a pinned
// connection of that primary, followed there by WAIT: a replica that has
// the barrier has every write that returned before it on that primary.
// All primaries are waited for in parallel (not only those the write
// touched: the Store does not track which they were, and the barrier and
// WAIT of every shard cost two round trips, in parallel), as go-redis lists them after
// rereading the cluster's slots (ForEachMaster: one round trip more, so
// that a promoted replica is never left out); the write is durable when
// every shard has at least Replicas acknowledgements.
//
// The barrier key's slot is found with the cluster's own hash (CRC16 of
// the hash tag, modulo 16384) from the slot map (CLUSTER NODES), which
// the Store keeps and reloads when a primary is missing from it or a
// barrier is redirected (a resharding moved the slot: MOVED or ASK).
//
// The same map tells the Store when a replica was promoted (a primary not
// in the previous map): primaryWatch then replays the journal and resets
// the subscribers, as for Sentinel. The map is reloaded with every
// ping of the subscription (see pinger), so that a failover is noticed
// even when no write waits for replicas.

const (
	// DefaultClusterReplicas is the most replicas the Replicas of a
	// redis-cluster:// URL defaults to when Options.Durability is nil:
	// the Store waits for one replica when every shard of the cluster
	// has at least one at first use, else for none (nothing can be
	// promoted then) and says so in a Warn line.
	DefaultClusterReplicas = 1
	// barrierTTL is the barrier key's time to live.
	barrierTTL = 10 * time.Second
	// barrierAttempts bounds the barrier's runs on one primary when its
	// slot moved meanwhile.
	barrierAttempts = 3
)

// clusterSlots is the cluster's slot map as the Store last read it.
type clusterSlots struct {
	mu     sync.Mutex
	tags   map[string]string // primary address -> a hash tag in one of its slots
	least  int               // the fewest replicas of a primary (of those serving slots)
	loaded bool
}

// barrierKey is the barrier key of the primary whose slot tag hashes to.
func (k keys) barrierKey(tag string) string { return k.prefix + ":durability:{" + tag + "}" }

// loadSlots reads the slot map and the replicas (CLUSTER NODES: CLUSTER
// SLOTS leaves out a replica that has not yet replicated anything), keeps
// a hash tag for each primary and tells the primary watch which the
// primaries are.
func (s *Store) loadSlots(ctx context.Context, cc *redis.ClusterClient) error {
	ctx = context.WithValue(ctx, uncounted{}, true) // not the work of a request
	out, err := cc.ClusterNodes(ctx).Result()
	if err != nil {
		return opErr(err, "CLUSTER NODES")
	}
	self := ""
	if strings.Contains(out, " :") {
		// A node that never met another (a cluster of one) does not
		// know its own address: ask the one go-redis knows, and name it
		// so (go-redis does the same with CLUSTER SLOTS).
		c, err := cc.MasterForKey(ctx, s.keys.users())
		if err != nil {
			return opErr(err, "CLUSTER NODES")
		}
		if out, err = c.ClusterNodes(ctx).Result(); err != nil {
			return opErr(err, "CLUSTER NODES")
		}
		self = c.Options().Addr
	}
	m, err := parseClusterNodes(out, self)
	if err != nil {
		return err
	}
	addrs := make([]string, 0, len(m.ranges))
	tags := make(map[string]string, len(m.ranges))
	for addr, rs := range m.ranges {
		tags[addr] = tagIn(rs)
		addrs = append(addrs, addr)
	}
	s.slots.mu.Lock()
	s.slots.tags, s.slots.least, s.slots.loaded = tags, m.least, true
	s.slots.mu.Unlock()
	if s.primary != nil {
		s.primary.sawPrimaries(addrs)
	}
	return nil
}

// nodesMap is what parseClusterNodes finds.
type nodesMap struct {
	ranges map[string][][2]int // primary address -> the slots it serves
	least  int                 // the fewest replicas of a primary that serves slots
}

// parseClusterNodes reads a CLUSTER NODES reply (see clusternodes.Parse)
// into the primaries serving slots, under their address and, when the
// cluster announces one, their hostname too (go-redis names a node so with
// cluster-preferred-endpoint-type hostname). Replicas are counted per
// primary, failed ones too (they are configured: the default waits for
// them to come back rather than for none). self is the address of the
// node that answered, for its line if that has no host ("" if unknown:
// the line is left out).
func parseClusterNodes(out, self string) (nodesMap, error) {
	nodes, err := clusternodes.Parse(out)
	if err != nil {
		return nodesMap{}, fmt.Errorf("redisstore: %w", err)
	}
	ranges := map[string][][2]int{}
	var serving []string // the IDs of the primaries that serve slots
	replicasOf := map[string]int{}
	for _, n := range nodes {
		if n.Replica() {
			replicasOf[n.Primary]++
			continue
		}
		if len(n.Slots) == 0 {
			continue
		}
		addr := n.Addr
		if strings.HasPrefix(addr, ":") {
			host, _, err := net.SplitHostPort(self)
			if err != nil || !n.HasFlag("myself") {
				continue // a node that does not know its own address yet
			}
			addr = net.JoinHostPort(host, addr[1:])
		}
		serving = append(serving, n.ID)
		ranges[addr] = append(ranges[addr], n.Slots...)
		if _, port, err := net.SplitHostPort(addr); err == nil && n.Hostname != "" {
			alias := net.JoinHostPort(n.Hostname, port)
			ranges[alias] = append(ranges[alias], n.Slots...)
		}
	}
	if len(ranges) == 0 {
		return nodesMap{}, errors.New("redisstore: CLUSTER NODES: no slot is served")
	}
	least := math.MaxInt
	for _, id := range serving {
		least = min(least, replicasOf[id])
	}
	return nodesMap{ranges: ranges, least: least}, nil
}

// tagFor returns the hash tag of a slot the primary at addr serves.
func (s *Store) tagFor(addr string) (string, bool) {
	s.slots.mu.Lock()
	defer s.slots.mu.Unlock()
	tag, ok := s.slots.tags[addr]
	return tag, ok
}

// tagIn returns a short hash tag whose slot is in one of the ranges
// (tries "0", "1", ...: a third of the slots takes a few tries).
func tagIn(ranges [][2]int) string {
	for i := 0; ; i++ {
		tag := strconv.Itoa(i)
		slot := clusternodes.TagSlot(tag)
		for _, r := range ranges {
			if slot >= r[0] && slot <= r[1] {
				return tag
			}
		}
	}
}

// replicasWanted returns how many replicas a write waits for: the
// configured number, or on a cluster with the default (see
// DefaultClusterReplicas) the number decided at the first write.
func (s *Store) replicasWanted(ctx context.Context) (int, error) {
	if !s.autoDurability {
		return s.durability.Replicas, nil
	}
	if n := s.autoReplicas.Load(); n >= 0 {
		return int(n), nil
	}
	return s.decideReplicas(ctx)
}

// decideReplicas decides the default durability of a cluster from its
// slot map, once (again after a failure to read it): DefaultClusterReplicas
// when every primary has that many replicas, else the fewest any has
// (a Warn line says that writes are then not waited for).
func (s *Store) decideReplicas(ctx context.Context) (int, error) {
	s.autoMu.Lock()
	defer s.autoMu.Unlock()
	if n := s.autoReplicas.Load(); n >= 0 {
		return int(n), nil
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return 0, fmt.Errorf("redisstore: durability default for a cluster on a %T client", s.client)
	}
	if err := s.loadSlots(ctx, cc); err != nil {
		return 0, err
	}
	s.slots.mu.Lock()
	least := s.slots.least
	s.slots.mu.Unlock()
	n := min(least, DefaultClusterReplicas)
	if n == 0 {
		s.logger.Warn("the Redis Cluster has a primary without replicas: writes do not wait for replicas " +
			"(store_durability replicas 0), and nothing can be promoted when that primary fails; " +
			"give every primary a replica (the default then waits for 1), or set store_durability replicas explicitly")
	} else {
		s.logger.Info("writes wait for replicas on every primary of the Redis Cluster (store_durability default)",
			zap.Int("replicas", n), zap.Duration("timeout", s.durability.Timeout))
	}
	s.autoReplicas.Store(int64(n))
	return n, nil
}

// DurableReplicas returns how many replicas a write waits for (on a
// cluster with the default, it decides it now if no write did yet).
func (s *Store) DurableReplicas(ctx context.Context) (int, error) { return s.replicasWanted(ctx) }

// waitCluster makes the barrier on every primary of cc and returns the
// fewest acknowledgements of any primary.
func (s *Store) waitCluster(ctx context.Context, cc *redis.ClusterClient, replicas int) (int, error) {
	var (
		mu    sync.Mutex
		least = math.MaxInt
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := s.waitPrimary(ctx, cc, c, replicas)
		mu.Lock()
		least = min(least, n)
		mu.Unlock()
		return err
	})
	if least == math.MaxInt {
		least = 0
	}
	return least, err
}

// waitPrimary writes the barrier key on c, a primary, and waits there
// for replicas. A barrier redirected (its slot moved) or sent to a
// primary missing from the slot map reloads the map and runs again.
func (s *Store) waitPrimary(ctx context.Context, cc *redis.ClusterClient, c *redis.Client, replicas int) (int, error) {
	addr := c.Options().Addr
	var err error
	for attempt := range barrierAttempts {
		tag, ok := s.tagFor(addr)
		if !ok || attempt > 0 {
			if err = s.loadSlots(ctx, cc); err != nil {
				return 0, err
			}
			if tag, ok = s.tagFor(addr); !ok {
				// go-redis takes it for a primary, the map not (a
				// failover or a resharding under way): not known to be
				// durable; go-redis rereads its map for the retry.
				cc.ReloadState(ctx)
				return 0, fmt.Errorf("redisstore: durability barrier: %s serves no slot in the cluster's map", addr)
			}
		}
		var n int
		n, err = s.barrier(ctx, c, tag, replicas)
		if err == nil {
			return n, nil
		}
		if !slotMoving(err) {
			cc.ReloadState(ctx) // a primary that failed may have been replaced
			return 0, opErr(err, "durability barrier on %s", addr)
		}
	}
	return 0, opErr(err, "durability barrier on %s (its slot kept moving)", addr)
}

// barrier writes the barrier key in tag's slot on one connection of c and
// waits there for replicas.
func (s *Store) barrier(ctx context.Context, c *redis.Client, tag string, replicas int) (int, error) {
	conn := c.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, s.keys.barrierKey(tag), s.node, barrierTTL).Err(); err != nil {
		return 0, err
	}
	n, err := conn.Wait(ctx, replicas, s.durability.Timeout).Result()
	if err != nil {
		return 0, fmt.Errorf("WAIT for %d replicas: %w", replicas, err)
	}
	return int(n), nil
}

// sawPrimaries is the cluster's counterpart of dialed: addrs are the
// primaries that serve slots now. One that was not a primary in the
// previous map (a promoted replica; also a node given slots for the
// first time, which costs a needless reset) is reported as a change.
func (w *primaryWatch) sawPrimaries(addrs []string) {
	now := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		now[a] = true
	}
	w.mu.Lock()
	before := w.primaries
	w.primaries = now
	var gone, added string
	if before != nil {
		for _, a := range addrs {
			if !before[a] {
				added = a
				break
			}
		}
		for a := range before {
			if !now[a] {
				gone = a
				break
			}
		}
	}
	if added != "" {
		w.addr = added
	}
	onChange := w.onChange
	w.mu.Unlock()
	if added != "" && onChange != nil {
		onChange(gone, added)
	}
}

// watchSlots reloads the slot map of a cluster (see sawPrimaries); the
// pinger calls it with every ping. Failures are left to the next ping.
func (s *Store) watchSlots(ctx context.Context) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok || s.primary == nil {
		return
	}
	if err := s.loadSlots(ctx, cc); err != nil && !strings.Contains(err.Error(), "context") {
		s.logger.Debug("could not read the cluster's slot map", zap.Error(err))
	}
}
