package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/trust"
)

// trustGuard applies the [trust] policy (docs/trust.md). In both modes it
// tiers each peer's gossip rate limit by its class and adds the class to
// the peer's gossip score. In trusted mode it also refuses connections
// from peers below the connect bar (after the handshake, and again when a
// rotated key's binding arrives or the scores change), ledger entries by
// authors below the ledger class, and gossip by authors below the gossip
// class. It outlives key rotations.
type trustGuard struct {
	cfg       config.Config
	graph     *trustgraph.Graph
	book      *identity.Book
	log       *slog.Logger
	bootstrap map[peer.ID]bool
	rejected  prometheus.Counter
	// refusedEntries counts ledger entries refused by the ledger class.
	refusedEntries prometheus.Counter

	mu     sync.Mutex
	logged map[peer.ID]time.Time
	// loggedAuthors rate-limits the log line of refused entries.
	loggedAuthors map[did.DID]time.Time
}

func newTrustGuard(cfg config.Config, graph *trustgraph.Graph, book *identity.Book, reg prometheus.Registerer, log *slog.Logger) (*trustGuard, error) {
	g := &trustGuard{cfg: cfg, graph: graph, book: book, log: log, bootstrap: map[peer.ID]bool{}, logged: map[peer.ID]time.Time{},
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_network_connections_rejected_untrusted_total",
			Help: "Connections refused or closed in trusted mode because the peer's DID is below the connect bar ([trust] min_connect_class or network.min_trust_threshold)."}),
		refusedEntries: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_entries_refused_untrusted_total",
			Help: "Ledger entries refused in trusted mode because their author is below [trust] min_ledger_class (not stored; sync brings them once the author is trusted)."}),
		loggedAuthors: map[did.DID]time.Time{}}
	for _, a := range cfg.Network.BootstrapPeers {
		if m, err := config.AddrMultiaddr(a); err == nil {
			if ai, err := peer.AddrInfoFromP2pAddr(m); err == nil {
				g.bootstrap[ai.ID] = true
			}
		}
	}
	for _, c := range []prometheus.Collector{g.rejected, g.refusedEntries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *trustGuard) trusted() bool { return g != nil && g.cfg.Trust.Mode == config.TrustTrusted }

// didOf is the DID a peer speaks for: its verified binding, else the DID
// its key derives (a node that never rotated).
func (g *trustGuard) didOf(p peer.ID) (did.DID, bool) {
	if bd, ok := g.book.ByPeer(p); ok {
		return bd.DID, true
	}
	d, err := did.FromPeerID(p)
	return d, err == nil
}

func (g *trustGuard) classOf(p peer.ID) trust.Class {
	d, ok := g.didOf(p)
	if !ok {
		return trust.Isolated
	}
	return g.graph.Class(d)
}

// tier is the gossip rate limit of p's class; in open mode never below
// [rate_limiting]'s bucket, so trust only ever raises it there.
func (g *trustGuard) tier(p peer.ID) gossip.Tier {
	c := g.classOf(p)
	rl := g.cfg.Trust.RateLimits
	r := map[trust.Class]config.RateLimiting{trust.Isolated: rl.Isolated, trust.Known: rl.Known, trust.Partner: rl.Partner, trust.Federated: rl.Federated}[c]
	if !g.trusted() {
		r.MessagesPerSecond = max(r.MessagesPerSecond, g.cfg.RateLimiting.MessagesPerSecond)
		r.Burst = max(r.Burst, g.cfg.RateLimiting.Burst)
	}
	return gossip.Tier{Class: c.String(), Rate: r.MessagesPerSecond, Burst: r.Burst, Relay: c >= trust.Known}
}

// classScore is the class's part of a peer's gossip score (P5, beside the
// penalties): trusted peers are kept in meshes over strangers.
func classScore(c trust.Class) float64 {
	return [...]float64{trust.Isolated: 0, trust.Known: 5, trust.Partner: 10, trust.Federated: 20}[c]
}

// allowAuthor is gossip's author gate in trusted mode (nil in open mode).
func (g *trustGuard) allowAuthor() func(did.DID) bool {
	if !g.trusted() {
		return nil
	}
	min := mustClass(g.cfg.Trust.MinGossipClass)
	return func(d did.DID) bool { return g.graph.Class(d) >= min }
}

