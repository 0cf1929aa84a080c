package gossip

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// peerLimiter is a token bucket per peer. It holds at most max peers: peers
// idle for longer than idle are swept, and when full the least recently seen
// peer is evicted (it gets a fresh bucket if it comes back).
type peerLimiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration
	// tier, when set, gives each peer its own bucket (by trust class); it
	// is asked again at most every tierRefresh per peer.
	tier func(peer.ID) Tier

	mu    sync.Mutex
	peers map[peer.ID]*limEntry
}

type limEntry struct {
	lim    *rate.Limiter
	last   time.Time
	class  string
	relay  bool
	tierAt time.Time
}

// Tier is one peer's rate limit: its class's name (a metric label) and
// bucket.
type Tier struct {
	Class string
	Rate  float64
	Burst int
	// Relay marks a peer whose messages, relayed by a peer that is over
	// its limit, are charged to this peer's own bucket instead of dropped.
	Relay bool
}

// tierRefresh is how long a peer's tier is used before it is asked again,
// so a change of class takes effect within it without a lookup per message.
const tierRefresh = 2 * time.Second

// newTieredLimiter is the message limiter: tier, when set, decides each
// peer's bucket.
func newTieredLimiter(perSecond float64, burst int, tier func(peer.ID) Tier) *peerLimiter {
	l := newPeerLimiter(perSecond, burst, limiterPeers, limiterIdle)
	l.tier = tier
	return l
}

func newPeerLimiter(perSecond float64, burst, max int, idle time.Duration) *peerLimiter {
	return &peerLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, idle: idle, peers: map[peer.ID]*limEntry{}}
}

// allow takes one token from p's bucket and reports whether there was one,
// and the class p was limited as ("" without tiers).
func (l *peerLimiter) allow(p peer.ID, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entryLocked(p, now)
	return e.lim.AllowN(now, 1), e.class
}

// allowRelayed takes a token from the bucket of p, the publisher of a
// message relayed by a peer over its limit, when p's tier is marked Relay;
// it reports whether it did. The tier comes from p's entry, refreshed like
// any other, so a flood of relays costs no tier lookup per message.
func (l *peerLimiter) allowRelayed(p peer.ID, now time.Time) bool {
	if l.tier == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entryLocked(p, now)
	return e.relay && e.lim.AllowN(now, 1)
}

// entryLocked is p's entry, made (with its tier's full bucket) or its tier
// refreshed as needed; l.mu is held.
func (l *peerLimiter) entryLocked(p peer.ID, now time.Time) *limEntry {
	e := l.peers[p]
	if e == nil {
		if len(l.peers) >= l.max {
			l.sweepLocked(now)
		}
		if len(l.peers) >= l.max {
			l.evictLocked()
		}
		if l.tier != nil {
			t := l.tier(p)
			e = &limEntry{lim: rate.NewLimiter(rate.Limit(t.Rate), t.Burst), class: t.Class, relay: t.Relay, tierAt: now}
		} else {
			e = &limEntry{lim: rate.NewLimiter(l.limit, l.burst)}
		}
		l.peers[p] = e
	}
	if l.tier != nil && (now.Sub(e.tierAt) >= tierRefresh || now.Before(e.tierAt)) {
		t := l.tier(p)
		e.tierAt, e.class, e.relay = now, t.Class, t.Relay
		if rate.Limit(t.Rate) != e.lim.Limit() {
			e.lim.SetLimitAt(now, rate.Limit(t.Rate))
		}
		if t.Burst != e.lim.Burst() {
			e.lim.SetBurstAt(now, t.Burst)
		}
	}
	e.last = now
	return e
}

func (l *peerLimiter) evictLocked() {
	var victim peer.ID
	var oldest time.Time
	for p, e := range l.peers {
		if victim == "" || e.last.Before(oldest) {
			victim, oldest = p, e.last
		}
	}
	delete(l.peers, victim)
}

// sweep forgets peers idle for longer than the idle period (their buckets
// would be full again anyway).
func (l *peerLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *peerLimiter) sweepLocked(now time.Time) {
	for p, e := range l.peers {
		if now.Sub(e.last) > l.idle {
			delete(l.peers, p)
		}
	}
}

func (l *peerLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// allowed is allow's verdict alone.
func allowed(ok bool, _ string) bool { return ok }
