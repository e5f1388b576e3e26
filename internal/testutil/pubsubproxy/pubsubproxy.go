// Package pubsubproxy is a TCP proxy for tests, between a Redis client and
// a real redis-server, that can silently break the client's pub/sub
// subscription: it stops forwarding, in both directions and without
// closing anything, on the subscriber connections (those that sent
// SUBSCRIBE) open at the time. To the client this is what a frozen
// server or a proxy that eats messages looks like, while its data
// connections and any new connection keep working.
package pubsubproxy

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy forwards a loopback port to a Redis server. Its methods are safe
// for concurrent use.
type Proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	conns []*conn
}

// conn is one client connection through the proxy.
type conn struct {
	subscriber bool
	frozen     bool
}

// Start listens on a free loopback port and forwards every connection to
// target (host:port) until tb ends; then the frozen connections are
// released and the listener closed.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pubsubproxy: %v", err)
	}
	p := &Proxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	tb.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.frozen = false
		}
		p.mu.Unlock()
		p.cond.Broadcast()
	})
	go p.serve()
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// FreezeSubscribers stops forwarding on the subscriber connections open
// now and returns how many there are. Connections made later are not
// frozen.
func (p *Proxy) FreezeSubscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.subscriber && !c.frozen {
			c.frozen = true
			n++
		}
	}
	return n
}

// serve accepts connections until the listener is closed.
func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

// pipe forwards one client connection.
func (p *Proxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &conn{}
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go p.copy(server, client, c, true)
	p.copy(client, server, c, false)
}

// copy forwards from src to dst, waiting while c is frozen; fromClient
// marks c as a subscriber when it sees SUBSCRIBE (a test proxy may match
// loosely: nothing else a store sends contains the word).
func (p *Proxy) copy(dst, src net.Conn, c *conn, fromClient bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if fromClient && bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
				c.subscriber = true
			}
			for c.frozen {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
