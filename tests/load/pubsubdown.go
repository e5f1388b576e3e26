package main

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"time"
)

// freezer is a TCP proxy to Redis that can hold back everything Redis
// sends on subscriber connections (those that sent SUBSCRIBE) while
// keeping them open: pub/sub is down, but nothing tells the node.
type freezer struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	cond   *sync.Cond
}

func startFreezer(target string) (*freezer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &freezer{l: l, target: target}
	f.cond = sync.NewCond(&f.mu)
	go f.serve()
	return f, nil
}

func (f *freezer) addr() string { return f.l.Addr().String() }

func (f *freezer) close() { _ = f.l.Close(); f.freeze(false) }

func (f *freezer) freeze(on bool) {
	f.mu.Lock()
	f.frozen = on
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *freezer) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		go f.pipe(c)
	}
}

func (f *freezer) pipe(client net.Conn) {
	server, err := net.Dial("tcp", f.target)
	if err != nil {
		_ = client.Close()
		return
	}
	var subscriber sync.Once
	isSub := make(chan struct{})
	go func() { // client -> server, watching for SUBSCRIBE
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
					subscriber.Do(func() { close(isSub) })
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = server.Close()
	}()
	buf := make([]byte, 32<<10)
	for { // server -> client, held back while frozen on subscriber connections
		n, err := server.Read(buf)
		if n > 0 {
			select {
			case <-isSub:
				f.mu.Lock()
				for f.frozen {
					f.cond.Wait()
				}
				f.mu.Unlock()
			default:
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = client.Close()
}

// pubsubDown measures refusal on node B while B's pub/sub is silently
// down: B must fall back on its cache TTL (ttl), so every refusal comes
// within about ttl of the revoke.
type pubsubDown struct {
	CacheTTL string  `json:"cache_ttl"`
	Revokes  int     `json:"revokes"`
	MaxMS    float64 `json:"max_ms"`
	MedianMS float64 `json:"median_ms"`
}

func measurePubsubDown(binary, dir, redisAddr, upstream string, a *gateway, tokens []revocable) (pubsubDown, error) {
	const ttl = 2 * time.Second
	f, err := startFreezer(redisAddr)
	if err != nil {
		return pubsubDown{}, err
	}
	defer f.close()
	b, err := startGateway(binary, dir, "redis://"+f.addr()+"/0", upstream, "cache_ttl 2s")
	if err != nil {
		return pubsubDown{}, err
	}
	defer b.stop()
	defer f.freeze(false)
	delays, err := revokeAndWait(a, b, tokens, 10*ttl, func() { f.freeze(true) }, 5*time.Millisecond)
	if err != nil {
		return pubsubDown{}, fmt.Errorf("with pub/sub down: %v", err)
	}
	for i := range delays {
		delays[i] /= 1e6 // milliseconds
	}
	out := pubsubDown{CacheTTL: ttl.String(), Revokes: len(delays)}
	for _, d := range delays {
		out.MaxMS = max(out.MaxMS, d)
	}
	out.MedianMS = median(delays)
	return out, nil
}
