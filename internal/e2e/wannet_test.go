package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/internal/netem"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
)

// The WAN tests run real daemons on loopback and put an emulated wide-area
// link (internal/netem, a UDP forwarder in this test process) between
// them: the dialling daemon dials the other at the forwarder's address,
// and QUIC runs through it as through a NAT. The kernel's netem qdisc is
// not used: the machines these run on may not have it. Every link is
// symmetric: RTT/2 of delay, the loss and the rate limit in each
// direction.

// wanCond is one network condition of the WAN tests.
type wanCond struct {
	name string
	rtt  time.Duration
	loss float64
	rate int64 // bits per second, 0: unlimited
	// relay: through a forwarder (with the impairments above); false is
	// a direct loopback connection, the baseline.
	relay bool
}

// wanConds are the conditions every WAN test measures, the baseline
// first: loopback, the forwarder with no impairment (its own cost), the
// two WAN paths of issue 14, and the longer one without loss (what the
// loss costs).
func wanConds() []wanCond {
	return []wanCond{
		{name: "loopback"},
		{name: "relay, no impairment", relay: true},
		{name: "50 ms, 1% loss, 10 Mbit/s", rtt: 50 * time.Millisecond, loss: 0.01, rate: 10_000_000, relay: true},
		{name: "150 ms, 1% loss, 10 Mbit/s", rtt: 150 * time.Millisecond, loss: 0.01, rate: 10_000_000, relay: true},
		{name: "150 ms, no loss, 10 Mbit/s", rtt: 150 * time.Millisecond, rate: 10_000_000, relay: true},
	}
}

// impaired: the path has latency, loss or a rate limit.
func (c wanCond) impaired() bool { return c.rtt > 0 || c.loss > 0 || c.rate > 0 }

// wanBench is true when ICN_BENCH=1 asks for the full-size runs.
func wanBench() bool { return os.Getenv("ICN_BENCH") == "1" }

// wanNode is a daemon of the WAN tests.
type wanNode struct {
	dir  string
	id   idJSON
	d    *daemon
	c    *controlapi.Client
	port int // its QUIC port on 127.0.0.1
}

// blackhole returns a loopback UDP address that swallows every datagram
// (a socket held open and never read) until the test ends. A node that
// announces it is one that, like a node behind a NAT, nobody can dial: the
// daemons of these tests cannot go around the emulated link.
func blackhole(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// initWANDirs makes n data dirs with an identity each, in parallel (each
// `id init` spends a second in scrypt).
func initWANDirs(t *testing.T, n int) ([]string, []idJSON) {
	t.Helper()
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = tempDir(t)
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { res[i] = ctlEnv(t, withPass(passphrase), dirs[i], "id", "init", "--json") })
	}
	wg.Wait()
	ids := make([]idJSON, n)
	for i, r := range res {
		require.Equal(t, 0, r.code, "id init: %s", r.stderr)
		ids[i] = decode[idJSON](t, r.stdout)
	}
	return dirs, ids
}

// spawnWANNode starts icnd on dir listening on 127.0.0.1:port and
// announcing announce (host:port); it does not wait for it. The DHT runs
// in client mode: no node is then in another's routing table, so no
// node's reconnect watchdog redials a peer the test disconnected (at the
// address the loopback baseline revealed, around the link). Only the test
// dials.
func spawnWANNode(t *testing.T, dir string, id idJSON, port int, announce string) *wanNode {
	t.Helper()
	body := fmt.Sprintf(`[network]
listen_addr = "127.0.0.1:%d"
announce_addrs = [%q]
mdns_enabled = false
bootstrap_peers = []
dht_mode = "client"
autonat = false
hole_punching = false
relay_client = false
network_id = "wan"
[observability]
health_port = 0
metrics_port = 0
log_level = "info"
`, port, announce)
	cfg := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(body), 0o600))
	d := spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	d.dataDir = dir
	return &wanNode{dir: dir, id: id, d: d, c: controlapi.NewClient(controlapi.SocketPath(dir)), port: port}
}

// startWANNodes starts a daemon on each dir at once and waits until all
// answer. announce[i] == "" announces node i's own address.
func startWANNodes(t *testing.T, dirs []string, ids []idJSON, announce []string) []*wanNode {
	t.Helper()
	nodes := make([]*wanNode, len(dirs))
	for i := range dirs {
		port := freeUDPPort(t)
		a := announce[i]
		if a == "" {
			a = fmt.Sprintf("127.0.0.1:%d", port)
		}
		nodes[i] = spawnWANNode(t, dirs[i], ids[i], port, a)
	}
	for _, n := range nodes {
		waitReady(t, n.d, "the host namespace")
	}
	return nodes
}

