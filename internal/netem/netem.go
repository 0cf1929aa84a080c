// Package netem emulates a wide-area link in user space for UDP traffic.
//
// A Forwarder listens on one UDP socket and relays datagrams between its
// clients and one target address, the way a NAT does: each client (source
// address) gets a socket of its own towards the target, so the target sees
// one stable address per client and its replies find the way back. On the
// way, every datagram passes a Link for its direction, which applies in
// this order:
//
//   - a rate limit: a token bucket (Rate bits per second, Burst bytes deep)
//     with a FIFO queue of at most Queue bytes in front of it; a datagram
//     that does not fit in the queue is dropped (tail drop, as a router
//     does);
//   - random loss: the datagram is lost with probability Loss after it has
//     used its share of the rate (it was sent, the wire lost it); the draws
//     come from a PCG generator seeded with Config.Seed, so the same
//     traffic loses the same datagrams;
//   - a one-way delay: the datagram is delivered Delay after it left the
//     bucket. Delivery order is the order of arrival.
//
// It exists because the kernels the tests run on may have no sch_netem
// (`tc qdisc add … netem` fails with "Specified qdisc kind is unknown"):
// tbf can shape rate, but nothing in the kernel then adds delay or loss.
// The shaping is computed, not timed (the bucket's state is advanced to the
// arrival time of each datagram), so only the final delivery depends on
// the timer's accuracy, and delivery is never early.
package netem

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Defaults for a Link's zero fields.
const (
	// DefaultBurst is the token bucket's depth: two full-size datagrams.
	DefaultBurst = 3000
	// DefaultQueue is how many bytes may wait for the bucket: 52 ms at
	// 10 Mbit/s, about what a home router buffers.
	DefaultQueue = 64 << 10
	// DefaultMaxSessions bounds the clients a Forwarder serves at once;
	// datagrams from further clients are dropped.
	DefaultMaxSessions = 1024
	// maxPending bounds the datagrams in one direction's delay line (a link
	// without a rate limit could otherwise buffer without bound); beyond
	// it datagrams are dropped as overflow.
	maxPending = 1 << 16
	// maxDatagram is the largest datagram relayed.
	maxDatagram = 64 << 10
	// socketBuffer is the kernel buffer asked for on every socket (the
	// kernel caps it at net.core.rmem_max / wmem_max): while the
	// forwarder waits for the CPU, datagrams wait there instead of being
	// dropped, which would look like loss the link did not ask for.
	socketBuffer = 4 << 20
)

// Link is what one direction of the emulated path does to datagrams. The
// zero Link delivers everything at once.
type Link struct {
	// Delay is the one-way delay added to every datagram (RTT/2 for a
	// symmetric path).
	Delay time.Duration
	// Loss is the probability that a datagram is lost, in [0, 1).
	Loss float64
	// Rate is the bits per second the link carries; 0 is unlimited.
	Rate int64
	// Burst is the token bucket's depth in bytes; 0 is DefaultBurst.
	Burst int
	// Queue is how many bytes may wait for the bucket before datagrams are
	// dropped; 0 is DefaultQueue.
	Queue int
}

// Config is a Forwarder's two directions and the seed of its loss.
type Config struct {
	// ToTarget applies to datagrams from a client to the target,
	// ToClient to the replies.
	ToTarget, ToClient Link
	// Seed seeds the loss draws: session i's direction d (0 to the target,
	// 1 to the client) draws from PCG(Seed, 2i+d), sessions numbered from
	// 0 in order of their first datagram.
	Seed uint64
	// MaxSessions bounds the clients served; 0 is DefaultMaxSessions.
	MaxSessions int
}

// Symmetric is the config of a path with round-trip time rtt: each
// direction delays rtt/2, loses loss of its datagrams and carries rate bits
// per second (0: unlimited).
func Symmetric(rtt time.Duration, loss float64, rate int64, seed uint64) Config {
	l := Link{Delay: rtt / 2, Loss: loss, Rate: rate}
	return Config{ToTarget: l, ToClient: l, Seed: seed}
}

func (l Link) validate(name string) error {
	switch {
	case l.Delay < 0:
		return fmt.Errorf("netem: %s: negative delay %s", name, l.Delay)
	case l.Loss < 0 || l.Loss >= 1:
		return fmt.Errorf("netem: %s: loss %v is not in [0, 1)", name, l.Loss)
	case l.Rate < 0:
		return fmt.Errorf("netem: %s: negative rate %d", name, l.Rate)
	case l.Burst < 0 || l.Queue < 0:
		return fmt.Errorf("netem: %s: negative burst or queue", name)
	}
	return nil
}

// Stats counts what one direction did. Every datagram received is either
// delivered, lost, dropped as overflow, unsent, or still in flight.
type Stats struct {
	// Packets and Bytes were received from the sending side.
	Packets, Bytes int64
	// Delivered and DeliveredBytes were written to the receiving side.
	Delivered, DeliveredBytes int64
	// Lost were dropped by random loss.
	Lost int64
	// Overflow were dropped because the queue (or the delay line, or the
	// session table) was full.
	Overflow int64
	// Unsent could not be written to the receiver (its port was closed).
	Unsent int64
	// QueuePeak is the most bytes that waited for the bucket at once.
	QueuePeak int
}

