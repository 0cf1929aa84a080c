package gossip

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

func TestReplayWindow(t *testing.T) {
	now := time.Unix(1700000000, 0)
	w := newReplayWindow(2*time.Minute, 12*time.Minute)
	a := testIdentity(t).DID
	b := testIdentity(t).DID
	ts := uint64(now.UnixMilli())
	id1, id2 := IDOf([]byte("one")), IDOf([]byte("two"))

	require.Equal(t, fresh, w.check(a, 10, ts, id1, now))
	require.Equal(t, fresh, w.check(b, 10, ts, id2, now), "windows are per author")
	// The same envelope by another path, soon after: a harmless duplicate.
	require.Equal(t, duplicate, w.check(a, 10, ts, id1, now.Add(time.Second)))
	// The same envelope after the grace: a replay.
	require.Equal(t, replay, w.check(a, 10, ts, id1, now.Add(3*time.Minute)))
	// The same seq with other content: a replay at once.
	require.Equal(t, replay, w.check(a, 10, ts, id2, now))
	// Out of order is fine.
	require.Equal(t, fresh, w.check(a, 12, ts, IDOf([]byte("12")), now))
	require.Equal(t, fresh, w.check(a, 11, ts, IDOf([]byte("11")), now))
}

func TestReplayWindowSlides(t *testing.T) {
	now := time.Unix(1700000000, 0)
	w := newReplayWindow(time.Minute, 12*time.Minute)
	a := testIdentity(t).DID
	ts := uint64(now.UnixMilli())
	for seq := uint64(1); seq <= windowPerAuthor+10; seq++ {
		require.Equal(t, fresh, w.check(a, seq, ts, IDOf([]byte{byte(seq), byte(seq >> 8)}), now))
	}
	authors, seqs := w.size()
	require.Equal(t, 1, authors)
	require.Equal(t, windowPerAuthor, seqs, "bounded per author")
	// Below the window and signed within the grace: maybe a late copy of
	// one accepted (a re-keyed host asking for what a neighbour gossips),
	// dropped without blame.
	require.Equal(t, belowWindow, w.check(a, 5, ts, IDOf([]byte{5, 0}), now.Add(time.Second)))
	require.Equal(t, belowWindow, w.check(a, 10, ts, IDOf([]byte("new")), now.Add(59*time.Second)))
	// Below the window and older than the grace: a replay, whatever the
	// content (no honest neighbour forwards a message that old).
	require.Equal(t, replay, w.check(a, 5, ts, IDOf([]byte{5, 0}), now.Add(time.Minute)))
	require.Equal(t, replay, w.check(a, 10, ts-uint64(2*time.Minute/time.Millisecond), IDOf([]byte("new")), now))
	require.Equal(t, fresh, w.check(a, windowPerAuthor+11, ts, IDOf([]byte("next")), now))
}

func TestReplayWindowEvictionAndSweep(t *testing.T) {
	now := time.Unix(1700000000, 0)
	w := newReplayWindow(time.Minute, 12*time.Minute)
	w.maxAuth = 3
	a, b, c, d := testIdentity(t).DID, testIdentity(t).DID, testIdentity(t).DID, testIdentity(t).DID
	ts := uint64(now.UnixMilli())
	require.Equal(t, fresh, w.check(a, 1, ts-10, IDOf([]byte("a")), now))
	require.Equal(t, fresh, w.check(b, 1, ts, IDOf([]byte("b")), now.Add(time.Millisecond)))
	require.Equal(t, fresh, w.check(c, 1, ts, IDOf([]byte("c")), now.Add(2*time.Millisecond)))
	// d pushes out a, the least recently used.
	require.Equal(t, fresh, w.check(d, 1, ts+5, IDOf([]byte("d")), now.Add(3*time.Millisecond)))
	n, _ := w.size()
	require.Equal(t, 3, n)
	// a's old message cannot be told from a replay any more: forgotten.
	require.Equal(t, forgotten, w.check(a, 1, ts-10, IDOf([]byte("a")), now))
	// a's new messages are fine.
	require.Equal(t, fresh, w.check(a, 2, ts+1000, IDOf([]byte("a2")), now.Add(time.Second)))

	// Sweeping past the horizon forgets authors whose messages are all stale.
	w.sweep(now.Add(13 * time.Minute))
	n, _ = w.size()
	require.Equal(t, 0, n)
}

func TestPeerLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newPeerLimiter(10, 5, 3, time.Minute)
	p1, p2 := peer.ID("p1"), peer.ID("p2")
	passed := 0
	for range 50 {
		if allowed(l.allow(p1, now)) {
			passed++
		}
	}
	require.Equal(t, 5, passed, "the burst, then nothing without time passing")
	require.True(t, allowed(l.allow(p2, now)), "buckets are per peer")
	require.True(t, allowed(l.allow(p1, now.Add(100*time.Millisecond))), "10/s refills one token in 100ms")
	for i := range 10 {
		l.allow(peer.ID(rune('a'+i)), now)
	}
	require.LessOrEqual(t, l.size(), 3, "bounded")
	l.sweep(now.Add(2 * time.Minute))
	require.Equal(t, 0, l.size(), "idle peers are forgotten")
}

