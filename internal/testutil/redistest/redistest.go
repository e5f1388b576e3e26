// Package redistest runs a real redis-server for tests.
//
// Tests that need Redis call Start, which fails the test (never skips it)
// when redis-server is missing or does not come up: a backend that is not
// tested must not look as if it passed. The server listens on a free
// loopback port, persists nothing (a cluster node keeps only its cluster
// config, in a temporary directory) and is killed when the test ends.
// StartCluster runs a one-node Redis Cluster instead, StartShardedCluster
// a cluster of three primaries that share the slots (cluster.go), and
// StartSentinel a primary, a replica and three sentinels (redis-sentinel)
// that fail over (sentinel.go).
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// binary is the server started; it must be on PATH.
	binary = "redis-server"
	// readyTimeout bounds the wait for a started server to answer PING.
	readyTimeout = 10 * time.Second
	// portAttempts is how many free ports are tried when the one picked is
	// taken by someone else between picking and binding it.
	portAttempts = 5
	// ioTimeout bounds one command sent by the helper itself.
	ioTimeout = 2 * time.Second
)

// Server is a redis-server child process on 127.0.0.1. Its methods are safe
// for concurrent use.
type Server struct {
	port int
	dir  string // working directory, holds the server log and cluster state
	opts options

	mu   sync.Mutex
	proc *process // nil while stopped
}

// options say how a Server's process is started. The zero value is a
// standalone redis-server that persists nothing.
type options struct {
	// cluster enables cluster mode (the node keeps its cluster config in
	// nodes-PORT.conf in its directory).
	cluster bool
	// claimSlots makes a cluster node serve all 16384 slots on its own
	// (StartCluster); without it the caller forms the cluster.
	claimSlots bool
	// args are more command-line options, appended after the defaults
	// (a later option wins), e.g. "--replicaof", "127.0.0.1", "6380".
	args []string
	// conf, when set, is written to a config file in the server's
	// directory that the process is started with (redis-sentinel needs
	// one it can rewrite).
	conf string
	// sentinel starts the process in Sentinel mode (redis-sentinel
	// CONF, the sentinel rewrites CONF); conf must then be set.
	sentinel bool
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Start runs a fresh redis-server for tb and kills it when tb ends. It
// fails tb with the reason (and the server's log) if the server cannot be
// started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return startTB(tb, options{})
}

// StartArgs is Start with more redis-server command-line options,
// appended after the defaults so that they win: StartArgs(t,
// "--appendonly", "yes") runs a server that keeps an append-only file in
// its temporary directory.
func StartArgs(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return startTB(tb, options{args: args})
}

// StartCluster is Start for a Redis Cluster of one node that serves all
// 16384 slots. A cluster client works with it as with a real cluster, and
// the server enforces the cluster's rules (no command or transaction
// across slots).
func StartCluster(tb testing.TB) *Server {
	tb.Helper()
	return startTB(tb, options{cluster: true, claimSlots: true})
}

// startTB starts a server in tb's temporary directory and stops it when tb
// ends.
func startTB(tb testing.TB, o options) *Server {
	tb.Helper()
	s, err := start(tb.TempDir(), o)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartMain is Start for TestMain, where there is no testing.TB: it returns
// the server and a function that stops it and removes its directory, to be
// called before os.Exit.
func StartMain() (*Server, func(), error) { return startMain(options{}) }

// StartClusterMain is StartCluster for TestMain; see StartMain.
func StartClusterMain() (*Server, func(), error) {
	return startMain(options{cluster: true, claimSlots: true})
}

// startMain starts a server in a directory of its own, which the returned
// stop function removes.
func startMain(o options) (*Server, func(), error) {
	return inTempDir("redistest-", func(dir string) (*Server, error) { return start(dir, o) })
}

// inTempDir runs start in a new temporary directory named after pattern
// (see os.MkdirTemp) and returns what it started and a function that
// stops that and removes the directory; the directory is removed at once
// if start fails.
func inTempDir[T interface{ Stop() }](pattern string, start func(dir string) (T, error)) (T, func(), error) {
	var zero T
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return zero, nil, fmt.Errorf("redistest: %w", err)
	}
	v, err := start(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return zero, nil, fmt.Errorf("redistest: %w", err)
	}
	stop := func() {
		v.Stop()
		_ = os.RemoveAll(dir)
	}
	return v, stop, nil
}

// start picks a free port and runs the server in dir, trying another port
// when the picked one was taken before the server could bind it.
func start(dir string, o options) (*Server, error) {
	if _, err := exec.LookPath(binary); err != nil {
		return nil, fmt.Errorf("%s not found on PATH (install the redis-server package): %w", binary, err)
	}
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{port: port, dir: dir, opts: o}
		if lastErr = s.run(); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no server came up after %d attempts: %w", portAttempts, lastErr)
}

