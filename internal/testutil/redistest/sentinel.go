package redistest

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// sentinelBinary runs a sentinel; it must be on PATH (Debian's
	// redis-sentinel package).
	sentinelBinary = "redis-sentinel"
	// MasterName is the name under which the sentinels of StartSentinel
	// monitor the primary (the master parameter of URL).
	MasterName = "tgmaster"
	// sentinelCount is how many sentinels watch the primary; quorum of
	// them must agree that it is down.
	sentinelCount = 3
	quorum        = 2
	// downAfter and failoverTimeout make a failover take seconds: a
	// primary that answers nothing for downAfter is down.
	downAfter       = 1000 * time.Millisecond
	failoverTimeout = 5 * time.Second
	// topologyTimeout bounds the wait for the sentinels to agree on the
	// topology (at start and after a failover). Sentinels discover each
	// other through hello messages every 2 s.
	topologyTimeout = 30 * time.Second
)

// Sentinel is a primary, a replica and three sentinels on loopback ports,
// the smallest deployment in which Redis Sentinel fails over: one
// primary, one replica that replicates from it, and sentinels with a
// quorum of 2 that promote the replica when the primary is down (after
// one second without an answer) or when asked (Failover). Its methods
// are safe for concurrent use.
type Sentinel struct {
	sentinels []*Server

	mu      sync.Mutex
	primary *Server // the node the sentinels name as the master now
	replica *Server
}

// StartSentinel runs a Sentinel deployment for tb and stops it when tb
// ends. It fails tb (never skips) when redis-server or redis-sentinel is
// missing or the deployment does not come up. It returns once the
// sentinels agree on the primary, see the replica and each other, and the
// replica is in sync.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	dir := tb.TempDir()
	s, err := startSentinel(dir)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartSentinelMain is StartSentinel for TestMain (or for a deployment
// that a package's tests share): it returns the deployment and a function
// that stops it and removes its directory.
func StartSentinelMain() (*Sentinel, func(), error) {
	return inTempDir("redistest-sentinel-", startSentinel)
}

// dataNodeConf is the config file of a primary or replica: the sentinels
// rewrite it (CONFIG REWRITE) when they reconfigure the node, and a node
// started without one refuses that.
const dataNodeConf = "# redistest: written by the sentinels\n"

// dataNodeArgs make a full resynchronisation quick: the primary streams
// its snapshot without waiting for more replicas.
var dataNodeArgs = []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}

// startSentinel starts the deployment in dir, stopping what it started
// when a part does not come up.
func startSentinel(dir string) (_ *Sentinel, err error) {
	if _, err := exec.LookPath(sentinelBinary); err != nil {
		return nil, fmt.Errorf("%s not found on PATH (install the redis-sentinel package): %w", sentinelBinary, err)
	}
	s := &Sentinel{}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.primary, err = start(dir, options{conf: dataNodeConf, args: dataNodeArgs}); err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	replicaArgs := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.primary.port)}, dataNodeArgs...)
	if s.replica, err = start(dir, options{conf: dataNodeConf, args: replicaArgs}); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		MasterName, s.primary.port, quorum, downAfter.Milliseconds(), failoverTimeout.Milliseconds())
	for i := range sentinelCount {
		sn, err := start(dir, options{conf: conf, sentinel: true})
		if err != nil {
			return nil, fmt.Errorf("sentinel %d: %w", i+1, err)
		}
		s.sentinels = append(s.sentinels, sn)
	}
	if err := s.waitTopology(s.primary, s.replica); err != nil {
		return nil, err
	}
	return s, nil
}

// URL returns the redis-sentinel:// URL of the deployment: the three
// sentinels and the master's name.
func (s *Sentinel) URL() string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "?master=" + MasterName
}

// Primary returns the node that the sentinels name as the master now.
func (s *Sentinel) Primary() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary
}

// Replica returns the node that replicates from Primary.
func (s *Sentinel) Replica() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replica
}

