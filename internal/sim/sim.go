// Package sim runs many real ICN nodes in one process on a simulated
// network: go-libp2p's x/simlibp2p carries QUIC over simnet's in-memory
// packet links, with a latency and a bandwidth per link, and every node is
// a full node.Node (identity, DHT, GossipSub, ledger with an in-memory
// Badger, ledger sync) built by node.New with Options.Embedded.
//
// A simulation is meant to run inside testing/synctest's bubble: time is
// virtual, so the latencies measured are the network's and the protocols',
// not the machine's (the CPU work of hundreds of nodes on two cores takes
// no virtual time). No packet leaves the process; the addresses are
// private ones (10.0.0.0/8) that exist only in the simulation.
package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/logging"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
)

// OneMbps is a bandwidth of one megabit per second.
const OneMbps = simlibp2p.OneMbps

// Config describes a simulated network.
type Config struct {
	// Nodes is how many nodes to start.
	Nodes int
	// RTT is the round-trip time between any two nodes (half each way).
	RTT time.Duration
	// Latency, when set, decides each packet's one-way latency instead
	// (Index tells which node an address is); a partition returns more
	// than the simulation lasts.
	Latency func(from, to int) time.Duration
	// Bandwidth is each node's uplink and downlink in bits per second; 0
	// means 100 Mbit/s.
	Bandwidth int
	// Tune adjusts node i's config (the defaults: DHT server mode, no
	// mDNS, no AutoNAT, hole punching or relay).
	Tune func(i int, cfg *config.Config)
	// Log receives the nodes' log lines at LogLevel; nil discards them.
	Log      io.Writer
	LogLevel slog.Level
}

// Node is one simulated node.
type Node struct {
	*node.Node
	Index    int
	Identity *did.Identity
	Registry *prometheus.Registry
	// Addr is the node's simulated multiaddr with /p2p/.
	Addr    string
	stop    func() error
	stopped chan struct{}
}

// Network is a running simulation.
type Network struct {
	Sim   *simnet.Simnet
	Nodes []*Node
	dir   string
	cfg   Config
	link  simnet.NodeBiDiLinkSettings
	log   io.Writer
	raw   []host.Host
}

// Index is the node index of a simulated address (see IP), or -1.
func Index(a net.Addr) int {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return -1
	}
	ip := u.IP.To4()
	if ip == nil || ip[0] != 10 {
		return -1
	}
	return int(ip[1])<<16 | int(ip[2])<<8 | int(ip[3]) - 1
}

// IP is node i's simulated address: 10.x.y.z, never routed anywhere.
func IP(i int) net.IP {
	n := i + 1
	return net.IPv4(10, byte(n>>16), byte(n>>8), byte(n))
}

// Start builds and starts cfg.Nodes nodes on a new simulated network,
// and returns once each is ready. Stop ends them all.
func Start(t testing.TB, cfg Config) (*Network, error) {
	if cfg.Bandwidth == 0 {
		cfg.Bandwidth = 100 * OneMbps
	}
	dir, err := os.MkdirTemp("", "icnsim")
	if err != nil {
		return nil, err
	}
	latency := simnet.StaticLatency(cfg.RTT / 2)
	if cfg.Latency != nil {
		latency = func(p *simnet.Packet) time.Duration { return cfg.Latency(Index(p.From), Index(p.To)) }
	}
	nw := &Network{dir: dir, cfg: cfg, Sim: &simnet.Simnet{LatencyFunc: latency}, log: cfg.Log,
		link: simnet.NodeBiDiLinkSettings{
			Downlink: simnet.LinkSettings{BitsPerSecond: cfg.Bandwidth},
			Uplink:   simnet.LinkSettings{BitsPerSecond: cfg.Bandwidth},
		}}
	if nw.log == nil {
		nw.log = io.Discard
	}
	nw.Sim.Start()
	for i := 0; i < cfg.Nodes; i++ {
		if _, err := nw.Add(); err != nil {
			nw.Stop()
			return nil, err
		}
	}
	return nw, nil
}

// Add starts one more node, with the next index, and returns it once it
// is ready.
func (nw *Network) Add() (*Node, error) {
	i := len(nw.Nodes)
	n, err := nw.start(i, nw.cfg, nw.link, nw.log)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	nw.Nodes = append(nw.Nodes, n)
	return n, nil
}

func (nw *Network) start(i int, cfg Config, link simnet.NodeBiDiLinkSettings, logOut io.Writer) (*Node, error) {
	id, err := did.Generate(time.Now())
	if err != nil {
		return nil, err
	}
	c := config.Default()
	c.DataDir = fmt.Sprintf("%s/%d", nw.dir, i)
	c.Network.ListenAddr = fmt.Sprintf("%s:8000", IP(i))
	c.Network.MDNSEnabled = false
	c.Network.DHTMode = "server"
	c.Network.AutoNAT, c.Network.HolePunching, c.Network.RelayClient = false, false, false
	if cfg.Tune != nil {
		cfg.Tune(i, &c)
	}
	reg := prometheus.NewRegistry()
	log := logging.New(logOut, cfg.LogLevel, "text").With("node", i)
	nd, err := node.New(context.Background(), node.Options{Config: c, Identity: id, Logger: log, Registry: reg,
		Embedded: true, HostOptions: []libp2p.Option{simlibp2p.QUICSimnet(nw.Sim, link)}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	var once sync.Once
	var stopErr error
	stopped := make(chan struct{})
	stop := func() error {
		once.Do(func() {
			close(stopped)
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	for !nd.Ready() {
		select {
		case err := <-done:
			return nil, fmt.Errorf("stopped before it was ready: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	st := nd.Status()
	return &Node{Node: nd, Index: i, Identity: id, Registry: reg, Addr: fmt.Sprintf("%s/p2p/%s", st.ListenAddrs[0], st.PeerID), stop: stop, stopped: stopped}, nil
}

// Stop stops the node (idempotent) and returns how Run ended.
func (n *Node) Stop() error { return n.stop() }

// Stopped reports whether Stop was called.
func (n *Node) Stopped() bool {
	select {
	case <-n.stopped:
		return true
	default:
		return false
	}
}

// Stop stops every node (in parallel) and the simulated network, and
// removes the nodes' directories.
func (nw *Network) Stop() error {
	var wg sync.WaitGroup
	errs := make([]error, len(nw.Nodes))
	for i, n := range nw.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.stop()
		}()
	}
	wg.Wait()
	for _, h := range nw.raw {
		h.Close()
	}
	nw.Sim.Close()
	os.RemoveAll(nw.dir)
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	return nil
}

// RawHost starts a bare go-libp2p host (no ICN protocols) on the simulated
// network at index i, which must not be a node's: an attacker, a
// measurement probe. It is closed with the network's Stop.
func (nw *Network) RawHost(i int, opts ...libp2p.Option) (host.Host, error) {
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", IP(i))),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		simlibp2p.QUICSimnet(nw.Sim, nw.link),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	nw.raw = append(nw.raw, h)
	return h, nil
}
