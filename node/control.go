package node

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/node/controlapi"
)

// Status is what `icnctl status` shows.
func (n *Node) Status() controlapi.Status {
	st := n.current()
	return controlapi.Status{
		DID:           st.id.DID.String(),
		PeerID:        st.h.ID().String(),
		ListenAddrs:   multiaddrStrings(st.listenAddrs()),
		AnnounceAddrs: multiaddrStrings(st.h.Addrs()),
		Protocols:     protocolStrings(st.h.Mux().Protocols()),
		Peers:         len(st.h.Network().Peers()),
		Version:       version.Version,
		UptimeSeconds: time.Since(n.started).Seconds(),
		Ready:         n.Ready(),
		DataDir:       n.cfg.DataDir,
		BindingSeq:    st.id.Binding.Seq,

		DHTRoutingTable: st.dht.RoutingTableSize(),
		Problem:         n.Problem(),
	}
}

func protocolStrings(ps []protocol.ID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	sort.Strings(out)
	return out
}

// IdentityInfo is the node's DID, current peer ID and binding sequence.
func (n *Node) IdentityInfo() controlapi.Identity {
	st := n.current()
	return controlapi.Identity{DID: st.id.DID.String(), PeerID: st.h.ID().String(), BindingSeq: st.id.Binding.Seq}
}

// Peers lists connected peers, sorted by peer ID.
func (n *Node) Peers() []controlapi.Peer {
	st := n.current()
	ids := st.h.Network().Peers()
	out := make([]controlapi.Peer, 0, len(ids))
	for _, p := range ids {
		out = append(out, n.peerInfo(st, p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeerID < out[j].PeerID })
	return out
}

func (n *Node) peerInfo(st *netStack, p peer.ID) controlapi.Peer {
	info := controlapi.Peer{PeerID: p.String(), Addrs: []string{}}
	if bd, ok := n.book.ByPeer(p); ok {
		info.DID = bd.DID.String()
	}
	for _, c := range st.h.Network().ConnsToPeer(p) {
		// Two connections to one address (both sides dialled at once)
		// are one address to show.
		if a := c.RemoteMultiaddr().String(); !slices.Contains(info.Addrs, a) {
			info.Addrs = append(info.Addrs, a)
		}
		if info.Direction == "" {
			info.Direction = directionName(c.Stat().Direction)
		}
	}
	if l := st.h.Peerstore().LatencyEWMA(p); l > 0 {
		info.LatencyMS = float64(l.Microseconds()) / 1000
	}
	if st.gossip != nil {
		if v, ok := st.gossip.PeerScore(p); ok {
			v = math.Round(v*100) / 100
			info.GossipScore = &v
		}
	}
	info.Penalty = n.deps.penalty.units(p)
	return info
}

func directionName(d network.Direction) string {
	switch d {
	case network.DirInbound:
		return "inbound"
	case network.DirOutbound:
		return "outbound"
	}
	return "unknown"
}

// Disconnect closes every connection to a peer ID, or to every peer bound to a DID.
func (n *Node) Disconnect(target string) (controlapi.DisconnectResponse, error) {
	st := n.current()
	peers, err := n.connectedPeersOf(st, target)
	if err != nil {
		return controlapi.DisconnectResponse{}, err
	}
	if len(peers) == 0 {
		_, derr := did.Parse(target)
		return controlapi.DisconnectResponse{}, &NotConnectedError{Target: target, IsDID: derr == nil, Op: "disconnect"}
	}
	res := controlapi.DisconnectResponse{Disconnected: []string{}}
	for _, p := range peers {
		// Not redialled by the DHT's mending either: the operator wants
		// it gone (a dial brings it back).
		st.dht.Forget(p)
		if err := st.h.Network().ClosePeer(p); err != nil {
			return res, fmt.Errorf("disconnect %s: %w", p, err)
		}
		res.Disconnected = append(res.Disconnected, p.String())
	}
	return res, nil
}

// connectedPeersOf resolves target, a peer ID or a DID (every peer bound to
// it), to the peers connected now; none is not an error, a target that is
// neither a peer ID nor a DID is a 400.
func (n *Node) connectedPeersOf(st *netStack, target string) ([]peer.ID, error) {
	var peers []peer.ID
	if d, err := did.Parse(target); err == nil {
		for _, p := range n.book.PeersOf(d) {
			if st.h.Network().Connectedness(p) == network.Connected {
				peers = append(peers, p)
			}
		}
	} else if p, perr := peer.Decode(target); perr == nil {
		if st.h.Network().Connectedness(p) == network.Connected {
			peers = append(peers, p)
		}
	} else {
		return nil, argErrf(ArgPeer, target, "%q is neither a peer ID nor a DID (%w)", target, err)
	}
	return peers, nil
}

// Rotate rotates the node key in the keystore and re-keys the running host.
func (n *Node) Rotate(ctx context.Context, passphrase string) (controlapi.Identity, error) {
	id, err := n.ks.Rotate(passphrase, time.Now())
	if err != nil {
		return controlapi.Identity{}, err
	}
	req := rotateRequest{id: id, done: make(chan error, 1)}
	select {
	case n.rotateCh <- req:
	case <-ctx.Done():
		return controlapi.Identity{}, ctx.Err()
	}
	if err := <-req.done; err != nil {
		return controlapi.Identity{}, err
	}
	return n.IdentityInfo(), nil
}

// healthHandler serves /health, /ready and their k8s-style aliases.
func (n *Node) healthHandler() http.Handler {
	mux := http.NewServeMux()
	health := func(w http.ResponseWriter, r *http.Request) {
		h := n.Health()
		code := http.StatusOK
		if h.Status == "unhealthy" {
			code = http.StatusServiceUnavailable
		}
		controlapi.WriteJSON(w, code, h)
	}
	ready := func(w http.ResponseWriter, r *http.Request) {
		if n.Ready() {
			controlapi.WriteJSON(w, http.StatusOK, map[string]any{"ready": true})
			return
		}
		controlapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false})
	}
	mux.HandleFunc("GET /health", health)
	mux.HandleFunc("GET /healthz", health)
	mux.HandleFunc("GET /ready", ready)
	mux.HandleFunc("GET /readyz", ready)
	gw := n.gatewayAPI
	if gw == nil {
		gw = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			controlapi.WriteError(w, &controlapi.Error{Status: http.StatusNotFound, Message: "this node serves no Gateway API"})
		})
	}
	mux.Handle("/v1/", n.traceHTTP("gateway", gw))
	return mux
}