// Sentinels returns the three sentinels.
func (s *Sentinel) Sentinels() []*Server { return s.sentinels }

// FlushAll empties every database of the primary and waits until the
// replica has applied it too.
func (s *Sentinel) FlushAll(tb testing.TB) {
	tb.Helper()
	p, r := s.Primary(), s.Replica()
	p.FlushAll(tb)
	if err := waitReplicated(p, r); err != nil {
		tb.Fatalf("redistest: after FLUSHALL: %v", err)
	}
}

// Failover asks a sentinel to promote the replica (SENTINEL FAILOVER) and
// waits until every sentinel names the new primary, sees the old one as
// its replica and the old primary replicates from the new one, in sync.
// Primary and Replica then return the swapped nodes.
func (s *Sentinel) Failover(tb testing.TB) {
	tb.Helper()
	oldPrimary, oldReplica := s.Primary(), s.Replica()
	if reply, err := s.sentinels[0].do("SENTINEL", "FAILOVER", MasterName); err != nil || reply != "OK" {
		tb.Fatalf("redistest: SENTINEL FAILOVER: reply %q, error %v", reply, err)
	}
	if err := s.waitTopology(oldReplica, oldPrimary); err != nil {
		tb.Fatalf("redistest: after SENTINEL FAILOVER: %v", err)
	}
	s.mu.Lock()
	s.primary, s.replica = oldReplica, oldPrimary
	s.mu.Unlock()
}

// Stop stops the sentinels first (so that none fails over a node that is
// going away), then the nodes.
func (s *Sentinel) Stop() {
	for _, sn := range s.sentinels {
		sn.Stop()
	}
	s.mu.Lock()
	p, r := s.primary, s.replica
	s.mu.Unlock()
	for _, n := range []*Server{r, p} {
		if n != nil {
			n.Stop()
		}
	}
}

// waitTopology waits until every sentinel names primary as the master
// with one replica and two other sentinels, and replica replicates from
// primary with its link up and its offset caught up.
func (s *Sentinel) waitTopology(primary, replica *Server) error {
	want := fmt.Sprintf("name=%s,status=ok,address=%s,slaves=1,sentinels=%d", MasterName, primary.Addr(), sentinelCount)
	deadline := time.Now().Add(topologyTimeout)
	for _, sn := range s.sentinels {
		for {
			info, err := sn.do("INFO", "sentinel")
			if err == nil && strings.Contains(info, want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sentinel %s does not report %q within %v: %q, %v", sn.Addr(), want, topologyTimeout, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return waitReplicated(primary, replica)
}

// waitReplicated waits until replica replicates from primary, with its
// link up, and has applied everything primary has written.
func waitReplicated(primary, replica *Server) error {
	deadline := time.Now().Add(topologyTimeout)
	for {
		err := replicated(primary, replica)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s not in sync with %s within %v: %w", replica.Addr(), primary.Addr(), topologyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicated says why replica is not (yet) a synced replica of primary.
func replicated(primary, replica *Server) error {
	pInfo, err := primary.do("INFO", "replication")
	if err != nil {
		return err
	}
	rInfo, err := replica.do("INFO", "replication")
	if err != nil {
		return err
	}
	p, r := infoFields(pInfo), infoFields(rInfo)
	switch {
	case p["role"] != "master":
		return fmt.Errorf("primary's role is %q", p["role"])
	case r["role"] != "slave" || r["master_port"] != strconv.Itoa(primary.port):
		return fmt.Errorf("replica's role is %q of port %q", r["role"], r["master_port"])
	case r["master_link_status"] != "up":
		return errors.New("replica's link is down")
	case r["slave_repl_offset"] != p["master_repl_offset"]:
		return fmt.Errorf("replica at offset %s, primary at %s", r["slave_repl_offset"], p["master_repl_offset"])
	}
	return nil
}

// infoFields parses the "key:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	fields := make(map[string]string)
	for line := range strings.SplitSeq(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields
}
