package redistest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shardedPrimaries is the number of primaries of a ShardedCluster.
const shardedPrimaries = 3

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// migrateBatch is how many keys one MIGRATE moves during MoveSlot.
const migrateBatch = 100

// ShardedCluster is a Redis Cluster of three primaries (no replicas) on
// loopback ports, the slots split in three ranges between them, as a real
// deployment has it: a cluster client must follow the slot map and its
// redirections. MoveSlots moves slots between the nodes while clients run,
// the way `redis-cli --cluster reshard` does. Its methods are safe for
// concurrent use, though two concurrent moves of one slot are not.
type ShardedCluster struct {
	nodes []*Server
	ids   []string // the nodes' cluster IDs, in the order of nodes
}

// StartShardedCluster starts a ShardedCluster for tb and stops it when tb
// ends. It fails tb (never skips it) if the cluster does not come up.
func StartShardedCluster(tb testing.TB) *ShardedCluster {
	tb.Helper()
	c, err := startSharded(tb.TempDir())
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
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		return nil, nil, fmt.Errorf("redistest: %w", err)
	}
	c, err := startSharded(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("redistest: %w", err)
	}
	stop := func() {
		c.Stop()
		_ = os.RemoveAll(dir)
	}
	return c, stop, nil
}

// startSharded starts the nodes in dir, joins them (CLUSTER MEET), gives
// each a third of the slots and waits until every node says the cluster
// is ok and knows the others.
func startSharded(dir string) (*ShardedCluster, error) {
	c := &ShardedCluster{}
	fail := func(err error) (*ShardedCluster, error) {
		c.Stop()
		return nil, fmt.Errorf("sharded cluster: %w", err)
	}
	for range shardedPrimaries {
		s, err := start(dir, options{cluster: true})
		if err != nil {
			return fail(err)
		}
		c.nodes = append(c.nodes, s)
		id, err := s.do("CLUSTER", "MYID")
		if err != nil {
			return fail(fmt.Errorf("CLUSTER MYID on %s: %w", s.Addr(), err))
		}
		c.ids = append(c.ids, id)
	}
	for _, s := range c.nodes[1:] {
		if _, err := c.nodes[0].do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.port)); err != nil {
			return fail(fmt.Errorf("CLUSTER MEET %s: %w", s.Addr(), err))
		}
	}
	for i, s := range c.nodes {
		first := i * slotCount / shardedPrimaries
		last := (i+1)*slotCount/shardedPrimaries - 1
		if _, err := s.do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last)); err != nil {
			return fail(fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", s.Addr(), err))
		}
	}
	if err := c.waitConsistent(); err != nil {
		return fail(err)
	}
	return c, nil
}

// waitConsistent waits until every node says the cluster is ok, knows
// every node and sees every slot assigned.
func (c *ShardedCluster) waitConsistent() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		var bad string
		for _, s := range c.nodes {
			info, err := s.do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r\n", len(c.nodes))) ||
				!strings.Contains(info, fmt.Sprintf("cluster_slots_assigned:%d\r\n", slotCount)) {
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

// Nodes returns the cluster's primaries.
func (c *ShardedCluster) Nodes() []*Server { return append([]*Server(nil), c.nodes...) }

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
	for _, s := range c.nodes {
		s.Stop()
	}
}

// FlushAll empties every primary.
func (c *ShardedCluster) FlushAll(tb testing.TB) {
	tb.Helper()
	for _, s := range c.nodes {
		s.FlushAll(tb)
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
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 8 {
			continue
		}
		for _, r := range fields[8:] {
			if strings.HasPrefix(r, "[") { // a slot being imported or migrated
				continue
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			first, err1 := strconv.Atoi(lo)
			last, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || slot < first || slot > last {
				continue
			}
			for i, id := range c.ids {
				if id == fields[0] {
					return i, nil
				}
			}
			return 0, fmt.Errorf("slot %d is served by unknown node %s", slot, fields[0])
		}
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
