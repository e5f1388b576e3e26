package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/store/redisstore/clusternodes"
)

// shardedPrimaries is the number of primaries of a ShardedCluster.
const shardedPrimaries = 3

// migrateBatch is how many keys one MIGRATE moves during MoveSlot.
const migrateBatch = 100

// ShardedCluster is a Redis Cluster of three primaries (no replicas) on
// loopback ports, the slots split in three ranges between them, as a real
// deployment has it: a cluster client must follow the slot map and its
// redirections. MoveSlots moves slots between the nodes while clients run,
// the way `redis-cli --cluster reshard` does. Its methods are safe for
// concurrent use, though two concurrent moves of one slot are not.
//
// StartShardedClusterWithReplicas gives each primary a replica, and
// Failover and KillPrimary promote one.
type ShardedCluster struct {
	mu    sync.Mutex // guards the swaps of Failover and KillPrimary
	nodes []*Server
	ids   []string // the nodes' cluster IDs, in the order of nodes
	// replicas[i] replicates nodes[i] (nil without replicas); replicaIDs
	// are their cluster IDs.
	replicas   []*Server
	replicaIDs []string
}

// nodeTimeout is the cluster-node-timeout of a cluster with replicas: a
// primary that answers nothing for that long is failed over (after a
// second more or so of election).
const nodeTimeout = time.Second

