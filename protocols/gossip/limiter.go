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

	mu    sync.Mutex
	peers map[peer.ID]*limEntry
}

type limEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newPeerLimiter(perSecond float64, burst, max int, idle time.Duration) *peerLimiter {
	return &peerLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, idle: idle, peers: map[peer.ID]*limEntry{}}
}

// allow takes one token from p's bucket and reports whether there was one.
func (l *peerLimiter) allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	if e == nil {
		if len(l.peers) >= l.max {
			l.sweepLocked(now)
		}
		if len(l.peers) >= l.max {
			l.evictLocked()
		}
		e = &limEntry{lim: rate.NewLimiter(l.limit, l.burst)}
		l.peers[p] = e
	}
	e.last = now
	return e.lim.AllowN(now, 1)
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