// UntrustedAuthorError refuses a ledger entry by an author below the
// ledger class in trusted mode.
type UntrustedAuthorError struct {
	Author did.DID
	Class  trust.Class
	Need   trust.Class
}

func (e *UntrustedAuthorError) Error() string {
	return fmt.Sprintf("entry author %s is %s here; trusted mode admits ledger entries by %s DIDs and above", e.Author, e.Class, e.Need)
}

// admitEntry is the ledger's admission policy in trusted mode.
func (g *trustGuard) admitEntry(self did.DID) func(*ledger.Entry) error {
	min := mustClass(g.cfg.Trust.MinLedgerClass)
	return func(e *ledger.Entry) error {
		if e.Author == self {
			return nil
		}
		if c := g.graph.Class(e.Author); c < min {
			g.refusedEntries.Inc()
			g.noteRefusedEntry(e.Author, c, min)
			return &UntrustedAuthorError{Author: e.Author, Class: c, Need: min}
		}
		return nil
	}
}

// mayConnect reports whether p may stay connected in trusted mode: its
// DID's score reaches the connect bar, or it is one of this node's own
// bootstrap peers (listed by the operator, needed to find the network; it
// still meets the ledger and gossip classes).
func (g *trustGuard) mayConnect(p peer.ID) (bool, did.DID, float64) {
	d, ok := g.didOf(p)
	if !ok {
		return false, did.DID{}, 0
	}
	if !g.trusted() || g.bootstrap[p] {
		return true, d, 0
	}
	s := g.graph.Scores().Score(d)
	return s >= g.cfg.MinConnectScore(), d, s
}

// allow is the gater's check once the handshake named the peer.
func (g *trustGuard) allow(p peer.ID, dir network.Direction, stage string) bool {
	if !g.trusted() {
		return true
	}
	ok, d, s := g.mayConnect(p)
	if !ok {
		g.refuse(p, d, s, dir, stage)
	}
	return ok
}

func (g *trustGuard) refuse(p peer.ID, d did.DID, score float64, dir network.Direction, stage string) {
	g.rejected.Inc()
	now := time.Now()
	g.mu.Lock()
	last, seen := g.logged[p]
	if seen && now.Sub(last) < blockLogInterval {
		g.mu.Unlock()
		return
	}
	if len(g.logged) >= 1024 {
		clear(g.logged)
	}
	g.logged[p] = now
	g.mu.Unlock()
	g.log.Warn("SECURITY untrusted peer refused", "peer", p, "did", d, "score", score, "class", trust.ClassOf(score).String(),
		"need", g.cfg.MinConnectScore(), "direction", directionName(dir), "stage", stage)
}

// onBinding re-checks a peer once its verified binding names its DID (a
// rotated node key derives no DID of its own).
func (g *trustGuard) onBinding(h host.Host) func(context.Context, did.Binding) {
	if !g.trusted() {
		return nil
	}
	return func(_ context.Context, bd did.Binding) {
		if ok, d, s := g.mayConnect(bd.PeerID); !ok {
			for _, c := range h.Network().ConnsToPeer(bd.PeerID) {
				g.refuse(bd.PeerID, d, s, c.Stat().Direction, "identified")
			}
			_ = h.Network().ClosePeer(bd.PeerID)
		}
	}
}

// recheck closes connections to peers that fell below the bar (an
// attestation was revoked or expired).
func (g *trustGuard) recheck(h host.Host) {
	if !g.trusted() || h == nil {
		return
	}
	for _, p := range h.Network().Peers() {
		if ok, d, s := g.mayConnect(p); !ok {
			for _, c := range h.Network().ConnsToPeer(p) {
				g.refuse(p, d, s, c.Stat().Direction, "rescored")
			}
			_ = h.Network().ClosePeer(p)
		}
	}
}

// noteRefusedEntry logs a refused author at most once per blockLogInterval.
func (g *trustGuard) noteRefusedEntry(author did.DID, c, need trust.Class) {
	now := time.Now()
	g.mu.Lock()
	if last, ok := g.loggedAuthors[author]; ok && now.Sub(last) < blockLogInterval {
		g.mu.Unlock()
		return
	}
	if len(g.loggedAuthors) >= 1024 {
		clear(g.loggedAuthors)
	}
	g.loggedAuthors[author] = now
	g.mu.Unlock()
	g.log.Info("ledger entries refused: their author is below the ledger class", "author", author, "class", c.String(), "need", need.String())
}