func (s *Stats) add(o Stats) {
	s.Packets += o.Packets
	s.Bytes += o.Bytes
	s.Delivered += o.Delivered
	s.DeliveredBytes += o.DeliveredBytes
	s.Lost += o.Lost
	s.Overflow += o.Overflow
	s.Unsent += o.Unsent
	s.QueuePeak = max(s.QueuePeak, o.QueuePeak)
}

// verdict is what the shaper decided for one datagram.
type verdict int

const (
	deliver verdict = iota
	lost
	overflow
)

// shaper is one direction's rate limit and loss, advanced by the arrival
// time of each datagram; it does no I/O and reads no clock.
type shaper struct {
	link  Link
	burst float64
	queue int
	rng   *rand.Rand

	tokens    float64   // bytes in the bucket at time last
	last      time.Time // when tokens was computed
	busyUntil time.Time // when the last admitted datagram left the bucket
	waiting   []departure
	queued    int // bytes in waiting
	stats     Stats
}

type departure struct {
	at   time.Time
	size int
}

func newShaper(l Link, seed, stream uint64) *shaper {
	s := &shaper{link: l, burst: float64(l.Burst), queue: l.Queue, rng: rand.New(rand.NewPCG(seed, stream))}
	if l.Burst == 0 {
		s.burst = DefaultBurst
	}
	if l.Queue == 0 {
		s.queue = DefaultQueue
	}
	s.tokens = s.burst
	return s
}

// admit decides the fate of a datagram of size bytes arriving at now, and
// when it is to be delivered. Arrival times must not go backwards.
func (s *shaper) admit(now time.Time, size int) (time.Time, verdict) {
	s.stats.Packets++
	s.stats.Bytes += int64(size)
	dep := now
	if s.link.Rate > 0 {
		for len(s.waiting) > 0 && !s.waiting[0].at.After(now) {
			s.queued -= s.waiting[0].size
			s.waiting = s.waiting[1:]
		}
		if s.queued > 0 && s.queued+size > s.queue {
			s.stats.Overflow++
			return time.Time{}, overflow
		}
		start := now
		if s.busyUntil.After(start) {
			start = s.busyUntil
		}
		if s.last.IsZero() {
			s.last = start
		}
		bytesPerSec := float64(s.link.Rate) / 8
		s.tokens = min(s.burst, s.tokens+start.Sub(s.last).Seconds()*bytesPerSec)
		s.last = start
		dep = start
		if need := float64(size) - s.tokens; need > 0 {
			dep = start.Add(time.Duration(need / bytesPerSec * float64(time.Second)))
			s.tokens, s.last = 0, dep
		} else {
			s.tokens -= float64(size)
		}
		s.busyUntil = dep
		if dep.After(now) {
			s.waiting = append(s.waiting, departure{dep, size})
			s.queued += size
			s.stats.QueuePeak = max(s.stats.QueuePeak, s.queued)
		}
	}
	if s.link.Loss > 0 && s.rng.Float64() < s.link.Loss {
		s.stats.Lost++
		return time.Time{}, lost
	}
	return dep.Add(s.link.Delay), deliver
}

// pipe is one direction of one session: the shaper and the delay line of
// datagrams waiting to be delivered, drained by its own goroutine.
type pipe struct {
	mu      sync.Mutex
	sh      *shaper
	pending []packet
	wake    chan struct{}
	write   func([]byte) error
}

type packet struct {
	at time.Time
	b  []byte
}

func newPipe(sh *shaper, write func([]byte) error) *pipe {
	return &pipe{sh: sh, wake: make(chan struct{}, 1), write: write}
}

// push shapes a datagram that arrived now and queues it for delivery.
func (p *pipe) push(now time.Time, b []byte) {
	p.mu.Lock()
	at, v := p.sh.admit(now, len(b))
	if v == deliver && len(p.pending) >= maxPending {
		p.sh.stats.Overflow++
		v = overflow
	}
	if v == deliver {
		p.pending = append(p.pending, packet{at, b})
	}
	p.mu.Unlock()
	if v == deliver {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *pipe) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sh.stats
}

