package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// client is one WebSocket connection of the fleet, logged in as uid.
type client struct {
	ws   *websocket.Conn
	node int
	dead atomic.Bool
	// dropped: the bench closed it on purpose (storm, resume-tls), which
	// is not a lost connection.
	dropped atomic.Bool

	wmu sync.Mutex // one data-frame writer at a time (gorilla's rule)
}

// fleet is the generator's N connections and their readers. Connection i
// goes to node i mod the number of nodes.
type fleet struct {
	targets  []string            // WebSocket URL by node
	wire     string              // json, text or centrifugo
	secret   string              // signs login tokens, if any
	dialers  []*websocket.Dialer // one per source address
	perAddr  int
	trackers *trackers

	uids    []string  // "u<i>", made once
	clients []*client // by index; nil where the connection failed
	live    atomic.Int64
	readers sync.WaitGroup
	closing atomic.Bool
	pongs   atomic.Int64 // Centrifugo pings answered

	mu    sync.Mutex
	phase string
	lost  map[string]int // connections lost before the end, by "phase: reason"
}

const (
	readBufSize  = 1024 // gorilla's per-connection read buffer
	frameBufSize = 512  // a receiver's copy of a frame: bench frames are ~150 bytes
	dialTimeout  = 15 * time.Second
	loginTimeout = 10 * time.Second
	writeTimeout = 5 * time.Second
)

// newFleet prepares dialers for n connections to target, spread over
// source addresses from base, perAddr connections each.
func newFleet(cfg *config, tr *trackers) (*fleet, error) {
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	f := &fleet{
		targets:  cfg.wsURLs,
		wire:     cfg.protocol,
		secret:   cfg.jwtSecret,
		perAddr:  cfg.perAddr,
		trackers: tr,
		uids:     make([]string, cfg.n),
		clients:  make([]*client, cfg.n),
		lost:     make(map[string]int),
		phase:    "connect",
	}
	for i := range f.uids {
		f.uids[i] = "u" + strconv.Itoa(i)
	}
	addrs, err := sourceAddrs(cfg.srcBase, cfg.n, cfg.perAddr)
	if err != nil {
		return nil, err
	}
	pool := &sync.Pool{}
	for _, ip := range addrs {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: dialTimeout}
		f.dialers = append(f.dialers, &websocket.Dialer{
			// tcp4: the source addresses are IPv4, so "localhost" must be too.
			NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return nd.DialContext(ctx, "tcp4", addr)
			},
			HandshakeTimeout: dialTimeout,
			ReadBufferSize:   readBufSize,
			WriteBufferSize:  512,
			WriteBufferPool:  pool,
			TLSClientConfig:  tlsConf,
		})
	}
	return f, nil
}

// sourceAddrs lists the loopback addresses from base that n connections
// need at perAddr each.
func sourceAddrs(base string, n, perAddr int) ([]net.IP, error) {
	ip := net.ParseIP(base).To4()
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("source address %q is not an IPv4 loopback address", base)
	}
	count := (n + perAddr - 1) / perAddr
	if int(ip[3])+count-1 > 254 {
		return nil, fmt.Errorf("%d connections at %d per address need %d source addresses from %s: past 127.x.x.254",
			n, perAddr, count, base)
	}
	out := make([]net.IP, count)
	for k := range out {
		out[k] = net.IPv4(ip[0], ip[1], ip[2], ip[3]+byte(k))
	}
	return out, nil
}

// tlsConfig is the client TLS configuration of wss targets.
func (cfg *config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.insecure}
	if cfg.ca != "" {
		pem, err := os.ReadFile(cfg.ca)
		if err != nil {
			return nil, fmt.Errorf("-ca: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: %s holds no PEM certificate", cfg.ca)
		}
	}
	return tc, nil
}

func (f *fleet) setPhase(name string) {
	f.mu.Lock()
	f.phase = name
	f.mu.Unlock()
}

func (f *fleet) noteLost(reason string) {
	f.mu.Lock()
	f.lost[f.phase+": "+reason]++
	f.mu.Unlock()
}

// lostSoFar is a copy of the connections lost by reason.
func (f *fleet) lostSoFar() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.lost))
	for k, v := range f.lost {
		out[k] = v
	}
	return out
}

// node is the node connection i goes to.
func (f *fleet) node(i int) int { return i % len(f.targets) }

// dial opens connection i and logs it in; on success its reader runs. A
// non-nil tc replaces the dialer's TLS configuration (resume-tls gives each
// connection its own session cache); resumed tells whether the TLS session
// was resumed.
func (f *fleet) dial(ctx context.Context, i int, tc *tls.Config) (resumed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := f.dialers[i/f.perAddr]
	if tc != nil {
		dd := *d
		dd.TLSClientConfig = tc
		d = &dd
	}
	ws, resp, err := d.DialContext(ctx, f.targets[f.node(i)], nil)
	if err != nil {
		if resp != nil {
			return false, fmt.Errorf("handshake refused: %s", resp.Status)
		}
		return false, err
	}
	rest, err := f.login(ws, f.uids[i])
	if err != nil {
		ws.Close()
		return false, err
	}
	if t, ok := ws.NetConn().(*tls.Conn); ok {
		resumed = t.ConnectionState().DidResume
	}
	c := &client{ws: ws, node: f.node(i)}
	f.clients[i] = c
	f.live.Add(1)
	for _, line := range rest {
		f.centrifugoLine(c, line)
	}
	f.readers.Add(1)
	go f.read(c)
	return resumed, nil
}

