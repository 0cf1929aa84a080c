package netem

import (
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// The bucket lets Burst bytes through at once, then Rate: 1,000 datagrams
// of 1,250 bytes offered at one instant leave over (1,250,000 - Burst) / Rate.
func TestShaperRateOfABurst(t *testing.T) {
	s := newShaper(Link{Rate: 10_000_000, Queue: 2 << 20}, 1, 0)
	var last time.Time
	for i := range 1000 {
		at, v := s.admit(t0, 1250)
		require.Equal(t, deliver, v)
		require.False(t, at.Before(last), "datagram %d delivered before the one ahead of it", i)
		last = at
	}
	want := time.Duration(float64(1_250_000-DefaultBurst) / 1_250_000 * float64(time.Second))
	require.InDelta(t, want.Seconds(), last.Sub(t0).Seconds(), 1e-6)
	require.Equal(t, int64(1000), s.stats.Packets)
	require.Zero(t, s.stats.Overflow)
}

// Offered more than it carries, the link delivers its rate (plus what the
// bucket and the queue held) and drops the rest at the queue.
func TestShaperSteadyOverloadDeliversTheRate(t *testing.T) {
	l := Link{Rate: 10_000_000} // 1.25 MB/s, default burst and queue
	s := newShaper(l, 1, 0)
	const size, every = 1250, 500 * time.Microsecond // 2.5 MB/s offered
	var delivered int
	var lastAt time.Time
	for i := range 4000 { // 2 s
		at, v := s.admit(t0.Add(time.Duration(i)*every), size)
		if v == deliver {
			delivered += size
			lastAt = at
		}
	}
	// Everything admitted has left by lastAt, at the rate after the burst.
	carried := lastAt.Sub(t0).Seconds()*1_250_000 + DefaultBurst
	require.InDelta(t, carried, float64(delivered), size)
	// The queue was full at the end: the last datagram left a queue's
	// worth of time after the 2 s of offered load.
	require.InDelta(t, 2.0+float64(DefaultQueue)/1_250_000, lastAt.Sub(t0).Seconds(), 0.002)
	require.Greater(t, s.stats.Overflow, int64(1500))
	require.LessOrEqual(t, s.stats.QueuePeak, DefaultQueue)
	require.Greater(t, s.stats.QueuePeak, DefaultQueue-2*size)
}

// Tail drop: once Queue bytes wait, further datagrams are dropped; the
// bucket's Burst passes first without waiting.
func TestShaperQueueDropsOnOverflow(t *testing.T) {
	s := newShaper(Link{Rate: 10_000_000, Burst: 3000, Queue: 10_000}, 1, 0)
	var ok int
	for range 100 {
		if _, v := s.admit(t0, 1000); v == deliver {
			ok++
		}
	}
	require.Equal(t, 3+10, ok, "3 datagrams through the bucket, 10 in the queue")
	require.Equal(t, int64(87), s.stats.Overflow)
	require.Equal(t, 10_000, s.stats.QueuePeak)
	// Once the queue has drained (10 × 0.8 ms), datagrams pass again.
	_, v := s.admit(t0.Add(8*time.Millisecond), 1000)
	require.Equal(t, deliver, v)
}

// Loss is drawn from the seeded generator: the same seed loses the same
// datagrams, another seed others, and the share is what was asked.
func TestShaperLossIsSeeded(t *testing.T) {
	pattern := func(seed uint64) []int {
		s := newShaper(Link{Loss: 0.01}, seed, 0)
		var lostAt []int
		for i := range 100_000 {
			if _, v := s.admit(t0, 1200); v == lost {
				lostAt = append(lostAt, i)
			}
		}
		require.Equal(t, int64(len(lostAt)), s.stats.Lost)
		return lostAt
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	for _, p := range [][]int{a, c} {
		require.InDelta(t, 1000, len(p), 150, "1%% of 100,000")
	}
}

// Without a rate limit every datagram is delivered exactly Delay later.
func TestShaperDelay(t *testing.T) {
	s := newShaper(Link{Delay: 75 * time.Millisecond}, 1, 0)
	for i := range 10 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		at, v := s.admit(now, 1500)
		require.Equal(t, deliver, v)
		require.Equal(t, now.Add(75*time.Millisecond), at)
	}
}

// The delay line writes each datagram at its time, in order (virtual time).
func TestPipeWritesOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type write struct {
			at time.Time
			b  byte
		}
		var mu sync.Mutex
		var got []write
		p := newPipe(newShaper(Link{Delay: 25 * time.Millisecond, Rate: 8_000_000, Burst: 1000}, 1, 0), func(b []byte) error {
			mu.Lock()
			got = append(got, write{time.Now(), b[0]})
			mu.Unlock()
			return nil
		})
		done := make(chan struct{})
		go p.run(done)
		start := time.Now()
		for i := range 5 {
			b := make([]byte, 1000)
			b[0] = byte(i)
			p.push(time.Now(), b)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		close(done)
		require.Len(t, got, 5)
		for i, w := range got {
			// 1 MB/s: the bucket's 1,000 bytes at once, then 1 ms each.
			require.Equal(t, byte(i), w.b)
			require.Equal(t, 25*time.Millisecond+time.Duration(i)*time.Millisecond, w.at.Sub(start), "datagram %d", i)
		}
		require.Equal(t, int64(5), p.stats().Delivered)
	})
}

