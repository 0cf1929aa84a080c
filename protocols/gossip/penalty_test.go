package gossip

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

func TestPenaltiesDecayAndRecover(t *testing.T) {
	clk := newClock()
	p := NewPenalties(PenaltyConfig{Now: clk.Now})
	bad := peer.ID("bad")
	require.Zero(t, p.AppScore(bad))

	// Ten bad blocks take a peer below the gossip threshold...
	for i := 0; i < 10; i++ {
		p.Add(bad, 1)
	}
	require.InDelta(t, -10*PenaltyWeight, p.AppScore(bad), 1e-9)
	require.Less(t, p.AppScore(bad), float64(scoreGossipThreshold))
	require.Greater(t, p.AppScore(bad), float64(scorePublishThreshold))

	// ...it halves every half-life...
	clk.Advance(PenaltyHalfLife)
	require.InDelta(t, -5*PenaltyWeight, p.AppScore(bad), 1e-9)

	// ...so it is back above the gossip threshold within minutes...
	p2 := NewPenalties(PenaltyConfig{Now: clk.Now})
	p2.Add(bad, 10)
	clk.Advance(2 * time.Minute)
	require.Less(t, p2.AppScore(bad), float64(scoreGossipThreshold), "still cut off after 2 minutes")
	clk.Advance(time.Minute)
	require.Greater(t, p2.AppScore(bad), float64(scoreGossipThreshold), "back above the gossip threshold after 3 minutes")

	// ...and forgotten once its count has decayed to nothing.
	clk.Advance(time.Hour)
	require.Zero(t, p2.AppScore(bad))
	require.Zero(t, p2.Len())

	// Other peers are untouched; nothing negative or zero counts.
	p.Add(peer.ID("other"), 0)
	p.Add(peer.ID("other"), -3)
	require.Zero(t, p.AppScore(peer.ID("other")))
}

func TestPenaltiesAreCapped(t *testing.T) {
	clk := newClock()
	p := NewPenalties(PenaltyConfig{Now: clk.Now})
	bad := peer.ID("flood")
	p.Add(bad, 200_000) // a whole response of bad blocks
	require.InDelta(t, -PenaltyCap*PenaltyWeight, p.AppScore(bad), 1e-9)
	require.Less(t, p.AppScore(bad), float64(scoreGraylistThreshold))
	// The cap bounds how long the peer stays cut off: about 20 minutes.
	clk.Advance(19 * time.Minute)
	require.Less(t, p.AppScore(bad), float64(scoreGossipThreshold))
	clk.Advance(2 * time.Minute)
	require.Greater(t, p.AppScore(bad), float64(scoreGossipThreshold))
}

func TestPenaltiesRememberBoundedPeers(t *testing.T) {
	clk := newClock()
	p := NewPenalties(PenaltyConfig{Now: clk.Now, MaxPeers: 3})
	p.Add("a", 50)
	p.Add("b", 1)
	p.Add("c", 20)
	p.Add("d", 10) // full: the smallest, b, goes
	require.Equal(t, 3, p.Len())
	require.Zero(t, p.Units("b"))
	require.Positive(t, p.Units("a"))
	require.Positive(t, p.Units("d"))

	// Decayed counts are dropped first, whatever their size was.
	clk.Advance(2 * time.Hour)
	p.Add("a", 1) // a fresh charge on a known peer needs no room
	p.Add("e", 1)
	require.Equal(t, 2, p.Len())
	require.InDelta(t, 1, p.Units("a"), 0.01)
	require.Equal(t, 1.0, p.Units("e"))
}

func TestPenaltiesConcurrentUse(t *testing.T) {
	p := NewPenalties(PenaltyConfig{MaxPeers: 64})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				id := peer.ID(fmt.Sprint(i % 100))
				p.Add(id, 1)
				_ = p.AppScore(id)
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, p.Len(), 64)
}

// Penalties reach GossipSub: a peer charged for bad blocks (as the node does
// for blocks served over ledgersync) drops below the gossip threshold in the
// score GossipSub itself computes.
func TestPenaltiesLowerTheGossipScore(t *testing.T) {
	pen := NewPenalties(PenaltyConfig{})
	victim := newNode(t, func(_ *Config, d *Deps) { d.AppScore = pen.AppScore })
	other := newNode(t)
	link(t, victim, other)
	require.Eventually(t, func() bool { _, ok := victim.svc.PeerScore(other.h.ID()); return ok },
		10*time.Second, 20*time.Millisecond, "GossipSub never scored the peer")
	s, _ := victim.svc.PeerScore(other.h.ID())
	require.GreaterOrEqual(t, s, 0.0)

	for i := 0; i < 10; i++ {
		pen.Add(other.h.ID(), 1)
	}
	require.Eventually(t, func() bool {
		s, _ := victim.svc.PeerScore(other.h.ID())
		return s < scoreGossipThreshold
	}, 10*time.Second, 20*time.Millisecond, "ten bad blocks did not take the peer below the gossip threshold")
}

// Count sees the decayed counts: a peer drops out as its count decays.
func TestPenaltiesCount(t *testing.T) {
	clk := newClock()
	p := NewPenalties(PenaltyConfig{Now: clk.Now})
	require.Zero(t, p.Count(0.5))
	p.Add("a", 1)
	p.Add("b", 4)
	require.Equal(t, 2, p.Count(0.5))
	require.Equal(t, 1, p.Count(2))
	clk.Advance(PenaltyHalfLife) // a: 0.5, b: 2
	require.Equal(t, 2, p.Count(0.5))
	require.Equal(t, 1, p.Count(2))
	clk.Advance(time.Second)
	require.Equal(t, 1, p.Count(0.5))
	require.Zero(t, p.Count(2))
	require.Equal(t, PenaltyHalfLife, p.HalfLife())
	require.Equal(t, float64(PenaltyCap), p.Cap())
}