// Health is the JSON body of /health.
type Health struct {
	Status            string  `json:"status"` // healthy | degraded | unhealthy
	Ready             bool    `json:"ready"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	Peers             int     `json:"peers"`
	ActiveConnections int     `json:"active_connections"`
	Version           string  `json:"version"`
	DID               string  `json:"did"`
	// Quarantined counts ledger entries in quarantine: above 100 the node is
	// degraded, above 1000 unhealthy.
	Quarantined int `json:"quarantined"`
	// Problem says why a running node is not ready (a failed key rotation).
	Problem string `json:"problem,omitempty"`
}

// Health reports the node's health: unhealthy until ready, once stopping,
// or when the ledger quarantine holds more than QuarantineUnhealthy entries;
// degraded above QuarantineDegraded; otherwise healthy.
func (n *Node) Health() Health {
	st := n.current()
	h := Health{
		Status:            "healthy",
		Ready:             n.Ready(),
		UptimeSeconds:     time.Since(n.started).Seconds(),
		Peers:             len(st.h.Network().Peers()),
		ActiveConnections: len(st.h.Network().Conns()),
		Version:           version.Version,
		DID:               st.id.DID.String(),
	}
	h.Quarantined = n.quarantineSize()
	h.Problem = n.Problem()
	switch {
	case !h.Ready || h.Quarantined > QuarantineUnhealthy:
		h.Status = "unhealthy"
	case h.Quarantined > QuarantineDegraded:
		h.Status = "degraded"
	}
	return h
}

func (n *Node) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	return mux
}
