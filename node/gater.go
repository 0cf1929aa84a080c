package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/protocols/identity"
)

// gater is the connection gater hook: every connection passes through it
// before the security handshake and again once the peer is known. It
// refuses blocked peers (node/blocklist) in both directions: outbound dials
// before they start, inbound connections once the handshake names the peer.
// It also refuses, both ways, peers penalised past the disconnect threshold
// (penalty.go) until their penalty decays. Every dial path (explicit
// dials, rotation redials, the DHT's reconnect watchdog, mDNS) goes
// through it.
type gater struct {
	blocks *blockGuard
	trust  *trustGuard
	pen    *penaltyGuard
}

func (deps stackDeps) gater() *gater {
	return &gater{blocks: deps.blocks, trust: deps.trustG, pen: deps.penalty}
}

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	return g.blocks.allow(p, network.DirOutbound, "dial") && g.pen.allow(p, network.DirOutbound, "dial")
}
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool {
	return g.blocks.allow(p, network.DirOutbound, "dial") && g.pen.allow(p, network.DirOutbound, "dial")
}
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	// A block wins over any trust; trust is checked once the peer is known.
	return g.blocks.allow(p, dir, "handshake") && g.pen.allow(p, dir, "handshake") && g.trust.allow(p, dir, "handshake")
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

var _ connmgr.ConnectionGater = (*gater)(nil)

// blockLogInterval is how often a refused blocked peer is logged at most.
const blockLogInterval = 10 * time.Second

// blockGuard enforces the blocklist on every network stack; it outlives key
// rotations. Besides the gater, two hooks catch what a gater cannot: a
// connection that finished its handshake just as its block was made (the
// notifiee), and a new key of a blocked DID, known only once its binding
// arrives (the identity service's OnBinding).
type blockGuard struct {
	list    *blocklist.List
	book    *identity.Book
	log     *slog.Logger
	refused *prometheus.CounterVec
	now     func() time.Time

	mu     sync.Mutex
	logged map[peer.ID]time.Time // when each peer's refusal was last logged
}

func newBlockGuard(list *blocklist.List, book *identity.Book, reg prometheus.Registerer, log *slog.Logger) (*blockGuard, error) {
	g := &blockGuard{list: list, book: book, log: log, now: time.Now, logged: map[peer.ID]time.Time{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_connections_blocked_total",
			Help: "Connections to or from blocked peers refused or closed (icnctl network block), by direction (inbound, outbound).",
		}, []string{"direction"})}
	for _, d := range []string{"inbound", "outbound"} {
		g.refused.WithLabelValues(d)
	}
	if err := reg.Register(g.refused); err != nil {
		return nil, err
	}
	return g, nil
}

// allow reports whether p may connect; a refusal is counted and logged.
func (g *blockGuard) allow(p peer.ID, dir network.Direction, stage string) bool {
	if g == nil {
		return true
	}
	e, ok := g.list.Blocked(p)
	if !ok {
		return true
	}
	g.refuse(p, e, dir, stage)
	return false
}

// notifiee closes connections to blocked peers as they open: a handshake
// that passed the gater just before the block was made.
func (g *blockGuard) notifiee() network.Notifiee {
	if g == nil {
		return &network.NotifyBundle{}
	}
	return &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if e, ok := g.list.Blocked(c.RemotePeer()); ok {
			g.refuse(c.RemotePeer(), e, c.Stat().Direction, "connected")
			_ = c.Close()
		}
	}}
}

// onBinding is the identity service's hook: a verified binding of a
// blocked DID names a peer ID the gater may not have known; it is kept with
// the block and the peer hung up on.
func (g *blockGuard) onBinding(h host.Host) func(context.Context, did.Binding) {
	if g == nil {
		return nil
	}
	return func(ctx context.Context, bd did.Binding) {
		e, ok := g.list.Learn(ctx, bd)
		if !ok {
			return
		}
		for _, c := range h.Network().ConnsToPeer(bd.PeerID) {
			g.refuse(bd.PeerID, e, c.Stat().Direction, "identified")
		}
		_ = h.Network().ClosePeer(bd.PeerID)
	}
}

// refuse counts one refused connection and logs it, at most once per peer
// per blockLogInterval.
func (g *blockGuard) refuse(p peer.ID, e blocklist.Entry, dir network.Direction, stage string) {
	g.refused.WithLabelValues(directionName(dir)).Inc()
	if !g.shouldLog(p) {
		return
	}
	attrs := []any{"peer", p, "direction", directionName(dir), "stage", stage, "blocked", e.Target, "kind", e.Kind}
	if bd, ok := g.book.ByPeer(p); ok {
		attrs = append(attrs, "did", bd.DID)
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	expires := "never"
	if !e.Permanent() {
		expires = e.Expires.UTC().Format(time.RFC3339)
	}
	attrs = append(attrs, "expires", expires)
	g.log.Warn("SECURITY blocked peer refused", attrs...)
}

// shouldLog reports whether p's refusal may be logged now, and if so notes it.
func (g *blockGuard) shouldLog(p peer.ID) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.logged[p]; ok && now.Sub(last) < blockLogInterval {
		return false
	}
	if len(g.logged) >= 1024 {
		for q, t := range g.logged {
			if now.Sub(t) >= blockLogInterval {
				delete(g.logged, q)
			}
		}
	}
	g.logged[p] = now
	return true
}