// link puts the condition's emulated link in front of n: the returned
// forwarder relays to n's QUIC port; nil for the loopback baseline.
func (c wanCond) link(t *testing.T, n *wanNode, seed uint64) *netem.Forwarder {
	t.Helper()
	if !c.relay {
		return nil
	}
	f, err := netem.Listen("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", n.port), netem.Symmetric(c.rtt, c.loss, c.rate, seed))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

// addrVia is the multiaddr that reaches n through f (directly when f is nil).
func (n *wanNode) addrVia(f *netem.Forwarder) string {
	port := n.port
	if f != nil {
		port = f.Addr().Port
	}
	return fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", port, n.id.PeerID)
}

// ctx is a context for one control request, ended at cleanup at the latest.
func wanCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// peerOf is n's entry for the peer p, if connected.
func (n *wanNode) peerOf(t *testing.T, p string) (controlapi.Peer, bool) {
	t.Helper()
	ps, err := n.c.Peers(wanCtx(t, 10*time.Second))
	require.NoError(t, err)
	for _, q := range ps {
		if q.PeerID == p {
			return q, true
		}
	}
	return controlapi.Peer{}, false
}

// requireVia requires that n's connection to peer goes through f: the
// peer's address as n sees it is the forwarder's.
func (n *wanNode) requireVia(t *testing.T, peer *wanNode, f *netem.Forwarder) {
	t.Helper()
	if !n.assertVia(t, peer, f) {
		t.FailNow()
	}
}

// assertVia is requireVia for any goroutine: it reports and returns false.
func (n *wanNode) assertVia(t *testing.T, peer *wanNode, f *netem.Forwarder) bool {
	t.Helper()
	ps, err := n.c.Peers(wanCtx(t, 10*time.Second))
	if !assert.NoError(t, err) {
		return false
	}
	for _, p := range ps {
		if p.PeerID == peer.id.PeerID {
			want := strings.TrimSuffix(peer.addrVia(f), "/p2p/"+peer.id.PeerID)
			return assert.Contains(t, p.Addrs, want, "the connection does not go through the emulated link")
		}
	}
	return assert.Fail(t, "not connected")
}

// disconnect closes n's connections to peer and waits until it has none.
func (n *wanNode) disconnect(t *testing.T, peer *wanNode) {
	t.Helper()
	if _, ok := n.peerOf(t, peer.id.PeerID); !ok {
		return
	}
	_, err := n.c.Disconnect(wanCtx(t, 10*time.Second), peer.id.PeerID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := n.peerOf(t, peer.id.PeerID); return !ok },
		10*time.Second, 5*time.Millisecond, "still connected")
}

// fillWANLedger stores n valid entries (16 authors) in dir's datastore
// before its daemon starts, and returns their total size in bytes.
func fillWANLedger(t *testing.T, dir string, n int) int {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(dir, node.DatastoreDir), store.Options{NoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	blocks := ledgertest.History(t, 16, n)
	size := 0
	for i := 0; i < len(blocks); i += 1024 {
		_, err := s.Ingest(context.Background(), blocks[i:min(i+1024, len(blocks))], nil)
		require.NoError(t, err)
	}
	for _, b := range blocks {
		size += len(b)
	}
	return size
}

// dist summarises samples.
type dist []time.Duration

func (d dist) sorted() dist { s := slices.Clone(d); slices.Sort(s); return s }

// q is the q-quantile (nearest rank), 0 ≤ q ≤ 1.
func (d dist) q(q float64) time.Duration {
	s := d.sorted()
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

// rtts is d in round trips of rtt ("–" without an RTT).
func rtts(d, rtt time.Duration) string {
	if rtt == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(d)/float64(rtt), 'f', 2, 64)
}

// linkReport describes what a forwarder carried.
func linkReport(f *netem.Forwarder) string {
	if f == nil {
		return "direct"
	}
	up, down := f.Stats()
	return fmt.Sprintf("to target %d pkts %s, lost %d, overflow %d, queue peak %d B; back %d pkts %s, lost %d, overflow %d, queue peak %d B",
		up.Packets, mib(up.Bytes), up.Lost, up.Overflow, up.QueuePeak, down.Packets, mib(down.Bytes), down.Lost, down.Overflow, down.QueuePeak)
}

// procCPU is the CPU time (user and system) process pid has used so far;
// it may run on any goroutine (a failure is reported, and 0 returned).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if !assert.NoError(t, err) {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if !assert.NoError(t, errors.Join(err1, err2)) {
		return 0
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// logMachine logs the cores and the load average, at the start and the
// end of a test: the figures are only as quiet as the shared machine was.
func logMachine(t *testing.T) {
	t.Helper()
	load := func() string {
		b, err := os.ReadFile("/proc/loadavg")
		if err != nil {
			return "unknown"
		}
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	t.Logf("WAN machine: %d cores, load average %s", runtime.NumCPU(), load())
	t.Cleanup(func() { t.Logf("WAN machine: load average at the end %s", load()) })
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 2, 64) + " MiB" }