// replicaArgs are the options of the nodes of a cluster with replicas:
// a short node timeout, and quick full synchronisations.
var replicaArgs = []string{"--cluster-node-timeout", strconv.Itoa(int(nodeTimeout / time.Millisecond)),
	"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}

// StartShardedCluster starts a ShardedCluster for tb and stops it when tb
// ends. It fails tb (never skips it) if the cluster does not come up.
func StartShardedCluster(tb testing.TB) *ShardedCluster {
	tb.Helper()
	return startShardedTB(tb, false)
}

// StartShardedClusterWithReplicas is StartShardedCluster with one replica
// per primary (six nodes) and a cluster-node-timeout of one second, so
// that a primary that stops is failed over within seconds. It returns
// once every replica is in sync with its primary.
func StartShardedClusterWithReplicas(tb testing.TB) *ShardedCluster {
	tb.Helper()
	return startShardedTB(tb, true)
}

// startShardedTB starts a ShardedCluster in tb's temporary directory and
// stops it when tb ends, failing tb if it does not come up.
func startShardedTB(tb testing.TB, withReplicas bool) *ShardedCluster {
	tb.Helper()
	c, err := startSharded(tb.TempDir(), withReplicas)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartShardedClusterMain is StartShardedCluster for TestMain (see
// StartMain): it returns the cluster and a function that stops it and
// removes its directory, to be called before os.Exit.
func StartShardedClusterMain() (*ShardedCluster, func(), error) {
	return inTempDir("redistest-cluster-", func(dir string) (*ShardedCluster, error) { return startSharded(dir, false) })
}

// startSharded starts the nodes in dir, joins them (CLUSTER MEET), gives
// each primary a third of the slots, makes each replica (withReplicas)
// replicate its primary and waits until every node says the cluster is ok
// and knows the others, and every replica is in sync.
func startSharded(dir string, withReplicas bool) (*ShardedCluster, error) {
	c := &ShardedCluster{}
	fail := func(err error) (*ShardedCluster, error) {
		c.Stop()
		return nil, fmt.Errorf("sharded cluster: %w", err)
	}
	o := options{cluster: true}
	if withReplicas {
		o.args = replicaArgs
	}
	startNode := func() (*Server, string, error) {
		s, err := start(dir, o)
		if err != nil {
			return nil, "", err
		}
		id, err := s.do("CLUSTER", "MYID")
		if err != nil {
			s.Stop()
			return nil, "", fmt.Errorf("CLUSTER MYID on %s: %w", s.Addr(), err)
		}
		return s, id, nil
	}
	for range shardedPrimaries {
		s, id, err := startNode()
		if err != nil {
			return fail(err)
		}
		c.nodes, c.ids = append(c.nodes, s), append(c.ids, id)
		if withReplicas {
			r, rid, err := startNode()
			if err != nil {
				return fail(err)
			}
			c.replicas, c.replicaIDs = append(c.replicas, r), append(c.replicaIDs, rid)
		}
	}
	for _, s := range c.all()[1:] {
		if _, err := c.nodes[0].do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.port)); err != nil {
			return fail(fmt.Errorf("CLUSTER MEET %s: %w", s.Addr(), err))
		}
	}
	for i, s := range c.nodes {
		first, last := shardRange(i)
		if _, err := s.do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last)); err != nil {
			return fail(fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", s.Addr(), err))
		}
	}
	for i, r := range c.replicas {
		if err := replicate(r, c.ids[i]); err != nil {
			return fail(err)
		}
	}
	if err := c.waitConsistent(); err != nil {
		return fail(err)
	}
	for i, r := range c.replicas {
		if err := waitReplicated(c.nodes[i], r); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// shardRange returns the first and last slot that primary i is given at
// the start.
func shardRange(i int) (first, last int) {
	return i * clusternodes.SlotCount / shardedPrimaries, (i+1)*clusternodes.SlotCount/shardedPrimaries - 1
}

// replicate makes r a replica of the node with ID primary (CLUSTER
// REPLICATE), retrying while r has not yet heard of that node.
func replicate(r *Server, primary string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		_, err := r.do("CLUSTER", "REPLICATE", primary)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CLUSTER REPLICATE %s on %s: %w", primary, r.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// all returns the primaries and then the replicas.
func (c *ShardedCluster) all() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(append([]*Server(nil), c.nodes...), c.replicas...)
}

// waitConsistent waits until every node says the cluster is ok, knows
// every node and sees every slot assigned.
func (c *ShardedCluster) waitConsistent() error {
	deadline := time.Now().Add(readyTimeout)
	all := c.all()
	for {
		var bad string
		for _, s := range all {
			info, err := s.do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r\n", len(all))) ||
				!strings.Contains(info, fmt.Sprintf("cluster_slots_assigned:%d\r\n", clusternodes.SlotCount)) {
				bad = fmt.Sprintf("%s: %q, %v", s.Addr(), info, err)
				break
			}
		}
		if bad == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ok on every node within %v: %s", readyTimeout, bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nodes returns the cluster's primaries (after Failover or KillPrimary:
// the promoted replica in the place of the old primary).
func (c *ShardedCluster) Nodes() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Server(nil), c.nodes...)
}

// Replicas returns the replica of each primary, in the order of Nodes
// (none for StartShardedCluster). After KillPrimary, the killed node is
// the replica of its shard, stopped until RestartReplica.
func (c *ShardedCluster) Replicas() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Server(nil), c.replicas...)
}

// Failover promotes the replica of primary i (an index of Nodes) with
// CLUSTER FAILOVER FORCE, sent to the replica while the primary still
// runs (FORCE: without the primary's agreement, as after a network
// partition; the primary may take writes until it hears of the
// promotion, which are then lost). It waits until every node names the
// replica as the owner of the shard's slots and the old primary has
// become its replica, in sync; Nodes and Replicas then return them
// swapped. It fails tb if that does not happen within a bound.
func (c *ShardedCluster) Failover(tb testing.TB, i int) {
	tb.Helper()
	primary, replica := c.shard(tb, i)
	if _, err := replica.do("CLUSTER", "FAILOVER", "FORCE"); err != nil {
		tb.Fatalf("redistest: CLUSTER FAILOVER FORCE on %s: %v", replica.Addr(), err)
	}
	c.swap(i)
	if err := c.waitPromoted(i); err != nil {
		tb.Fatalf("redistest: after CLUSTER FAILOVER FORCE: %v", err)
	}
	if err := waitReplicated(replica, primary); err != nil {
		tb.Fatalf("redistest: after CLUSTER FAILOVER FORCE: %v", err)
	}
}

