package node

import (
	"context"
	"errors"

	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/limits"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/protocols/discovery"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/protocols/ledgersync"
	"github.com/intercooperative/icn/protocols/trustsync"
)

// netStack is everything bound to one node key: the libp2p host and the
// protocol services running on it. A key rotation replaces the whole stack.
type netStack struct {
	h        host.Host
	idsvc    *identity.Service
	id       *did.Identity
	dht      *discovery.DHT
	sync     *ledgersync.Scheduler
	gossip   *gossip.Service
	services []stackService
}

// stackService is a part of the stack with the common lifecycle: Run until
// the context ends, Close (idempotent) to release what New acquired.
type stackService struct {
	name string
	svc  interface {
		Run(ctx context.Context) error
		Close() error
	}
}

// stackDeps are the parts of a stack that outlive a key rotation.
type stackDeps struct {
	cfg     config.Config
	reg     prometheus.Registerer
	log     *slog.Logger
	book    *identity.Book
	metrics *netMetrics
	ledger  *store.Store
	syncM   *ledgersync.Metrics
	// ledgerPub carries the node's own new entries to push.
	ledgerPub chan pushEntry
	gossip    *gossipShared
	// penalty records peers caught breaking the protocols (penalty.go):
	// the gossip score reads it, and it disconnects and refuses peers
	// past its threshold. It outlives rotations: the peers' IDs do not
	// change when ours does.
	penalty *penaltyGuard
	// blocks enforces the blocklist (gater.go).
	blocks *blockGuard
	// trust is the trust graph; trustPub carries this node's own
	// attestations to push.
	trust    *trustgraph.Graph
	trustPub chan []byte
	// trustG applies the [trust] policy (trustpolicy.go).
	trustG *trustGuard
	// tp makes the spans of the stack's protocols.
	tp trace.TracerProvider
	// hostOpts are Options.HostOptions.
	hostOpts []libp2p.Option
}

func newStack(deps stackDeps, id *did.Identity) (_ *netStack, err error) {
	listen, err := config.ListenMultiaddr(deps.cfg.Network.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("network.listen_addr: %w", err)
	}
	rm, err := limits.New(deps.cfg.Limits, deps.log, deps.metrics.resourceBlocked)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(deps.cfg.Network.ConnLowWater, deps.cfg.Network.ConnHighWater,
		connmgr.WithGracePeriod(deps.cfg.Network.ConnGracePeriod.Duration))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(id.NodeKey),
		libp2p.ListenAddrs(listen),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(deps.gater()),
		libp2p.PrometheusRegisterer(deps.reg),
		libp2p.UserAgent(version.UserAgent()),
	}
	var self atomic.Pointer[host.Host]
	wan, err := wanOptions(deps.cfg.Network, &self)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, err
	}
	h, err := libp2p.New(append(append(opts, wan...), deps.hostOpts...)...)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("listen on %s (network.listen_addr %q): %w", listen, deps.cfg.Network.ListenAddr, err)
	}
	self.Store(&h)
	h.Network().Notify(deps.metrics.notifiee())
	h.Network().Notify(deps.blocks.notifiee())
	h.Network().Notify(deps.penalty.notifiee())
	st := &netStack{h: h, id: id}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	st.idsvc = identity.New(h, func() did.Binding { return id.Binding }, deps.book, deps.log,
		identity.Options{OnRecord: deps.metrics.messagesReceived.Inc, OnBinding: bothBindings(deps.blocks.onBinding(h), deps.trustG.onBinding(h)),
			Penalties: deps.penalty.charger(h, penaltyIdentity)})
	st.services = append(st.services, stackService{"identity", st.idsvc})
	if st.dht, err = newDHT(deps, st); err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	st.services = append(st.services, stackService{"dht", st.dht})
	st.sync = newLedgerSync(h, deps.ledger, deps.syncM, deps.penalty.charger(h, penaltyLedgerSync), deps.penalty.charger(h, penaltyLedgerBlocks),
		deps.log.With("component", "ledgersync"), deps.tp)
	st.services = append(st.services, stackService{"ledgersync", st.sync})
	if st.gossip, err = newGossip(deps, st); err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	st.services = append(st.services, stackService{"gossip", st.gossip})
	st.services = append(st.services, stackService{"ledger-gossip", &ledgerGossip{
		g: st.gossip, store: deps.ledger, sync: st.sync, pub: deps.ledgerPub, log: deps.log.With("component", "ledger-gossip"),
		tracer: deps.tp.Tracer(tracerName)}})
	st.services = append(st.services, stackService{"trust-gossip", &trustGossip{
		g: st.gossip, graph: deps.trust, pub: deps.trustPub, log: deps.log.With("component", "trust")}})
	st.services = append(st.services, stackService{"trustsync", trustsync.New(h, trustSyncGraph{deps.trust}, deps.log.With("component", "trustsync"),
		trustsync.Options{Penalties: deps.penalty.charger(h, penaltyTrustSync)})})
	mdnsSvc, err := newMDNS(deps, st)
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	if mdnsSvc != nil {
		st.services = append(st.services, stackService{"mdns", mdnsSvc})
	}
	return st, nil
}

// run serves the stack's protocols until ctx ends.
func (st *netStack) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range st.services {
		g.Go(func() error {
			if err := s.svc.Run(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (st *netStack) close() error {
	var errs []error
	for i := len(st.services) - 1; i >= 0; i-- {
		if err := st.services[i].svc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.services[i].name, err))
		}
	}
	errs = append(errs, st.h.Close())
	return errors.Join(errs...)
}

// connectedPeers returns the addresses of every connected peer, taken from
// the peerstore (listen addresses learnt by identify) and the live connections.
func (st *netStack) connectedPeers() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range st.h.Network().Peers() {
		ai := st.h.Peerstore().PeerInfo(p)
		for _, c := range st.h.Network().ConnsToPeer(p) {
			if c.Stat().Direction == network.DirOutbound {
				ai.Addrs = append(ai.Addrs, c.RemoteMultiaddr())
			}
		}
		out = append(out, ai)
	}
	return out
}

// redial connects to each peer concurrently and fetches its binding,
// bounded by timeout.
func (st *netStack) redial(ctx context.Context, peers []peer.AddrInfo, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ai := range peers {
		if len(ai.Addrs) == 0 {
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			st.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			if err := st.h.Connect(ctx, ai); err != nil {
				log.Info("could not connect to peer", "peer", ai.ID, "err", err)
				return
			}
			if _, err := st.idsvc.Fetch(ctx, ai.ID); err != nil {
				log.Info("peer did not identify after reconnect", "peer", ai.ID, "err", err)
			}
		}(ai)
	}
	wg.Wait()
}

// listenAddrs are the addresses the host is bound to, with unspecified
// addresses (0.0.0.0, ::) expanded to the interface addresses.
func (st *netStack) listenAddrs() []ma.Multiaddr {
	addrs, err := st.h.Network().InterfaceListenAddresses()
	if err != nil {
		addrs = st.h.Network().ListenAddresses()
	}
	out := addrs[:0:0]
	for _, a := range addrs {
		// The relay transport "listens" on /p2p-circuit: not an address of ours.
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			out = append(out, a)
		}
	}
	return out
}

func multiaddrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// bothBindings calls a and then b (either may be nil).
func bothBindings(a, b func(context.Context, did.Binding)) func(context.Context, did.Binding) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(ctx context.Context, bd did.Binding) { a(ctx, bd); b(ctx, bd) }
}
