package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/protocols/identity"
)

// netStack is everything bound to one node key: the libp2p host and the
// protocol services running on it. A key rotation replaces the whole stack.
type netStack struct {
	h     host.Host
	idsvc *identity.Service
	id    *did.Identity
}

// stackDeps are the parts of a stack that outlive a key rotation.
type stackDeps struct {
	cfg     config.Config
	reg     prometheus.Registerer
	log     *slog.Logger
	book    *identity.Book
	metrics *netMetrics
}

func newStack(deps stackDeps, id *did.Identity) (*netStack, error) {
	listen, err := config.ListenMultiaddr(deps.cfg.Network.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("network.listen_addr: %w", err)
	}
	// The resource manager scales its limits to the machine's memory and
	// file descriptors; see docs/architecture.md for the numbers it picks.
	limiter := rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale())
	rm, err := rcmgr.NewResourceManager(limiter)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(deps.cfg.Network.ConnLowWater, deps.cfg.Network.ConnHighWater,
		connmgr.WithGracePeriod(deps.cfg.Network.ConnGracePeriod.Duration))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(id.NodeKey),
		libp2p.ListenAddrs(listen),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.PrometheusRegisterer(deps.reg),
		libp2p.UserAgent(version.UserAgent()),
	)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("listen on %s (network.listen_addr %q): %w", listen, deps.cfg.Network.ListenAddr, err)
	}
	h.Network().Notify(deps.metrics.notifiee())
	st := &netStack{h: h, id: id}
	st.idsvc = identity.New(h, func() did.Binding { return id.Binding }, deps.book, deps.log,
		identity.Options{OnRecord: deps.metrics.messagesReceived.Inc})
	return st, nil
}

// run serves the stack's protocols until ctx ends, and dials the bootstrap
// peers once at start.
func (st *netStack) run(ctx context.Context, bootstrap []string, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st.idsvc.Run(ctx) })
	g.Go(func() error {
		st.dialBootstrap(ctx, bootstrap, log)
		return nil
	})
	return g.Wait()
}

// dialBootstrap connects to each configured bootstrap peer once.
// TODO(issue 3): re-dial with backoff whenever the routing table runs empty.
func (st *netStack) dialBootstrap(ctx context.Context, addrs []string, log *slog.Logger) {
	var peers []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			// config.Validate already checked these.
			log.Warn("skipping a bootstrap peer", "addr", s, "err", err)
			continue
		}
		peers = append(peers, *ai)
	}
	if len(peers) == 0 {
		return
	}
	st.redial(ctx, peers, 30*time.Second, log)
	connected := 0
	for _, ai := range peers {
		if st.h.Network().Connectedness(ai.ID) == network.Connected {
			connected++
		}
	}
	log.Info("bootstrap done", "connected", connected, "of", len(peers))
}

func (st *netStack) close() error {
	st.idsvc.Close()
	return st.h.Close()
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

func multiaddrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