// KillPrimary kills primary i (SIGKILL, as kill -9) and waits until the
// cluster has failed it over on its own (its replica, after
// cluster-node-timeout, wins the election: within seconds) and every
// running node names the replica as the owner of the shard's slots.
// Nodes and Replicas then return them swapped: the killed node is the
// shard's replica, stopped; RestartReplica brings it back. It fails tb if
// the failover does not happen within a bound.
func (c *ShardedCluster) KillPrimary(tb testing.TB, i int) {
	tb.Helper()
	primary, _ := c.shard(tb, i)
	primary.Stop()
	c.swap(i)
	if err := c.waitPromoted(i); err != nil {
		tb.Fatalf("redistest: after killing primary %s: %v", primary.Addr(), err)
	}
}

// RestartReplica starts the replica of primary i again (the node that
// KillPrimary killed: it comes back empty, with its cluster config, and
// rejoins as the replica of the node that replaced it) and waits until
// it is in sync and every node says the cluster is ok.
func (c *ShardedCluster) RestartReplica(tb testing.TB, i int) {
	tb.Helper()
	primary, replica := c.shard(tb, i)
	replica.Restart(tb)
	if err := c.waitConsistent(); err != nil {
		tb.Fatalf("redistest: after restarting %s: %v", replica.Addr(), err)
	}
	if err := waitReplicated(primary, replica); err != nil {
		tb.Fatalf("redistest: after restarting %s: %v", replica.Addr(), err)
	}
}

// shard returns primary i and its replica, failing tb when there is none.
func (c *ShardedCluster) shard(tb testing.TB, i int) (primary, replica *Server) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) || i >= len(c.replicas) {
		tb.Fatalf("redistest: shard %d: the cluster has %d primaries and %d replicas", i, len(c.nodes), len(c.replicas))
	}
	return c.nodes[i], c.replicas[i]
}

// swap exchanges primary i and its replica.
func (c *ShardedCluster) swap(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i], c.replicas[i] = c.replicas[i], c.nodes[i]
	c.ids[i], c.replicaIDs[i] = c.replicaIDs[i], c.ids[i]
}

// promotionTimeout bounds the wait for a failover: the node timeout, the
// election, and the gossip that spreads the new owner.
const promotionTimeout = 30 * time.Second