// freePort asks the kernel for a free loopback port. The port is released
// before the server binds it, so another process may take it in between;
// start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run starts redis-server on s.port and waits until it answers PING.
func (s *Server) run() error {
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.port))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor

	var args []string
	if s.opts.conf != "" {
		confPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.conf", s.port))
		if err := os.WriteFile(confPath, []byte(s.opts.conf), 0o600); err != nil {
			return err
		}
		args = append(args, confPath)
	}
	name := binary
	if s.opts.sentinel {
		name = sentinelBinary
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
	)
	if s.opts.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", s.port),
		)
	}
	args = append(args, s.opts.args...)
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()

	err = s.waitReady(p)
	if err == nil && s.opts.claimSlots {
		err = s.claimSlots()
	}
	if err != nil {
		p.kill()
		return fmt.Errorf("redis-server on port %d: %w\n--- server log ---\n%s", s.port, err, readLog(logPath))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls PING until it answers, the process exits or readyTimeout
// passes. A server that answers must be this process: another one may have
// taken the port between freePort and the start.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		reply, err := s.do("PING")
		if err == nil && reply == "PONG" {
			return s.checkPID(p.cmd.Process.Pid)
		}
		select {
		case <-p.done:
			return errors.New("exited before answering PING (port taken?)")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v (last error: %v)", readyTimeout, err)
		}
	}
}

// checkPID makes sure that the server on the port is process pid.
func (s *Server) checkPID(pid int) error {
	info, err := s.do("INFO", "server")
	if err != nil {
		return err
	}
	if !strings.Contains(info, fmt.Sprintf("process_id:%d\r\n", pid)) {
		return errors.New("another server answers on the port")
	}
	return nil
}

// claimSlots makes the node serve every slot (it keeps them across
// Restart in its cluster config file) and waits until the cluster is up.
func (s *Server) claimSlots() error {
	if _, err := s.do("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil && !strings.Contains(err.Error(), "busy") {
		return fmt.Errorf("claim slots: %w", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		info, err := s.do("CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ok within %v: %q, %v", readyTimeout, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readLog returns the server log for an error message.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return strings.TrimSpace(string(b))
}

// kill stops the process and waits until it has exited.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for database 0 of the server, or for a
// cluster (StartCluster) a redis-cluster:// URL.
func (s *Server) URL() string {
	if s.opts.cluster {
		return "redis-cluster://" + s.Addr()
	}
	return "redis://" + s.Addr() + "/0"
}

// running reports whether the server's process runs (it may be paused).
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Stop kills the server and waits until it has exited, so that clients see
// their connections closed. Data is lost. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart starts a stopped server again on the same port (and stops it
// first if it is running), for tests of a store that becomes unreachable
// and comes back. It comes back empty. It fails tb if the server does not
// come up.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	// The port was ours a moment ago; retry briefly in case the kernel or
	// a late client still holds it.
	var err error
	for range portAttempts {
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("redistest: restart: %v", err)
}

// Pause freezes the server (SIGSTOP): it keeps its connections and its
// port but answers nothing, as a server stuck on a slow disk or a host
// that stopped would, until Resume. It returns once the kernel reports
// the server stopped. Stop and the end of the test kill a paused server
// as well.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	pid := s.signal(tb, sigStop)
	if err := waitStopped(pid, readyTimeout); err != nil {
		tb.Fatalf("redistest: pause: %v", err)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.signal(tb, sigCont)
}

// signal sends sig to the running server and returns its process ID.
func (s *Server) signal(tb testing.TB, sig os.Signal) int {
	tb.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil || sig == nil {
		tb.Fatalf("redistest: signal %v to a server that is not running, or on a system without it", sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("redistest: %v: %v", sig, err)
	}
	return p.cmd.Process.Pid
}

// FlushAll empties every database of the server.
func (s *Server) FlushAll(tb testing.TB) {
	tb.Helper()
	reply, err := s.do("FLUSHALL")
	if err != nil || reply != "OK" {
		tb.Fatalf("redistest: FLUSHALL on %s: reply %q, error %v", s.Addr(), reply, err)
	}
}

// do sends one command on a new connection and returns the reply: a
// status, an integer or a bulk string. The package talks RESP itself so
// that it does not depend on any Redis client.
func (s *Server) do(args ...string) (string, error) {
	v, err := s.doValue(args...)
	if err != nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: unexpected array reply", args[0])
	}
	return str, nil
}

// doStrings is do for a command whose reply is an array of strings.
func (s *Server) doStrings(args ...string) ([]string, error) {
	v, err := s.doValue(args...)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: reply %q is not an array", args[0], v)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		str, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: nested array in the reply", args[0])
		}
		out = append(out, str)
	}
	return out, nil
}

// doValue sends one command and returns the reply: a string (status,
// integer or bulk string) or an array of replies ([]any).
func (s *Server) doValue(args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads a status, error, integer, bulk string or array reply.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch kind, rest := line[0], line[1:]; kind {
	case '+', ':':
		return rest, nil
	case '-':
		return "", fmt.Errorf("server error: %s", rest)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected bulk reply %q", line)
		}
		buf := make([]byte, n+2) // with the closing CRLF
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected array reply %q", line)
		}
		arr := make([]any, 0, n)
		for range n {
			v, err := readReply(r)
			if err != nil {
				return "", err
			}
			arr = append(arr, v)
		}
		return arr, nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}
