package node

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/identity"
)

// Peer penalties across protocols (docs/gossip.md#peer-scoring).
//
// Every protocol violation a peer commits against this node (a binding
// record that does not verify, a malformed ledger-sync, trust-sync or
// gossip request, a response that breaks its protocol, a ledger block that
// fails verification) charges the peer in the node's one record
// (gossip.Penalties): the count GossipSub's P5 reads, decaying with its
// half-life (5 minutes) and capped (100 units). A stall is no violation:
// a request or response that does not arrive in time costs nothing, so
// honest slow peers are not punished.
//
// When a peer's decayed count reaches the disconnect threshold the node
// closes its connections to it, logs one SECURITY line, and its connection
// gater refuses the peer, inbound and outbound, until the count has
// decayed below half the threshold: at least one half-life after the last
// offence, at most log2(cap / release) half-lives (about 16.6 minutes with
// the defaults). No peer is exempt: a bootstrap peer that breaks the
// protocols is refused like any other until its count decays.
const (
	// penaltyDisconnect is the default disconnect threshold, in units.
	// One unit is one malformed request, one binding that does not
	// verify, one bad ledger block; a ledger-sync response that breaks
	// the protocol is 5. An honest peer commits none of these (a bug or a
	// version mismatch might cost a few), so 20 is far above what one
	// could collect by accident, and at 20 the peer's P5 (-15 × 20 = -300)
	// has already taken it below GossipSub's publish threshold (-200).
	penaltyDisconnect = 20
	// penalisedUnits is what a peer's count must be for the peer to count
	// as penalised (icn_network_penalised_peers): half a unit, so that one
	// offence counts for one half-life.
	penalisedUnits = 0.5
	// penaltyLogInterval is how often a refused penalised peer is logged
	// at most.
	penaltyLogInterval = 10 * time.Second
	// penaltyMaxRefused bounds the set of refused peers (each of which
	// has a record in gossip.Penalties, bounded the same way).
	penaltyMaxRefused = gossip.PenaltyMaxPeers
)

// The protocol label values of icn_network_peer_penalties_total.
const (
	penaltyIdentity      = "identity"
	penaltyLedgerSync    = "ledgersync"
	penaltyLedgerBlocks  = "ledger_blocks"
	penaltyTrustSync     = "trustsync"
	penaltyGossipRequest = "gossip_request"
)

// penaltyProtocols lists the label values, exported from start at 0.
func penaltyProtocols() []string {
	return []string{penaltyIdentity, penaltyLedgerSync, penaltyLedgerBlocks, penaltyTrustSync, penaltyGossipRequest}
}

// penaltyConfig configures a penaltyGuard; zero values mean the defaults.
type penaltyConfig struct {
	// Record configures the decaying record (its Now is the guard's clock).
	Record gossip.PenaltyConfig
	// Disconnect is the disconnect threshold in units.
	Disconnect float64
}

// penaltyGuard is the node's penalty layer: it charges peers in the one
// record, counts what it charged, and disconnects and refuses peers past
// the threshold. It outlives key rotations (peers' IDs do not change when
// ours does); each stack gets its protocols' chargers from it.
type penaltyGuard struct {
	rec        *gossip.Penalties
	disconnect float64
	// release is the count below which a refused peer is let back.
	release float64
	now     func() time.Time
	book    *identity.Book
	log     *slog.Logger

	charged     *prometheus.CounterVec
	disconnects prometheus.Counter

	// mu serialises charges, so a crossing of the threshold is seen once.
	mu sync.Mutex
	// refused are the peers past the threshold whose count has not yet
	// decayed below release.
	refused map[peer.ID]struct{}
	logged  map[peer.ID]time.Time // when each refusal was last logged
}

func newPenaltyGuard(cfg penaltyConfig, book *identity.Book, reg prometheus.Registerer, log *slog.Logger) (*penaltyGuard, error) {
	if cfg.Record.Now == nil {
		cfg.Record.Now = time.Now
	}
	if cfg.Disconnect <= 0 {
		cfg.Disconnect = penaltyDisconnect
	}
	rec := gossip.NewPenalties(cfg.Record)
	g := &penaltyGuard{rec: rec, disconnect: cfg.Disconnect, release: cfg.Disconnect / 2, now: cfg.Record.Now, book: book, log: log,
		charged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_peer_penalties_total",
			Help: "Penalty units charged to peers for protocol violations against this node, by protocol (identity, ledgersync, ledger_blocks, trustsync, gossip_request).",
		}, []string{"protocol"}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_network_penalty_disconnects_total",
			Help: "Peers disconnected because their decayed penalty count reached the disconnect threshold (each is then refused until it decays).",
		}),
		refused: map[peer.ID]struct{}{},
		logged:  map[peer.ID]time.Time{},
	}
	for _, p := range penaltyProtocols() {
		g.charged.WithLabelValues(p)
	}
	penalised := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "icn_network_penalised_peers",
		Help: "Peers whose decayed penalty count is at least 0.5 unit (one offence within the last half-life), at scrape time.",
	}, func() float64 { return float64(rec.Count(penalisedUnits)) })
	for _, c := range []prometheus.Collector{g.charged, g.disconnects, penalised} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// AppScore is the peer's P5 term for GossipSub.
func (g *penaltyGuard) AppScore(p peer.ID) float64 { return g.rec.AppScore(p) }

