package gossip

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Penalties feed GossipSub's application-specific score (P5) with
// misbehaviour seen outside GossipSub, such as bad ledger blocks served over
// ledgersync, which GossipSub's own validators never see.
//
// Each offence adds units to the peer's count; the count decays
// exponentially with PenaltyHalfLife and is capped at PenaltyCap, and the
// peer's P5 is -PenaltyWeight × count. With the defaults, 10 bad blocks
// give -150, below the gossip threshold (-100); the peer is back above it
// after about 3 minutes and near zero after about 17. The cap (-1500)
// bounds the worst case to about 20 minutes below the gossip threshold.
//
// Decay is computed from timestamps when a count is read or added to, so
// Penalties runs no goroutine. At most PenaltyMaxPeers peers are
// remembered; when full, counts that have decayed to nothing go first, then
// the smallest. A Penalties is safe for concurrent use; AppScore is called
// by GossipSub under its score lock, so it only takes a short mutex.
type Penalties struct {
	cfg   PenaltyConfig
	mu    sync.Mutex
	peers map[peer.ID]penalty
}

// penalty is a count as of a moment.
type penalty struct {
	units float64
	at    time.Time
}

// Defaults of PenaltyConfig.
const (
	PenaltyWeight   = 15
	PenaltyHalfLife = 5 * time.Minute
	PenaltyCap      = 100
	PenaltyMaxPeers = 4096
	// penaltyForgotten is the count below which a peer is forgotten.
	penaltyForgotten = 0.01
)

// PenaltyConfig configures Penalties. Zero values mean the defaults.
type PenaltyConfig struct {
	// Weight is the score one unit costs.
	Weight float64
	// HalfLife is how long a count takes to halve.
	HalfLife time.Duration
	// Cap bounds one peer's count.
	Cap float64
	// MaxPeers bounds how many peers are remembered.
	MaxPeers int
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// NewPenalties returns an empty record.
func NewPenalties(cfg PenaltyConfig) *Penalties {
	if cfg.Weight <= 0 {
		cfg.Weight = PenaltyWeight
	}
	if cfg.HalfLife <= 0 {
		cfg.HalfLife = PenaltyHalfLife
	}
	if cfg.Cap <= 0 {
		cfg.Cap = PenaltyCap
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = PenaltyMaxPeers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Penalties{cfg: cfg, peers: map[peer.ID]penalty{}}
}

// decayed is the count of pe at now.
func (p *Penalties) decayed(pe penalty, now time.Time) float64 {
	dt := now.Sub(pe.at)
	if dt <= 0 {
		return pe.units
	}
	return pe.units * math.Exp2(-float64(dt)/float64(p.cfg.HalfLife))
}

// Add charges units (a bad block is one) to peer id.
func (p *Penalties) Add(id peer.ID, units float64) {
	if units <= 0 {
		return
	}
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.peers[id]
	if !ok && len(p.peers) >= p.cfg.MaxPeers {
		p.evictLocked(now)
	}
	v := units
	if ok {
		v += p.decayed(pe, now)
	}
	p.peers[id] = penalty{units: min(v, p.cfg.Cap), at: now}
}

// evictLocked makes room for one peer: it forgets every peer whose count
// has decayed to nothing, and if that freed nothing, the one with the
// smallest count.
func (p *Penalties) evictLocked(now time.Time) {
	var victim peer.ID
	least := math.Inf(1)
	for id, pe := range p.peers {
		v := p.decayed(pe, now)
		if v < penaltyForgotten {
			delete(p.peers, id)
			continue
		}
		if v < least {
			victim, least = id, v
		}
	}
	if len(p.peers) >= p.cfg.MaxPeers {
		delete(p.peers, victim)
	}
}

// Units is peer id's count now (0 for a peer with no record).
func (p *Penalties) Units(id peer.ID) float64 {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	pe, ok := p.peers[id]
	if !ok {
		return 0
	}
	v := p.decayed(pe, now)
	if v < penaltyForgotten {
		delete(p.peers, id)
		return 0
	}
	return v
}

// AppScore is the peer's P5 term: -Weight × its count. It is what
// ScoreParams' AppSpecificScore calls.
func (p *Penalties) AppScore(id peer.ID) float64 {
	if u := p.Units(id); u > 0 {
		return -p.cfg.Weight * u
	}
	return 0
}

// Len is how many peers have a record.
func (p *Penalties) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.peers)
}

// Count is how many peers have a count of at least units now. It walks
// every record (at most MaxPeers), so call it at scrape time, not per
// message.
func (p *Penalties) Count(units float64) int {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pe := range p.peers {
		if p.decayed(pe, now) >= units {
			n++
		}
	}
	return n
}

// HalfLife is how long a count takes to halve.
func (p *Penalties) HalfLife() time.Duration { return p.cfg.HalfLife }

// Cap bounds one peer's count.
func (p *Penalties) Cap() float64 { return p.cfg.Cap }
