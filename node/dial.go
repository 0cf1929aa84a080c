package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/discovery"
	"github.com/intercooperative/icn/trust"
)

// DialTimeout bounds one dial request.
const DialTimeout = 15 * time.Second

// Dial connects to a peer. With only Addr, Addr must be a multiaddr ending in
// /p2p/<peer id>. With a DID, the peer at Addr must prove that DID with a
// binding record: the node tries the newest peer ID it knows for the DID,
// then the DID-derived one, and if the peer at Addr turns out to have another
// key (it rotated), it connects to that key and accepts it only if its
// binding is signed by the DID.
func (n *Node) Dial(ctx context.Context, req controlapi.DialRequest) (_ controlapi.Peer, err error) {
	ctx, span := n.tracer.Start(ctx, "network.dial", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("icn.did", req.DID), attribute.String("icn.addr", req.Addr)))
	defer func() { endSpan(span, err) }()
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	st := n.current()
	if req.Addr == "" && req.DID == "" {
		return controlapi.Peer{}, ErrNothingToDial
	}
	var want did.DID
	if req.DID != "" {
		d, err := did.Parse(req.DID)
		if err != nil {
			return controlapi.Peer{}, argErr(ArgDID, req.DID, err)
		}
		want = d
	}
	if req.Addr == "" {
		return n.dialResolved(ctx, want)
	}
	addr, pid, err := parseDialAddr(req.Addr)
	if err != nil {
		return controlapi.Peer{}, argErr(ArgAddr, req.Addr, err)
	}
	if want.IsZero() {
		if pid == "" {
			return controlapi.Peer{}, argErr(ArgAddr, req.Addr, &MissingPeerIDError{Addr: req.Addr})
		}
		if err := n.connect(ctx, st, pid, addr); err != nil {
			return controlapi.Peer{}, err
		}
		// No redial: a peer that hung up on the dial refuses this node,
		// and a second handshake would only be refused (and counted) again.
		if _, err := n.fetchBinding(network.WithNoDial(ctx, "dialled just now"), st, pid); err != nil {
			if hu := n.hungUp(st, pid, req.Addr, err); hu != nil {
				return controlapi.Peer{}, hu
			}
			n.log.Info("connected peer did not identify", "peer", pid, "err", err)
		}
		return n.peerInfo(st, pid), nil
	}

	candidates := n.candidatePeers(want, pid)
	var lastErr error
	for _, cand := range candidates {
		err := n.connect(ctx, st, cand, addr)
		if err == nil {
			return n.proveDID(ctx, st, cand, want, req.Addr)
		}
		lastErr = err
		if actual, ok := discovery.MismatchedPeer(err); ok {
			// The peer at addr has another key: maybe it rotated. Connect to
			// that key and let its binding record decide.
			if err := n.connect(ctx, st, actual, addr); err != nil {
				return controlapi.Peer{}, err
			}
			return n.proveDID(ctx, st, actual, want, req.Addr)
		}
	}
	return controlapi.Peer{}, lastErr
}

// candidatePeers lists the peer IDs to try for a DID, best first.
func (n *Node) candidatePeers(want did.DID, fromAddr peer.ID) []peer.ID {
	var out []peer.ID
	add := func(p peer.ID) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	if fromAddr != "" {
		add(fromAddr)
	}
	if bd, ok := n.book.ByDID(want); ok {
		add(bd.PeerID)
	}
	add(want.PeerID())
	return out
}

// proveDID checks that the connected peer p presents a binding for want;
// otherwise it disconnects.
func (n *Node) proveDID(ctx context.Context, st *netStack, p peer.ID, want did.DID, addr string) (controlapi.Peer, error) {
	bd, err := n.fetchBinding(network.WithNoDial(ctx, "dialled just now"), st, p)
	if err != nil {
		hu := n.hungUp(st, p, addr, err)
		_ = st.h.Network().ClosePeer(p)
		if hu != nil {
			return controlapi.Peer{}, hu
		}
		return controlapi.Peer{}, &ProofError{Addr: addr, Peer: p, Want: want, Err: err}
	}
	if bd.DID != want {
		_ = st.h.Network().ClosePeer(p)
		return controlapi.Peer{}, &ProofError{Addr: addr, Peer: p, Want: want, Got: bd.DID}
	}
	return n.peerInfo(st, p), nil
}

