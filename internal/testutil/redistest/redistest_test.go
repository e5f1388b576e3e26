package redistest

import (
	"strings"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Fatalf("URL = %q", s.URL())
	}
	ping(t, s, true)
	s.FlushAll(t)

	s.Stop()
	ping(t, s, false)
	s.Stop() // idempotent

	addr := s.Addr()
	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	ping(t, s, true)
}

// A paused server answers nothing (the helper's own PING times out)
// until it is resumed; a paused server is still stopped at the end.
func TestPauseResume(t *testing.T) {
	s := Start(t)
	s.Pause(t)
	ping(t, s, false)
	s.Resume(t)
	ping(t, s, true)
	s.Pause(t) // the cleanup kills it paused
}

func TestStartMain(t *testing.T) {
	s, stop, err := StartMain()
	if err != nil {
		t.Fatal(err)
	}
	ping(t, s, true)
	stop()
	ping(t, s, false)
}

func TestTwoServersGetDistinctPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
}

// ping checks whether the server answers.
func ping(t *testing.T, s *Server, want bool) {
	t.Helper()
	reply, err := s.do("PING")
	if got := err == nil && reply == "PONG"; got != want {
		t.Fatalf("PING answered = %v, want %v (reply %q, err %v)", got, want, reply, err)
	}
}

func TestStartCluster(t *testing.T) {
	s := StartCluster(t)
	if !strings.HasPrefix(s.URL(), "redis-cluster://127.0.0.1:") {
		t.Fatalf("URL = %q", s.URL())
	}
	if info, err := s.do("CLUSTER", "INFO"); err != nil || !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
	s.Restart(t)
	if info, err := s.do("CLUSTER", "INFO"); err != nil || !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("CLUSTER INFO after restart = %q, %v", info, err)
	}
}

func TestCheckPIDRejectsAnotherServer(t *testing.T) {
	s := Start(t)
	s.mu.Lock()
	pid := s.proc.cmd.Process.Pid
	s.mu.Unlock()
	if err := s.checkPID(pid); err != nil {
		t.Fatalf("checkPID(own pid): %v", err)
	}
	if err := s.checkPID(pid + 1); err == nil {
		t.Fatal("checkPID accepted a server that is not the started process")
	}
}

// A Sentinel deployment comes up with the sentinels agreeing on the
// primary; a failover swaps the nodes, the data written before it is on
// the new primary and the old one replicates from it.
func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t)
	if want := "redis-sentinel://" + s.Sentinels()[0].Addr() + ","; !strings.HasPrefix(s.URL(), want) ||
		!strings.HasSuffix(s.URL(), "?master="+MasterName) || len(s.Sentinels()) != 3 {
		t.Fatalf("URL = %q", s.URL())
	}
	p, r := s.Primary(), s.Replica()
	if reply, err := p.do("SET", "k", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET on the primary: %q, %v", reply, err)
	}
	if _, err := r.do("SET", "k", "w"); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("SET on the replica: %v, want READONLY", err)
	}
	if err := waitReplicated(p, r); err != nil {
		t.Fatal(err)
	}

	s.Failover(t)
	if s.Primary() != r || s.Replica() != p {
		t.Fatal("Primary and Replica not swapped after the failover")
	}
	if v, err := r.do("GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET on the new primary: %q, %v", v, err)
	}
	if reply, err := r.do("SET", "k2", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET on the new primary: %q, %v", reply, err)
	}
	s.FlushAll(t)
	if v, err := p.do("EXISTS", "k"); err != nil || v != "0" {
		t.Fatalf("EXISTS on the new replica after FlushAll: %q, %v", v, err)
	}
}

func TestStartSentinelMain(t *testing.T) {
	s, stop, err := StartSentinelMain()
	if err != nil {
		t.Fatal(err)
	}
	p := s.Primary()
	ping(t, p, true)
	stop()
	ping(t, p, false)
	for _, sn := range s.Sentinels() {
		ping(t, sn, false)
	}
}