// penaltyCharger charges one protocol's violations on one stack's host.
// It satisfies each protocol's Penalizer.
type penaltyCharger struct {
	g     *penaltyGuard
	h     host.Host
	proto string
}

// Add charges units to p.
func (c penaltyCharger) Add(p peer.ID, units float64) { c.g.charge(c.h, p, units, c.proto) }

// charger is what protocol proto on host h charges.
func (g *penaltyGuard) charger(h host.Host, proto string) penaltyCharger {
	return penaltyCharger{g: g, h: h, proto: proto}
}

// charge bills p units for an offence on proto. The charge that takes p to
// the threshold disconnects it (on h, if set) and is logged and counted;
// a charge to a peer refused already hangs up on it again (a connection
// that slipped through as it crossed).
func (g *penaltyGuard) charge(h host.Host, p peer.ID, units float64, proto string) {
	if units <= 0 {
		return
	}
	g.charged.WithLabelValues(proto).Add(units)
	g.mu.Lock()
	was := g.refusedLocked(p, g.rec.Units(p))
	g.rec.Add(p, units)
	u := g.rec.Units(p)
	crossed := !was && u >= g.disconnect
	if crossed {
		g.pruneLocked()
		g.refused[p] = struct{}{}
	}
	g.mu.Unlock()
	if crossed {
		g.disconnects.Inc()
		attrs := []any{"peer", p, "units", math.Round(u*100) / 100, "threshold", g.disconnect, "protocol", proto}
		if g.book != nil {
			if bd, ok := g.book.ByPeer(p); ok {
				attrs = append(attrs, "did", bd.DID)
			}
		}
		attrs = append(attrs, "refused_for", g.refusedFor(u).Round(time.Second))
		g.log.Warn("SECURITY: peer penalised past the disconnect threshold; disconnecting", attrs...)
	}
	if (crossed || was) && h != nil {
		_ = h.Network().ClosePeer(p)
	}
}

// refusedFor is how long a peer with count u stays refused if it commits
// nothing more: until u has decayed below release.
func (g *penaltyGuard) refusedFor(u float64) time.Duration {
	if u < g.release {
		return 0
	}
	return time.Duration(float64(g.rec.HalfLife()) * math.Log2(u/g.release))
}

// refusedLocked reports whether p, whose count is u, is refused: its count
// is at the threshold, or it crossed it and has not decayed below release.
// A peer that has decayed below release is forgotten.
func (g *penaltyGuard) refusedLocked(p peer.ID, u float64) bool {
	if _, ok := g.refused[p]; ok {
		if u >= g.release {
			return true
		}
		delete(g.refused, p)
	}
	return u >= g.disconnect
}

// pruneLocked makes room in refused when it is full: peers that have
// decayed below release go.
func (g *penaltyGuard) pruneLocked() {
	if len(g.refused) < penaltyMaxRefused {
		return
	}
	for p := range g.refused {
		g.refusedLocked(p, g.rec.Units(p))
	}
}

// allow reports whether p may connect; a refusal is logged (at most once
// per peer per penaltyLogInterval).
func (g *penaltyGuard) allow(p peer.ID, dir network.Direction, stage string) bool {
	if g == nil {
		return true
	}
	u := g.rec.Units(p)
	g.mu.Lock()
	refused := g.refusedLocked(p, u)
	g.mu.Unlock()
	if refused {
		g.refuse(p, u, dir, stage)
	}
	return !refused
}

// units is p's decayed penalty count now, rounded to hundredths.
func (g *penaltyGuard) units(p peer.ID) float64 {
	if g == nil {
		return 0
	}
	return math.Round(g.rec.Units(p)*100) / 100
}

// refusal is a PenalisedPeerError if p is refused now, else nil.
func (g *penaltyGuard) refusal(p peer.ID) error {
	if g == nil {
		return nil
	}
	u := g.rec.Units(p)
	g.mu.Lock()
	refused := g.refusedLocked(p, u)
	g.mu.Unlock()
	if !refused {
		return nil
	}
	return &PenalisedPeerError{Peer: p, Units: math.Round(u*10) / 10, RefusedFor: g.refusedFor(u).Round(time.Second)}
}

func (g *penaltyGuard) refuse(p peer.ID, u float64, dir network.Direction, stage string) {
	if !g.shouldLog(p) {
		return
	}
	g.log.Info("SECURITY: penalised peer refused", "peer", p, "direction", directionName(dir), "stage", stage,
		"units", math.Round(u*100)/100, "refused_for", g.refusedFor(u).Round(time.Second))
}

// notifiee closes connections to refused peers as they open: a handshake
// that passed the gater just before the peer crossed the threshold.
func (g *penaltyGuard) notifiee() network.Notifiee {
	return &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if !g.allow(c.RemotePeer(), c.Stat().Direction, "connected") {
			_ = c.Close()
		}
	}}
}

// shouldLog reports whether p's refusal may be logged now, and if so notes it.
func (g *penaltyGuard) shouldLog(p peer.ID) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.logged[p]; ok && now.Sub(last) < penaltyLogInterval {
		return false
	}
	if len(g.logged) >= 1024 {
		for q, t := range g.logged {
			if now.Sub(t) >= penaltyLogInterval {
				delete(g.logged, q)
			}
		}
	}
	g.logged[p] = now
	return true
}
