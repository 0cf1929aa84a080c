package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// controlHandler serves the /v0 control API on the unix socket.
func (n *Node) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+controlapi.RouteStatus, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.Status())
	})
	mux.HandleFunc("GET "+controlapi.RouteIdentity, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.identityInfo())
	})
	mux.HandleFunc("POST "+controlapi.RouteRotate, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.RotateRequest
		if !decodeBody(w, r, &req) {
			return
		}
		id, err := n.Rotate(r.Context(), req.Passphrase)
		if err != nil {
			writeErr(w, err)
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, id)
	})
	mux.HandleFunc("GET "+controlapi.RoutePeers, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.Peers())
	})
	mux.HandleFunc("POST "+controlapi.RouteDial, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.DialRequest
		if !decodeBody(w, r, &req) {
			return
		}
		p, err := n.Dial(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST "+controlapi.RouteDisconnect, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.DisconnectRequest
		if !decodeBody(w, r, &req) {
			return
		}
		res, err := n.Disconnect(req.Peer)
		if err != nil {
			writeErr(w, err)
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+controlapi.RouteBootstrap, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.Bootstrap(r.Context()))
	})
	mux.HandleFunc("POST "+controlapi.RouteResolve, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.ResolveRequest
		if !decodeBody(w, r, &req) {
			return
		}
		d, err := did.Parse(req.DID)
		if err != nil {
			writeErr(w, badRequest(err.Error(), "a DID looks like did:icn:z…; `icnctl id show` prints a node's DID"))
			return
		}
		res, err := n.Resolve(r.Context(), d)
		if err != nil {
			writeErr(w, err)
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET "+controlapi.RouteLimits, n.handleLimits)
	n.ledgerRoutes(mux)
	n.gossipRoutes(mux)
	n.blockRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteError(w, &controlapi.Error{Status: http.StatusNotFound,
			Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path),
			Hint:    "icnctl and icnd may be different versions; this icnd is " + version.Version})
	})
	return mux
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		controlapi.WriteError(w, &controlapi.Error{Status: http.StatusBadRequest, Message: "bad request body: " + err.Error()})
		return false
	}
	return true
}

func writeErr(w http.ResponseWriter, err error) {
	var ce *controlapi.Error
	if errors.As(err, &ce) {
		controlapi.WriteError(w, ce)
		return
	}
	status := http.StatusInternalServerError
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	controlapi.WriteError(w, &controlapi.Error{Status: status, Message: err.Error()})
}

func badRequest(msg, hint string) error {
	return &controlapi.Error{Status: http.StatusBadRequest, Message: msg, Hint: hint}
}

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

func (n *Node) identityInfo() controlapi.Identity {
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
		info.Addrs = append(info.Addrs, c.RemoteMultiaddr().String())
		if info.Direction == "" {
			info.Direction = directionName(c.Stat().Direction)
		}
	}
	if l := st.h.Peerstore().LatencyEWMA(p); l > 0 {
		info.LatencyMS = float64(l.Microseconds()) / 1000
	}
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
		return controlapi.DisconnectResponse{}, &controlapi.Error{Status: http.StatusNotFound,
			Message: fmt.Sprintf("not connected to %s", target), Hint: "`icnctl network peers` lists connected peers"}
	}
	res := controlapi.DisconnectResponse{Disconnected: []string{}}
	for _, p := range peers {
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
		return nil, badRequest(
			fmt.Sprintf("%q is neither a peer ID nor a DID (%v)", target, err),
			"give a peer ID (12D3Koo…) or a DID (did:icn:z…); `icnctl network peers` lists both")
	}
	return peers, nil
}

// Rotate rotates the node key in the keystore and re-keys the running host.
func (n *Node) Rotate(ctx context.Context, passphrase string) (controlapi.Identity, error) {
	id, err := n.ks.Rotate(passphrase, time.Now())
	if err != nil {
		e := &controlapi.Error{Status: http.StatusInternalServerError, Message: err.Error()}
		if errors.Is(err, did.ErrWrongPassphrase) {
			e.Status = http.StatusForbidden
			e.Hint = "check ICN_KEYSTORE_PASSPHRASE (or the passphrase you typed); the keystore and the running node were not changed"
		}
		return controlapi.Identity{}, e
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
	return n.identityInfo(), nil
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