// A sharded cluster has three primaries that share the slots; a slot moved
// to another node takes its keys along, and the old owner then redirects.
func TestShardedCluster(t *testing.T) {
	c := StartShardedCluster(t)
	if got := strings.Count(c.URL(), ","); !strings.HasPrefix(c.URL(), "redis-cluster://127.0.0.1:") || got != 2 {
		t.Fatalf("URL = %q", c.URL())
	}
	nodes := c.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("%d nodes", len(nodes))
	}
	for i, slot := range []int{0, 5461, 16383} {
		if o := c.Owner(t, slot); o != nodes[i] {
			t.Errorf("slot %d on %s, want %s", slot, o.Addr(), nodes[i].Addr())
		}
	}

	key := "{user}:record"
	slot := c.KeySlot(t, key)
	from := c.Owner(t, slot)
	if _, err := from.do("SET", key, "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := from.do("SET", "{user}:other", "w"); err != nil {
		t.Fatal(err)
	}
	to := nodes[0]
	if to == from {
		to = nodes[1]
	}
	c.MoveSlots(t, to, slot)
	if o := c.Owner(t, slot); o != to {
		t.Fatalf("after the move slot %d is on %s, want %s", slot, o.Addr(), to.Addr())
	}
	if v, err := to.do("GET", key); err != nil || v != "v" {
		t.Fatalf("GET on the new owner = %q, %v", v, err)
	}
	if _, err := from.do("GET", key); err == nil || !strings.Contains(err.Error(), "MOVED") {
		t.Fatalf("GET on the old owner: %v, want MOVED", err)
	}
	c.MoveSlots(t, from, slot) // and back
	if v, err := from.do("GET", "{user}:other"); err != nil || v != "w" {
		t.Fatalf("GET after moving back = %q, %v", v, err)
	}
	c.MoveSlots(t, from, slot) // already there: nothing to do

	c.FlushAll(t)
	if n, err := from.do("DBSIZE"); err != nil || n != "0" {
		t.Fatalf("DBSIZE after FlushAll = %q, %v", n, err)
	}
}

func TestShardedClusterMain(t *testing.T) {
	c, stop, err := StartShardedClusterMain()
	if err != nil {
		t.Fatal(err)
	}
	nodes := c.Nodes()
	for _, s := range nodes {
		ping(t, s, true)
	}
	stop()
	for _, s := range nodes {
		ping(t, s, false)
	}
}

func TestShardedClusterWithReplicas(t *testing.T) {
	c := StartShardedClusterWithReplicas(t)
	nodes, replicas := c.Nodes(), c.Replicas()
	if len(nodes) != 3 || len(replicas) != 3 {
		t.Fatalf("%d primaries, %d replicas", len(nodes), len(replicas))
	}
	for i, r := range replicas {
		if err := replicated(nodes[i], r); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	// A key of shard 0, written and waited for on its primary.
	key := ""
	for i := 0; key == ""; i++ {
		k := "{k" + strings.Repeat("x", i) + "}"
		if c.Owner(t, c.KeySlot(t, k)) == nodes[0] {
			key = k
		}
	}
	if _, err := nodes[0].do("SET", key, "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := nodes[0].do("WAIT", "1", "5000"); err != nil || n != "1" {
		t.Fatalf("WAIT: %q, %v", n, err)
	}

	c.Failover(t, 0)
	if got := c.Nodes()[0]; got != replicas[0] {
		t.Fatalf("after Failover primary 0 is %s, want the replica %s", got.Addr(), replicas[0].Addr())
	}
	if got := c.Replicas()[0]; got != nodes[0] {
		t.Fatalf("after Failover replica 0 is %s, want the old primary %s", got.Addr(), nodes[0].Addr())
	}
	if v, err := replicas[0].do("GET", key); err != nil || v != "v" {
		t.Errorf("the promoted replica has %q, %v", v, err)
	}

	c.KillPrimary(t, 1)
	if got := c.Nodes()[1]; got != replicas[1] {
		t.Fatalf("after KillPrimary primary 1 is %s, want the replica %s", got.Addr(), replicas[1].Addr())
	}
	ping(t, nodes[1], false)
	c.RestartReplica(t, 1)
	if err := replicated(replicas[1], nodes[1]); err != nil {
		t.Errorf("the killed primary after RestartReplica: %v", err)
	}
	c.FlushAll(t)
}