func TestRecentCacheBounds(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := newRecentCache(10*time.Minute, func() time.Time { return now })
	flooder := testIdentity(t).DID
	honest := testIdentity(t).DID
	ts := uint64(now.UnixMilli())
	add := func(author int, i int) MessageID {
		d := flooder
		if author == 1 {
			d = honest
		}
		raw := []byte{byte(author), byte(i), byte(i >> 8)}
		m := &Message{ID: IDOf(raw), Envelope: Envelope{Author: d, Timestamp: ts}}
		c.Add(m, raw)
		return m.ID
	}
	keep := add(1, 0)
	for i := range 1000 {
		add(0, i)
	}
	entries, _ := c.stats()
	require.Equal(t, CacheEntriesPerAuthor+1, entries, "one author cannot evict the others")
	require.Len(t, c.Get([][]byte{keep[:]}, 10, 1<<20), 1)
	for i := range 2 * CacheEntries {
		add(1, i+1)
	}
	entries, _ = c.stats()
	require.LessOrEqual(t, entries, CacheEntries)

	// Want skips what is held and what was asked for recently.
	heads := c.Heads()
	require.NotEmpty(t, heads)
	require.Empty(t, c.Want(heads))
	missing := IDOf([]byte("missing"))
	require.Len(t, c.Want([][]byte{missing[:]}), 1)
	require.Empty(t, c.Want([][]byte{missing[:]}), "asked for once a minute at most")

	// Entries older than the max age expire.
	now = now.Add(11 * time.Minute)
	require.Empty(t, c.Heads())
}

// When an author is at its cap, its oldest envelope by timestamp goes:
// a node just started that fetches an author's older messages from its
// neighbours keeps (and announces) the newer one it published meanwhile.
func TestRecentCacheKeepsTheAuthorsNewest(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := newRecentCache(10*time.Minute, func() time.Time { return now })
	a := testIdentity(t).DID
	add := func(i int, ts time.Time) MessageID {
		raw := []byte{byte(i), byte(i >> 8), 'x'}
		m := &Message{ID: IDOf(raw), Envelope: Envelope{Author: a, Timestamp: uint64(ts.UnixMilli())}}
		c.Add(m, raw)
		return m.ID
	}
	fresh := add(0, now)
	// Then twice the cap of older ones, oldest last.
	var older []MessageID
	for i := range 2 * CacheEntriesPerAuthor {
		older = append(older, add(i+1, now.Add(-time.Duration(i+1)*time.Second)))
	}
	entries, _ := c.stats()
	require.Equal(t, CacheEntriesPerAuthor, entries)
	heads := c.Heads()
	require.Contains(t, heads, fresh[:], "the newest is announced")
	require.Contains(t, heads, older[0][:])
	require.NotContains(t, heads, older[len(older)-1][:], "the oldest is not kept")
	require.Empty(t, c.Want([][]byte{older[len(older)-1][:]}), "nor asked for again at once")
}

// With tiers, each peer's bucket follows its tier, and a change of tier
// takes effect within tierRefresh; the class is reported with the verdict.
func TestTieredLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tiers := map[peer.ID]Tier{"low": {Class: "isolated", Rate: 10, Burst: 2}, "high": {Class: "federated", Rate: 200, Burst: 50}}
	l := newTieredLimiter(100, 20, func(p peer.ID) Tier { return tiers[p] })
	count := func(p peer.ID, at time.Time) (n int, class string) {
		for range 100 {
			ok, c := l.allow(p, at)
			class = c
			if ok {
				n++
			}
		}
		return n, class
	}
	n, class := count("low", now)
	require.Equal(t, 2, n)
	require.Equal(t, "isolated", class)
	n, class = count("high", now)
	require.Equal(t, 50, n)
	require.Equal(t, "federated", class)
	// "low" is promoted; after tierRefresh its burst is the new one.
	tiers["low"] = Tier{Class: "partner", Rate: 100, Burst: 20}
	later := now.Add(tierRefresh)
	_, class = count("low", later)
	require.Equal(t, "partner", class)
	// A second on, the bucket has refilled at the new rate up to the new
	// burst, which the old tier (10/s, burst 2) could not hold.
	n, _ = count("low", later.Add(time.Second))
	require.Equal(t, 20, n)
}

// A relayed message is charged to its publisher's bucket only when the
// publisher's tier says Relay, and the tier is not asked per message.
func TestAllowRelayed(t *testing.T) {
	now := time.Unix(1700000000, 0)
	asked := 0
	tiers := map[peer.ID]Tier{"trusted": {Class: "partner", Rate: 100, Burst: 3, Relay: true}, "stranger": {Class: "isolated", Rate: 10, Burst: 2}}
	l := newTieredLimiter(100, 20, func(p peer.ID) Tier { asked++; return tiers[p] })
	require.False(t, l.allowRelayed("stranger", now))
	n := 0
	for range 10 {
		if l.allowRelayed("trusted", now) {
			n++
		}
	}
	require.Equal(t, 3, n, "the publisher's burst")
	require.Equal(t, 2, asked, "one lookup per peer within tierRefresh")
	require.False(t, newPeerLimiter(100, 20, 10, time.Minute).allowRelayed("trusted", now), "no tiers, no relay credit")
}
