package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/discovery"
)

func newDHT(deps stackDeps, st *netStack) (*discovery.DHT, error) {
	var boot []peer.AddrInfo
	for i, s := range deps.cfg.Network.BootstrapPeers {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("network.bootstrap_peers[%d]: %w", i, err)
		}
		if ai.ID != st.h.ID() {
			boot = append(boot, *ai)
		}
	}
	id := st.id
	return discovery.New(st.h, discovery.Config{
		Mode:      deps.cfg.Network.DHTMode,
		Bootstrap: boot,
		Self:      func() did.Binding { return id.Binding },
		MaxPeers:  deps.cfg.Network.ConnLowWater,
	}, deps.log.With("component", "dht"), discovery.Hooks{
		Discovered:   func(source string) { deps.metrics.peersDiscovered.WithLabelValues(source).Inc() },
		Bootstrapped: func(trigger string) { deps.metrics.bootstraps.WithLabelValues(trigger).Inc() },
	})
}

// Bootstrap re-dials remembered and bootstrap peers and refreshes the DHT.
func (n *Node) Bootstrap(ctx context.Context) controlapi.BootstrapResult {
	res := n.current().dht.Bootstrap(ctx)
	return controlapi.BootstrapResult{Attempted: res.Attempted, Connected: res.Connected, RoutingTable: res.RoutingTable, Errors: res.Errors}
}

// Resolve finds the peer behind a DID: the local cache of bindings learnt
// from peers, then the DHT, then the DID-derived peer ID; and its addresses
// from the peerstore, else the DHT. The newest binding found wins.
func (n *Node) Resolve(ctx context.Context, d did.DID) (controlapi.Resolution, error) {
	st := n.current()
	res := controlapi.Resolution{DID: d.String()}
	best, ok := n.book.ByDID(d)
	if ok {
		res.Source = "cache"
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	fromDHT, err := st.dht.LookupBinding(lctx, d)
	cancel()
	switch {
	case err == nil:
		res.DHT = "found"
		if !ok || fromDHT.Newer(best) {
			best, ok, res.Source = fromDHT, true, "dht"
		}
		n.book.Put(fromDHT)
	default:
		res.DHT = err.Error()
	}
	if ok {
		res.PeerID, res.Seq = best.PeerID.String(), best.Seq
	} else {
		res.PeerID, res.Source = d.PeerID().String(), "derived"
	}
	pid, _ := peer.Decode(res.PeerID)
	res.Connected = st.h.Network().Connectedness(pid) == network.Connected
	addrs := st.h.Peerstore().Addrs(pid)
	res.AddrSource = "peerstore"
	if len(addrs) == 0 {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ai, err := st.dht.FindPeer(fctx, pid)
		cancel()
		if err == nil {
			addrs = ai.Addrs
			st.h.Peerstore().AddAddrs(pid, ai.Addrs, peerstore.TempAddrTTL)
		}
		res.AddrSource = "dht"
	}
	res.Addrs = multiaddrStrings(addrs)
	if len(addrs) == 0 {
		res.AddrSource = ""
	}
	return res, nil
}

// dialResolved dials a DID with no address given: resolve, then connect to
// the resolved peer at the addresses found, and let its binding prove the DID.
func (n *Node) dialResolved(ctx context.Context, want did.DID) (controlapi.Peer, error) {
	st := n.current()
	r, err := n.Resolve(ctx, want)
	if err != nil {
		return controlapi.Peer{}, err
	}
	pid, err := peer.Decode(r.PeerID)
	if err != nil {
		return controlapi.Peer{}, err
	}
	if len(r.Addrs) == 0 && !r.Connected {
		return controlapi.Peer{}, &NoAddressError{DID: want, Peer: pid, Source: r.Source, DHT: r.DHT}
	}
	if err := st.h.Connect(ctx, peer.AddrInfo{ID: pid, Addrs: st.h.Peerstore().Addrs(pid)}); err != nil {
		// The gater refused it (and counted it): say it is blocked
		// rather than that the network failed.
		if e, ok := n.deps.blocks.list.Blocked(pid); ok {
			return controlapi.Peer{}, &blocklist.BlockedError{Peer: pid, Entry: e}
		}
		de := n.dialFailed(&DialError{Peer: pid, Addr: want.String(), Via: want.String() + ", resolved from " + r.Source, Err: err})
		if ue := n.untrustedPeer(pid); ue != nil {
			return controlapi.Peer{}, ue
		}
		return controlapi.Peer{}, de
	}
	return n.proveDID(ctx, st, pid, want, "its resolved address")
}
