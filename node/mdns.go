package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/protocols/discovery/mdns"
)

const (
	// mdnsConnectTimeout bounds one connection attempt (and the binding
	// fetch after it) to a peer found by mDNS.
	mdnsConnectTimeout = 15 * time.Second
	// mdnsAddrTTL is how long addresses learnt by mDNS stay in the
	// peerstore; mDNS re-announces them long before.
	mdnsAddrTTL = 10 * time.Minute
	// maxMDNSDials bounds concurrent connection attempts to found peers.
	maxMDNSDials = 8
)

// mdnsDiscovery connects to the peers the mDNS service finds on the LAN.
type mdnsDiscovery struct {
	svc     *mdns.Service
	st      *netStack
	metrics *netMetrics
	log     *slog.Logger
	// found carries peers from the service's callback to Run, which owns
	// the context the connection attempts run under.
	found chan peer.AddrInfo
}

// newMDNS returns the mDNS discovery service for the stack, or nil when
// network.mdns_enabled is false. A name in network.mdns_interfaces that this
// host does not have is an error. When no interface can carry multicast the
// service logs a warning and waits for one, so icnd still starts.
func newMDNS(deps stackDeps, st *netStack) (interface {
	Run(ctx context.Context) error
	Close() error
}, error) {
	if !deps.cfg.Network.MDNSEnabled {
		return nil, nil
	}
	m := &mdnsDiscovery{st: st, metrics: deps.metrics, log: deps.log, found: make(chan peer.AddrInfo)}
	svc, err := mdns.New(st.h, mdns.Config{
		Interfaces: deps.cfg.Network.MDNSInterfaces,
		DID:        st.id.DID.String(),
		Version:    version.Version,
	}, m.enqueue, deps.log)
	if err != nil {
		var unknown *mdns.UnknownInterfaceError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("network.mdns_interfaces: %w", err)
		}
		return nil, err
	}
	m.svc = svc
	return m, nil
}

// enqueue is the service's found callback. It hands the peer to Run, which
// is always receiving while the service runs.
func (m *mdnsDiscovery) enqueue(ai peer.AddrInfo) { m.found <- ai }

// Run runs the mDNS service and connects to each peer it finds that is not
// connected yet, at most maxMDNSDials at a time. It returns when ctx ends,
// after every connection attempt has finished.
func (m *mdnsDiscovery) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- m.svc.Run(ctx) }()
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxMDNSDials)
	for {
		select {
		case ai := <-m.found:
			if ctx.Err() != nil || ai.ID == m.st.h.ID() || m.st.h.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			m.metrics.peersDiscovered.WithLabelValues("mdns").Inc()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				m.connect(ctx, ai)
			}()
		case err := <-errc:
			// The service has stopped, so found gets nothing more.
			cancel()
			wg.Wait()
			return err
		}
	}
}

// connect dials a found peer and fetches its DID binding.
func (m *mdnsDiscovery) connect(ctx context.Context, ai peer.AddrInfo) {
	h := m.st.h
	ctx, cancel := context.WithTimeout(ctx, mdnsConnectTimeout)
	defer cancel()
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, mdnsAddrTTL)
	if err := h.Connect(ctx, ai); err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) { // not shutting down
			m.metrics.dialFailures.WithLabelValues(dialFailureReason(err)).Inc()
		}
		m.log.Debug("could not connect to a peer found by mDNS", "peer", ai.ID, "addrs", multiaddrStrings(ai.Addrs), "err", err)
		return
	}
	bd, err := m.st.idsvc.Fetch(ctx, ai.ID)
	if err != nil {
		m.log.Info("peer found by mDNS did not identify", "peer", ai.ID, "err", err)
		return
	}
	m.log.Info("peer found by mDNS", "peer", ai.ID, "did", bd.DID, "addrs", multiaddrStrings(ai.Addrs))
}

// Close stops the service; it is idempotent.
func (m *mdnsDiscovery) Close() error { return m.svc.Close() }