func (n *Node) connect(ctx context.Context, st *netStack, p peer.ID, addr ma.Multiaddr) error {
	if p == st.h.ID() {
		return ErrDialSelf
	}
	if e, ok := n.deps.blocks.list.Blocked(p); ok {
		return &blocklist.BlockedError{Peer: p, Entry: e}
	}
	if err := n.deps.penalty.refusal(p); err != nil {
		return err
	}
	if st.h.Network().Connectedness(p) != network.Connected {
		// An explicit dial means "this address, now": forget addresses from
		// earlier attempts and any dial backoff they left.
		st.h.Peerstore().ClearAddrs(p)
		if sw, ok := st.h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(p)
		}
	}
	wasConnected := st.h.Network().Connectedness(p) == network.Connected
	if err := st.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{addr}}); err != nil {
		if _, ok := discovery.MismatchedPeer(err); ok {
			return err
		}
		de := n.dialFailed(&DialError{Peer: p, Addr: addr.String(), Err: err})
		if ue := n.untrustedPeer(p); ue != nil {
			return ue
		}
		return de
	}
	if !wasConnected {
		n.deps.metrics.peersDiscovered.WithLabelValues("manual").Inc()
	}
	return nil
}

// untrustedPeer is an UntrustedPeerError when the trust policy refuses p
// (the gater closed the dial to it, and counted and logged it), else nil.
func (n *Node) untrustedPeer(p peer.ID) error {
	g := n.deps.trustG
	if !g.trusted() {
		return nil
	}
	if ok, d, score := g.mayConnect(p); !ok {
		return &UntrustedPeerError{Peer: p, DID: d, Score: score, Class: trust.ClassOf(score).String(), Need: n.cfg.MinConnectScore()}
	}
	return nil
}

// hungUp is a HungUpError when the peer p, connected a moment ago, closed
// the connection before it identified (fetchErr is why identifying
// failed): its connection gater refused this node. Else nil.
func (n *Node) hungUp(st *netStack, p peer.ID, addr string, fetchErr error) error {
	var ce *network.ConnError
	if st.h.Network().Connectedness(p) == network.Connected && !(errors.As(fetchErr, &ce) && ce.Remote) {
		return nil
	}
	return &HungUpError{Peer: p, Addr: addr, Self: n.DID()}
}

// dialFailed counts a failed dial by reason and returns it.
func (n *Node) dialFailed(e *DialError) error {
	e.Reason = dialFailureReason(e.Err)
	n.deps.metrics.dialFailures.WithLabelValues(e.Reason).Inc()
	return e
}

// dialFailureReason classifies a dial error for
// icn_network_dial_failures_total by the errors go-libp2p and the kernel
// return. quic-go reports a closed port as an application error without a
// Go error type of its own, so that one case reads the error code.
func dialFailureReason(err error) string {
	var mismatch sec.ErrPeerIDMismatch
	var netErr net.Error
	var qerr *quic.TransportError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, network.ErrResourceLimitExceeded):
		return "resource_limit"
	case errors.Is(err, swarm.ErrGaterDisallowedConnection):
		return "gated"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &qerr) && qerr.ErrorCode == quic.ConnectionRefused:
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, swarm.ErrNoAddresses), errors.Is(err, swarm.ErrNoGoodAddresses):
		return "unreachable"
	case errors.As(err, &mismatch), errors.As(err, new(*sec.ErrPeerIDMismatch)):
		return "peer_id_mismatch"
	}
	return "other"
}

// parseDialAddr accepts host:port or a multiaddr, optionally ending in /p2p/ID.
func parseDialAddr(s string) (ma.Multiaddr, peer.ID, error) {
	if !strings.HasPrefix(s, "/") {
		m, err := config.HostPortMultiaddr(s)
		return m, "", err
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, "", fmt.Errorf("%q is not a multiaddr: %w", s, err)
	}
	transport, last := ma.SplitLast(m)
	if last != nil && last.Protocol().Code == ma.P_P2P {
		pid, err := peer.Decode(last.Value())
		if err != nil {
			return nil, "", fmt.Errorf("%q: bad peer ID: %v", s, err)
		}
		if transport == nil {
			return nil, "", fmt.Errorf("%q has a peer ID but no address", s)
		}
		return transport, pid, nil
	}
	return m, "", nil
}

// MissingPeerIDError means a multiaddr dialled without a DID does not say
// which peer to expect.
type MissingPeerIDError struct{ Addr string }

func (e *MissingPeerIDError) Error() string {
	return fmt.Sprintf("%s does not say which peer to expect (no /p2p/<peer id>)", e.Addr)
}