// run delivers pending datagrams at their time until done closes.
// Delivery times never decrease along the queue (departures from the
// bucket are in order and the delay is constant), so only the head is
// waited for.
func (p *pipe) run(done <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var head packet
		has := len(p.pending) > 0
		if has {
			head = p.pending[0]
		}
		p.mu.Unlock()
		if !has {
			select {
			case <-p.wake:
				continue
			case <-done:
				return
			}
		}
		if d := time.Until(head.at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-done:
				return
			}
			continue
		}
		// Counted before the write, so that whoever reads the datagram
		// finds it counted.
		p.mu.Lock()
		p.pending[0] = packet{}
		p.pending = p.pending[1:]
		if len(p.pending) == 0 {
			p.pending = nil // let the backing array go
		}
		p.sh.stats.Delivered++
		p.sh.stats.DeliveredBytes += int64(len(head.b))
		p.mu.Unlock()
		if p.write(head.b) != nil {
			// The receiver's port is closed (or the socket is): the
			// datagram is gone, as on a wire.
			p.mu.Lock()
			p.sh.stats.Delivered--
			p.sh.stats.DeliveredBytes -= int64(len(head.b))
			p.sh.stats.Unsent++
			p.mu.Unlock()
		}
	}
}

// session is one client: its socket towards the target and a pipe each way.
type session struct {
	upstream *net.UDPConn
	toTarget *pipe
	toClient *pipe
}

// Forwarder relays UDP datagrams between clients and a target through an
// emulated link. Close stops it.
type Forwarder struct {
	conn   *net.UDPConn
	target *net.UDPAddr
	cfg    Config
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session
	refused  int64 // datagrams from clients beyond MaxSessions
	closed   bool
}

// Listen starts a Forwarder on the UDP address listen (such as
// "127.0.0.1:0") relaying to target (host:port).
func Listen(listen, target string, cfg Config) (*Forwarder, error) {
	if err := cfg.ToTarget.validate("to target"); err != nil {
		return nil, err
	}
	if err := cfg.ToClient.validate("to client"); err != nil {
		return nil, err
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("netem: target %q: %w", target, err)
	}
	laddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("netem: listen address %q: %w", listen, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	bigBuffers(conn)
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	f := &Forwarder{conn: conn, target: taddr, cfg: cfg, done: make(chan struct{}), sessions: map[string]*session{}}
	f.wg.Add(1)
	go f.readClients()
	return f, nil
}

// Addr is the address clients send to.
func (f *Forwarder) Addr() *net.UDPAddr { return f.conn.LocalAddr().(*net.UDPAddr) }

// Target is the address datagrams are relayed to.
func (f *Forwarder) Target() *net.UDPAddr { return f.target }

// Sessions is how many clients the Forwarder has served.
func (f *Forwarder) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

// Stats sums each direction over all sessions; datagrams refused because
// the session table was full count as overflow towards the target.
func (f *Forwarder) Stats() (toTarget, toClient Stats) {
	f.mu.Lock()
	ss := make([]*session, 0, len(f.sessions))
	for _, s := range f.sessions {
		ss = append(ss, s)
	}
	toTarget.Overflow = f.refused
	toTarget.Packets = f.refused
	f.mu.Unlock()
	for _, s := range ss {
		toTarget.add(s.toTarget.stats())
		toClient.add(s.toClient.stats())
	}
	return toTarget, toClient
}

// Close stops relaying, drops what is in flight and closes every socket.
// It is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	err := f.conn.Close()
	for _, s := range f.sessions {
		_ = s.upstream.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

// readClients reads datagrams from clients and hands each to its session.
func (f *Forwarder) readClients() {
	defer f.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := f.conn.ReadFromUDP(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP-reported errors: keep relaying
		}
		s := f.session(from)
		if s == nil {
			continue
		}
		s.toTarget.push(now, append([]byte(nil), buf[:n]...))
	}
}

// session returns from's session, starting it on its first datagram; nil
// when the table is full or the Forwarder is closed.
func (f *Forwarder) session(from *net.UDPAddr) *session {
	key := from.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.sessions[key]; ok {
		return s
	}
	if f.closed {
		return nil
	}
	if len(f.sessions) >= f.cfg.MaxSessions {
		f.refused++
		return nil
	}
	up, err := net.DialUDP("udp", nil, f.target)
	if err != nil {
		f.refused++
		return nil
	}
	bigBuffers(up)
	i := uint64(len(f.sessions))
	client := *from
	s := &session{upstream: up}
	s.toTarget = newPipe(newShaper(f.cfg.ToTarget, f.cfg.Seed, 2*i), func(b []byte) error {
		_, err := up.Write(b)
		return err
	})
	s.toClient = newPipe(newShaper(f.cfg.ToClient, f.cfg.Seed, 2*i+1), func(b []byte) error {
		_, err := f.conn.WriteToUDP(b, &client)
		return err
	})
	f.sessions[key] = s
	f.wg.Add(3)
	go func() { defer f.wg.Done(); s.toTarget.run(f.done) }()
	go func() { defer f.wg.Done(); s.toClient.run(f.done) }()
	go func() { defer f.wg.Done(); f.readTarget(s) }()
	return s
}

// bigBuffers asks for socketBuffer each way; a smaller buffer (an
// unprivileged limit) only makes drops under load likelier.
func bigBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
}

// readTarget reads the target's replies to one session.
func (f *Forwarder) readTarget(s *session) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := s.upstream.Read(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED while the target is down: keep going
		}
		s.toClient.push(now, append([]byte(nil), buf[:n]...))
	}
}
