// Package harness starts real ICN nodes inside one test process: each with
// its own temporary data dir, keystore and Prometheus registry, listening on
// loopback QUIC with an ephemeral port. Nodes stop, and their directories are
// removed, when the test ends.
package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/logging"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
)

// Passphrase protects every harness keystore.
const Passphrase = "harness-passphrase"

// WorkFactor keeps harness keystores fast to unlock.
const WorkFactor = 10

// Node is one running node.
type Node struct {
	*node.Node
	DataDir  string
	Identity *did.Identity
	Keystore did.Keystore
	Registry *prometheus.Registry
	Client   *controlapi.Client
	stop     func()
}

// Stop stops the node now instead of at the end of the test.
func (n *Node) Stop() { n.stop() }

// Option adjusts a node's config before it starts.
type Option func(i int, cfg *config.Config)

// Start starts n nodes and waits until each is ready.
func Start(t testing.TB, n int, opts ...Option) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = startOne(t, i, opts)
	}
	return nodes
}

func startOne(t testing.TB, i int, opts []Option) *Node {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the dir short.
	dir, err := os.MkdirTemp("", "icnh")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	ks := did.Keystore{Path: did.Open(dir).Path, WorkFactor: WorkFactor}
	id, err := ks.Create(Passphrase, time.Now())
	require.NoError(t, err)

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Network.MDNSEnabled = false
	cfg.Observability.MetricsPort = 0
	cfg.Observability.HealthPort = 0
	cfg.Observability.HTTPBind = "127.0.0.1"
	for _, o := range opts {
		o(i, &cfg)
	}
	reg := prometheus.NewRegistry()
	log := logging.New(testWriter{t}, slog.LevelInfo, "text").With("node", i)
	nd, err := node.New(context.Background(), node.Options{Config: cfg, Identity: id, Keystore: ks, Logger: log, Registry: reg, Control: controlserver.Handler(log)})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %d stopped with error: %v", i, err)
				}
			case <-time.After(node.ShutdownTimeout + 5*time.Second):
				t.Errorf("node %d did not stop within %s", i, node.ShutdownTimeout+5*time.Second)
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, nd.Ready, 10*time.Second, 10*time.Millisecond, "node %d never became ready", i)
	return &Node{Node: nd, DataDir: dir, Identity: id, Keystore: ks, Registry: reg,
		Client: controlapi.NewClient(controlapi.SocketPath(dir)), stop: stop}
}

// Multiaddr returns the node's first listen address with /p2p/<peer id>.
func (n *Node) Multiaddr() string {
	s := n.Status()
	return fmt.Sprintf("%s/p2p/%s", s.ListenAddrs[0], s.PeerID)
}

// HostPort returns the node's loopback UDP host:port.
func (n *Node) HostPort(t testing.TB) string {
	t.Helper()
	m, err := config.ListenMultiaddr(n.Status().ListenAddrs[0])
	require.NoError(t, err)
	ip, err := m.ValueForProtocol(ma.P_IP4)
	require.NoError(t, err)
	port, err := m.ValueForProtocol(ma.P_UDP)
	require.NoError(t, err)
	return ip + ":" + port
}

// Bootstrap returns an Option that gives every node the same bootstrap peers.
func Bootstrap(peers ...*Node) Option {
	addrs := make([]string, len(peers))
	for i, p := range peers {
		addrs[i] = p.Multiaddr()
	}
	return func(_ int, cfg *config.Config) { cfg.Network.BootstrapPeers = addrs }
}

// Connect dials b from a by multiaddr and waits until each lists the other
// with its DID.
func Connect(t testing.TB, a, b *Node) {
	t.Helper()
	_, err := a.Dial(context.Background(), controlapi.DialRequest{Addr: b.Multiaddr()})
	require.NoError(t, err)
	WaitPeer(t, a, b)
	WaitPeer(t, b, a)
}

// WaitPeer waits until a lists b's current peer ID with b's DID.
func WaitPeer(t testing.TB, a, b *Node) {
	t.Helper()
	want := b.Status()
	require.Eventually(t, func() bool {
		for _, p := range a.Peers() {
			if p.PeerID == want.PeerID && p.DID == want.DID {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "node %s never listed %s with DID %s", a.Status().PeerID, want.PeerID, want.DID)
}

// testWriter sends log lines to t.Log so they show only for failing tests.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
