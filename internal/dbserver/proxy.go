package dbserver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from its own loopback address to a target,
// and breaks them on demand: a test points a client at the proxy to cut its
// network (Cut), slow it (Delay) or move the address to another server
// (Redirect). Its methods are safe for concurrent use.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and every connection's goroutines

	// Set for an etcd cluster's peer proxies (RunEtcd), so that it cuts
	// the links of one member and keeps those between the others: who
	// dialed a connection (the name of a process
	// of a cluster, "" when unknown) and whether that dialer is cut off now.
	// from is slow (it reads /proc), refuse must be quick: it is asked with
	// mu held.
	from   func(client net.Conn) string
	refuse func(from string) bool

	mu     sync.Mutex
	target string
	cut    bool
	delay  time.Duration
	links  map[*link]struct{}
	closed bool
}

// link is one client connection and the proxy's connection to the target.
type link struct {
	client, server net.Conn
	from           string        // who dialed client, when the proxy asks
	done           chan struct{} // closed by close
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
	})
}

// NewProxy starts a proxy to target ("host:port") on a free loopback port.
// It is closed, with every connection through it, when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := listen(target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Listen starts a proxy to target on a free loopback port, as NewProxy
// does, for a program that is not a test; the caller closes it.
func Listen(target string) (*Proxy, error) { return listen(target, nil, nil) }

// listen starts a proxy to target; when from and refuse are given it also
// refuses, and closes on closeRefused, the connections whose dialer from
// names and refuse refuses.
func listen(target string, from func(net.Conn) string, refuse func(string) bool) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}, from: from, refuse: refuse}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address, "127.0.0.1:port", for clients to dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns where new connections go.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Conns returns the number of connections open through the proxy now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Cut closes every open connection and, until Restore, closes each new one
// as soon as it is accepted: clients see the connection reset, not a hang.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeLinks()
}

// Restore lets new connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Delay holds back every chunk of data forwarded, in either direction, for d
// before writing it on; 0 forwards at once. Chunks of one direction are
// forwarded in order, so each waits for those before it.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Redirect sends new connections to target and closes the open ones, as an
// IP address moving to another machine breaks them.
func (p *Proxy) Redirect(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.closeLinks()
}

// closeRefused closes the open connections that p.refuse refuses now.
func (p *Proxy) closeRefused() {
	p.mu.Lock()
	var refused []*link
	for l := range p.links {
		if p.refuses(l.from) {
			delete(p.links, l)
			refused = append(refused, l)
		}
	}
	p.mu.Unlock()
	for _, l := range refused {
		l.close()
	}
}

// refuses reports whether a connection that from dialed may not pass now.
// p.mu is held.
func (p *Proxy) refuses(from string) bool {
	return p.cut || p.closed || (p.refuse != nil && p.refuse(from))
}

func (p *Proxy) closeLinks() {
	p.mu.Lock()
	links := p.links
	p.links = map[*link]struct{}{}
	p.mu.Unlock()
	for l := range links {
		l.close()
	}
}

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.closeLinks()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects client to the target and forwards between them until
// either side closes or the proxy breaks the link.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	from := ""
	if p.from != nil {
		from = p.from(client)
	}
	p.mu.Lock()
	refuse, target := p.refuses(from), p.target
	p.mu.Unlock()
	if refuse {
		client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		client.Close() // the target is down: so is the proxy, for the client
		return
	}
	l := &link{client: client, server: server, from: from, done: make(chan struct{})}
	p.mu.Lock()
	// Cut, Redirect, close or a change of what refuse refuses may have
	// come while dialing; a change after this is closeRefused's to act on.
	refuse = p.refuses(from) || p.target != target
	if !refuse {
		p.links[l] = struct{}{}
	}
	p.mu.Unlock()
	if refuse {
		l.close()
		return
	}

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pump(l, server, client)
	}()
	p.pump(l, client, server)
}

// pump copies from src to dst, each chunk after the delay, and closes the
// link (both directions) when either fails.
func (p *Proxy) pump(l *link, dst, src net.Conn) {
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			if d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-timer.C:
				case <-l.done:
					timer.Stop()
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