// waitPromoted waits until primary i (already swapped in) says it is a
// primary and every running node names it as the owner of the shard's
// first slot and says the cluster is ok.
func (c *ShardedCluster) waitPromoted(i int) error {
	primary, _ := c.nodes[i], c.replicas[i]
	first, _ := shardRange(i)
	deadline := time.Now().Add(promotionTimeout)
	for {
		err := func() error {
			info, err := primary.do("INFO", "replication")
			if err != nil {
				return err
			}
			if role := infoFields(info)["role"]; role != "master" {
				return fmt.Errorf("%s has role %q", primary.Addr(), role)
			}
			for _, s := range c.all() {
				if !s.running() {
					continue
				}
				reply, err := s.doValue("CLUSTER", "SLOTS")
				if err != nil {
					return err
				}
				if port := slotOwnerPort(reply, first); port != primary.port {
					return fmt.Errorf("%s names port %d as the owner of slot %d", s.Addr(), port, first)
				}
				if info, err := s.do("CLUSTER", "INFO"); err != nil || !strings.Contains(info, "cluster_state:ok") {
					return fmt.Errorf("%s: cluster not ok (%v)", s.Addr(), err)
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not promoted within %v: %w", primary.Addr(), promotionTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL returns a redis-cluster:// URL that lists every node.
func (c *ShardedCluster) URL() string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// Stop kills every node. Stopping a stopped cluster does nothing.
func (c *ShardedCluster) Stop() {
	for _, s := range c.all() {
		if s != nil {
			s.Stop()
		}
	}
}

// FlushAll empties every primary, and waits until each replica has
// applied it too.
func (c *ShardedCluster) FlushAll(tb testing.TB) {
	tb.Helper()
	nodes, replicas := c.Nodes(), c.Replicas()
	for _, s := range nodes {
		s.FlushAll(tb)
	}
	for i, r := range replicas {
		if err := waitReplicated(nodes[i], r); err != nil {
			tb.Fatalf("redistest: after FLUSHALL: %v", err)
		}
	}
}

// KeySlot returns the hash slot of key (CLUSTER KEYSLOT).
func (c *ShardedCluster) KeySlot(tb testing.TB, key string) int {
	tb.Helper()
	reply, err := c.nodes[0].do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		tb.Fatalf("redistest: CLUSTER KEYSLOT %q: %v", key, err)
	}
	slot, err := strconv.Atoi(reply)
	if err != nil {
		tb.Fatalf("redistest: CLUSTER KEYSLOT %q: reply %q", key, reply)
	}
	return slot
}

// Owner returns the node that serves slot, as the first node sees it.
func (c *ShardedCluster) Owner(tb testing.TB, slot int) *Server {
	tb.Helper()
	i, err := c.owner(slot)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return c.nodes[i]
}

// owner returns the index of the node that serves slot, read from the
// first node's CLUSTER NODES.
func (c *ShardedCluster) owner(slot int) (int, error) {
	out, err := c.nodes[0].do("CLUSTER", "NODES")
	if err != nil {
		return 0, fmt.Errorf("CLUSTER NODES: %w", err)
	}
	nodes, err := clusternodes.Parse(out)
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if !n.Serves(slot) {
			continue
		}
		for i, id := range c.ids {
			if id == n.ID {
				return i, nil
			}
		}
		return 0, fmt.Errorf("slot %d is served by unknown node %s", slot, n.ID)
	}
	return 0, fmt.Errorf("slot %d is served by no node", slot)
}

// MoveSlots moves each of slots to the node to (one of Nodes) the way
// `redis-cli --cluster reshard` does, one slot at a time and while clients
// keep using the cluster: CLUSTER SETSLOT IMPORTING on the target and
// MIGRATING on the source, the slot's keys moved in batches with MIGRATE
// ... KEYS (clients that ask for a moved key get ASK meanwhile), then
// CLUSTER SETSLOT NODE on the target, the source and the other node, from
// which on the source answers MOVED. A slot already on to is left alone.
// It fails tb if a step fails.
func (c *ShardedCluster) MoveSlots(tb testing.TB, to *Server, slots ...int) {
	tb.Helper()
	dst := -1
	for i, s := range c.nodes {
		if s == to {
			dst = i
		}
	}
	if dst < 0 {
		tb.Fatalf("redistest: MoveSlots to %s, which is not a node of the cluster", to.Addr())
	}
	for _, slot := range slots {
		if err := c.moveSlot(slot, dst); err != nil {
			tb.Fatalf("redistest: move slot %d to %s: %v", slot, to.Addr(), err)
		}
	}
}

// moveSlot moves one slot to node dst.
func (c *ShardedCluster) moveSlot(slot, dst int) error {
	src, err := c.owner(slot)
	if err != nil || src == dst {
		return err
	}
	if err := c.waitEpochs(); err != nil {
		return err
	}
	from, to := c.nodes[src], c.nodes[dst]
	sl := strconv.Itoa(slot)
	if _, err := to.do("CLUSTER", "SETSLOT", sl, "IMPORTING", c.ids[src]); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING: %w", err)
	}
	if _, err := from.do("CLUSTER", "SETSLOT", sl, "MIGRATING", c.ids[dst]); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING: %w", err)
	}
	for {
		keys, err := from.doStrings("CLUSTER", "GETKEYSINSLOT", sl, strconv.Itoa(migrateBatch))
		if err != nil {
			return fmt.Errorf("GETKEYSINSLOT: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.port), "", "0",
			strconv.Itoa(int(ioTimeout / time.Millisecond)), "KEYS"}
		if _, err := from.do(append(args, keys...)...); err != nil {
			return fmt.Errorf("MIGRATE: %w", err)
		}
	}
	// The target first, then the source, then the others, as Redis's
	// documentation orders it: the target bumps its epoch and owns the
	// slot before the source starts to send clients there.
	order := []int{dst, src}
	for i := range c.nodes {
		if i != dst && i != src {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if _, err := c.nodes[i].do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[dst]); err != nil {
			return fmt.Errorf("SETSLOT NODE on %s: %w", c.nodes[i].Addr(), err)
		}
	}
	return c.waitOwner(slot, dst)
}

// waitEpochs waits until the nodes' config epochs are distinct and every
// node has heard of the greatest (its current epoch is at least that).
// The target of a move takes a new, greatest epoch when it takes the
// slot (SETSLOT NODE), so that its claim beats the source's in the
// gossip; but it only does so if its epoch is not already the greatest it
// knows of. A target that has not yet heard of the source's newer epoch
// (the source took a slot a moment ago) would keep its older one, lose
// the slot to the source's last gossip before the source let it go, and
// leave the slot served by no one. redis-cli moves slots slowly enough
// not to meet this; MoveSlots waits instead.
func (c *ShardedCluster) waitEpochs() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		mine := map[string]bool{}
		var greatest, leastCurrent uint64
		leastCurrent = ^uint64(0)
		var err error
		for _, s := range c.nodes {
			var info string
			if info, err = s.do("CLUSTER", "INFO"); err != nil {
				break
			}
			my, cur := infoField(info, "cluster_my_epoch"), infoField(info, "cluster_current_epoch")
			mine[strconv.FormatUint(my, 10)] = true
			greatest = max(greatest, my)
			leastCurrent = min(leastCurrent, cur)
		}
		if err == nil && len(mine) == len(c.nodes) && leastCurrent >= greatest {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the nodes' epochs did not settle within %v (last error: %v)", readyTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// infoField returns a numeric field of a CLUSTER INFO reply, or 0.
func infoField(info, name string) uint64 {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// waitOwner waits until every node names node dst as the owner of slot
// (CLUSTER COUNTKEYSINSLOT would not tell; CLUSTER NODES of each does).
func (c *ShardedCluster) waitOwner(slot, dst int) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		agreed := true
		for _, s := range c.nodes {
			reply, err := s.doValue("CLUSTER", "SLOTS")
			if err != nil || slotOwnerPort(reply, slot) != c.nodes[dst].port {
				agreed = false
				break
			}
		}
		if agreed {
			return nil
		}
		if time.Now().After(deadline) {
			var views strings.Builder
			for _, s := range c.nodes {
				out, err := s.do("CLUSTER", "NODES")
				fmt.Fprintf(&views, "\n%s sees (%v):\n%s", s.Addr(), err, out)
			}
			return fmt.Errorf("the nodes do not agree on the new owner within %v:%s", readyTimeout, views.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slotOwnerPort returns the port of the primary serving slot in a CLUSTER
// SLOTS reply, or 0.
func slotOwnerPort(reply any, slot int) int {
	ranges, _ := reply.([]any)
	for _, r := range ranges {
		f, _ := r.([]any)
		if len(f) < 3 {
			continue
		}
		lo, _ := f[0].(string)
		hi, _ := f[1].(string)
		first, err1 := strconv.Atoi(lo)
		last, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || slot < first || slot > last {
			continue
		}
		primary, _ := f[2].([]any)
		if len(primary) < 2 {
			return 0
		}
		port, _ := primary[1].(string)
		n, _ := strconv.Atoi(port)
		return n
	}
	return 0
}