// login sends the first frame and waits for the server's greeting; for
// Centrifugo it returns the lines that shared the connect reply's frame.
func (f *fleet) login(ws *websocket.Conn, uid string) ([][]byte, error) {
	frame := loginFrame(f.wire, uid, loginToken(f.wire, f.secret, uid))
	deadline := time.Now().Add(loginTimeout)
	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(deadline)
	_, msg, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	rest, err := checkGreeting(f.wire, uid, msg)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	return rest, ws.SetWriteDeadline(time.Time{})
}

// read is a connection's receiver: it accounts for every frame without
// allocating beyond gorilla's own small reader per message. WebSocket pings
// are answered by gorilla's default handler while it reads, Centrifugo's
// {} pings by centrifugoLine.
func (f *fleet) read(c *client) {
	defer f.readers.Done()
	buf := make([]byte, frameBufSize)
	var onLine func([]byte)
	if f.wire == protoCentrifugo {
		onLine = func(line []byte) { f.centrifugoLine(c, line) }
	}
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.dead.Store(true)
			f.live.Add(-1)
			if !f.closing.Load() && !c.dropped.Load() {
				f.noteLost(reason(err))
			}
			c.ws.NetConn().Close()
			return
		}
		if onLine != nil {
			_ = readLines(r, buf, onLine) // NextReader reports the connection's error
			continue
		}
		n, err := readFrame(r, buf)
		if err != nil {
			continue // NextReader reports the connection's error
		}
		f.trackers.deliver(buf[:n], time.Now().UnixNano())
	}
}

// centrifugoLine handles one line of a Centrifugo frame: a push is
// accounted for, a ping answered.
func (f *fleet) centrifugoLine(c *client, line []byte) {
	switch centrifugoKind(line) {
	case cfPush:
		f.trackers.deliver(line, time.Now().UnixNano())
	case cfPing:
		f.pongs.Add(1)
		_ = c.write([]byte("{}"))
	default:
		f.trackers.other.Add(1)
	}
}

// readFrame reads a message into buf, keeping its first len(buf) bytes.
func readFrame(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			// Longer than any bench frame: keep the head, drop the rest.
			var tail [256]byte
			for {
				if _, err := r.Read(tail[:]); err != nil {
					if err == io.EOF {
						return n, nil
					}
					return n, err
				}
			}
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// write sends a data frame on the connection.
func (c *client) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// randomLive picks a live connection at random, or -1 when a few tries find
// none.
func (f *fleet) randomLive() int { return f.randomLiveOff(-1) }

// randomLiveOff picks a live connection at random that is not on node
// (-1: any node), or -1 when a few tries find none.
func (f *fleet) randomLiveOff(node int) int {
	for range 32 {
		i := rand.IntN(len(f.clients))
		if c := f.clients[i]; c != nil && !c.dead.Load() && c.node != node {
			return i
		}
	}
	return -1
}

// liveIndexes lists the live connections, at most max of them.
func (f *fleet) liveIndexes(max int) []int {
	var out []int
	for i, c := range f.clients {
		if len(out) == max {
			break
		}
		if c != nil && !c.dead.Load() {
			out = append(out, i)
		}
	}
	return out
}

// drop closes the connections idx names at once, without a close frame,
// as a network failure or a crashed client would (over TLS, without a
// close_notify either), and waits up to wait for their readers to end.
func (f *fleet) drop(idx []int, wait time.Duration) {
	want := f.live.Load()
	for _, i := range idx {
		c := f.clients[i]
		if c == nil || c.dead.Load() {
			continue
		}
		c.dropped.Store(true)
		want--
		nc := c.ws.NetConn()
		if t, ok := nc.(*tls.Conn); ok {
			nc = t.NetConn()
		}
		nc.Close()
	}
	deadline := time.Now().Add(wait)
	for f.live.Load() > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// close ends every connection: a close frame first, so that the server
// closes its side (and holds the TIME_WAIT), then the sockets of those that
// did not answer within wait.
func (f *fleet) close(wait time.Duration) {
	f.closing.Store(true)
	jobs := make(chan *client)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for c := range jobs {
				msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
				_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			}
		})
	}
	for _, c := range f.clients {
		if c != nil && !c.dead.Load() {
			jobs <- c
		}
	}
	close(jobs)
	wg.Wait()
	done := make(chan struct{})
	go func() { f.readers.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(wait):
	}
	for _, c := range f.clients {
		if c != nil {
			c.ws.NetConn().Close()
		}
	}
	<-done
}

// reason names why a connection failed or ended, in few enough words that
// counting by reason groups alike failures.
func reason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Text != "" {
			return fmt.Sprintf("closed %d (%s)", ce.Code, ce.Text)
		}
		return fmt.Sprintf("closed %d", ce.Code)
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		switch errno {
		case syscall.EADDRNOTAVAIL, syscall.EADDRINUSE:
			return errno.Error() + " (source ports exhausted?)"
		case syscall.EMFILE, syscall.ENFILE:
			return errno.Error() + " (raise ulimit -n)"
		}
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return "tls: certificate not trusted (use -ca or -insecure)"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, websocket.ErrBadHandshake) {
		return "bad handshake"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "dial ") {
		s = s[i+2:] // drop the addresses, which differ per connection
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