func TestListenRejectsBadLinks(t *testing.T) {
	for _, l := range []Link{{Loss: 1}, {Loss: -0.1}, {Delay: -1}, {Rate: -1}, {Queue: -1}} {
		_, err := Listen("127.0.0.1:0", "127.0.0.1:9", Config{ToClient: l})
		require.Error(t, err, "%+v", l)
		require.Contains(t, err.Error(), "to client")
	}
}

// echoServer answers every datagram with itself until the test ends.
func echoServer(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP(buf[:n], from)
		}
	}()
	return c
}

func listen(t *testing.T, target string, cfg Config) *Forwarder {
	t.Helper()
	f, err := Listen("127.0.0.1:0", target, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

func dialUDP(t *testing.T, addr *net.UDPAddr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// Over real sockets, a ping through a 40 ms path takes at least 40 ms and,
// on an idle machine, not much more (the bound is generous: the machine is
// shared).
func TestForwarderRoundTrip(t *testing.T) {
	echo := echoServer(t)
	f := listen(t, echo.LocalAddr().String(), Symmetric(40*time.Millisecond, 0, 0, 1))
	c := dialUDP(t, f.Addr())
	var rtts []time.Duration
	buf := make([]byte, 100)
	for i := range 10 {
		start := time.Now()
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, buf[:n])
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	t.Logf("RTT through a 40 ms path: min %s, median %s, max %s", rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1])
	require.GreaterOrEqual(t, rtts[0], 40*time.Millisecond, "delivered early")
	require.Less(t, rtts[len(rtts)/2], 40*time.Millisecond+40*time.Millisecond, "median RTT %s", rtts[len(rtts)/2])
	require.Equal(t, 1, f.Sessions())
	up, down := f.Stats()
	require.Equal(t, Stats{Packets: 10, Bytes: 10, Delivered: 10, DeliveredBytes: 10}, up)
	require.Equal(t, up, down)
}

// sink counts what arrives and when the first and the last datagram came.
type sink struct {
	conn        *net.UDPConn
	mu          sync.Mutex
	n, bytes    int
	first, last time.Time
	seen        map[uint32]bool
}

func newSink(t *testing.T) *sink {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	require.NoError(t, c.SetReadBuffer(4<<20))
	t.Cleanup(func() { c.Close() })
	s := &sink{conn: c, seen: map[uint32]bool{}}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			now := time.Now()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.n == 0 {
				s.first = now
			}
			s.n++
			s.bytes += n
			s.last = now
			s.seen[uint32(buf[0])|uint32(buf[1])<<8|uint32(buf[2])<<16] = true
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// send paces n numbered datagrams of size bytes, burst of them every
// every (a few at a time: the timer of a shared machine is coarse).
func send(t *testing.T, c *net.UDPConn, n, size, burst int, every time.Duration) {
	t.Helper()
	tick := time.NewTicker(every)
	defer tick.Stop()
	b := make([]byte, size)
	for i := range n {
		b[0], b[1], b[2] = byte(i), byte(i>>8), byte(i>>16)
		_, err := c.Write(b)
		require.NoError(t, err)
		if i%burst == burst-1 {
			<-tick.C
		}
	}
}

// Over real sockets the link carries its rate: 400 KB offered at twice
// the rate arrive no sooner than (400 KB - Burst) / Rate after the first
// was sent, and not much later.
func TestForwarderRate(t *testing.T) {
	s := newSink(t)
	f := listen(t, s.conn.LocalAddr().String(), Config{ToTarget: Link{Rate: 8_000_000, Queue: 1 << 20}})
	c := dialUDP(t, f.Addr())
	const n, size = 400, 1000 // 1 MB/s link, 2 MB/s offered
	start := time.Now()
	send(t, c, n, size, 4, 2*time.Millisecond)
	var up Stats
	require.Eventually(t, func() bool {
		up, _ = f.Stats()
		return int64(s.count()) == up.Packets
	}, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, up.Overflow)
	require.Equal(t, up.Packets, up.Delivered)
	require.Greater(t, up.Packets, int64(n*9/10), "the kernel dropped many datagrams before the forwarder read them")
	s.mu.Lock()
	took := s.last.Sub(start).Seconds()
	s.mu.Unlock()
	// The bucket let Burst bytes through at once; the rest left at 1 MB/s,
	// each no sooner than it arrived, which was after start.
	want := float64(int(up.Bytes)-DefaultBurst) / 1e6
	t.Logf("%d bytes in %.3fs (%.3fs at the rate); queue peak %d bytes", up.Bytes, took, want, up.QueuePeak)
	require.GreaterOrEqual(t, took, want, "faster than the rate")
	require.Less(t, took, want*1.5+0.1, "much slower than the rate")
	require.Greater(t, up.QueuePeak, 100_000, "offered at twice the rate, the queue filled")
}

// Over real sockets the link loses exactly what the seeded generator
// picks, and delivers all the rest.
func TestForwarderLoss(t *testing.T) {
	s := newSink(t)
	f := listen(t, s.conn.LocalAddr().String(), Config{ToTarget: Link{Loss: 0.05}, Seed: 42})
	c := dialUDP(t, f.Addr())
	const n = 2000
	send(t, c, n, 100, 10, time.Millisecond)
	var up Stats
	require.Eventually(t, func() bool {
		up, _ = f.Stats()
		return int64(s.count()) == up.Packets-up.Lost
	}, 10*time.Second, 10*time.Millisecond)
	// The kernel may drop a few datagrams before the forwarder reads them
	// (a busy machine); the forwarder draws once per datagram it read.
	require.Greater(t, up.Packets, int64(n*9/10), "the kernel dropped many datagrams before the forwarder read them")
	// Session 0, towards the target: stream 0 of seed 42.
	rng := rand.New(rand.NewPCG(42, 0))
	var draws []bool
	lostN := 0
	for range up.Packets {
		l := rng.Float64() < 0.05
		draws = append(draws, l)
		if l {
			lostN++
		}
	}
	require.Equal(t, int64(lostN), up.Lost)
	require.InDelta(t, 0.05*float64(up.Packets), lostN, 30, "5%% of what was read")
	if up.Packets < n {
		t.Logf("the kernel dropped %d datagrams: which ones were lost is not checked", n-up.Packets)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range draws {
		require.Equal(t, !l, s.seen[uint32(i)], "datagram %d", i)
	}
}

// Each client gets its own session, so replies find the right client.
func TestForwarderSessions(t *testing.T) {
	echo := echoServer(t)
	f := listen(t, echo.LocalAddr().String(), Config{})
	buf := make([]byte, 10)
	for i := range 3 {
		c := dialUDP(t, f.Addr())
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, buf[:n])
	}
	require.Equal(t, 3, f.Sessions())
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "Close is idempotent")
}
