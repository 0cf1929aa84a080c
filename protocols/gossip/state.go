package gossip

import (
	"container/list"
	"sync"
	"time"

	"github.com/intercooperative/icn/did"
)

// State is what a stateful topic holds. The service announces Heads on the
// topic every announce interval; a peer that lacks something asks the
// announcer over /icn/gossip/req/1.0.0 for the keys its own State.Want
// returns, and ingests the envelopes State.Get returns through the same
// validation as gossip. Heads and keys are opaque to the service: the
// default State uses message IDs; the ledger can use per-author sequence
// vectors ("author|seq" keys) and answer with every entry after them.
//
// Implementations must be safe for concurrent use and must not block.
type State interface {
	// Heads summarises what the state holds: at most MaxHeads keys of
	// 1..MaxKeyLen bytes.
	Heads() [][]byte
	// Want returns the keys to request from a peer that announced heads,
	// or nil when nothing is missing (at most MaxHeads keys).
	Want(heads [][]byte) [][]byte
	// Get returns encoded envelopes of this topic answering keys: at most
	// maxCount, maxBytes in total.
	Get(keys [][]byte, maxCount, maxBytes int) [][]byte
	// Add is called with every envelope accepted on the topic (from gossip,
	// a request, or a local publish). m must be treated as read-only.
	Add(m *Message, raw []byte)
}

// Bounds of the default State, the per-topic cache of recent envelopes.
const (
	// CacheEntries is how many envelopes one topic's cache holds.
	CacheEntries = 256
	// CacheEntriesPerAuthor stops one author from evicting everyone else.
	CacheEntriesPerAuthor = 64
	// wantedTTL is how long a requested ID is not requested again.
	wantedTTL = time.Minute
	maxWanted = 4 * CacheEntries
)

// recentCache is the default State of a topic: the most recent envelopes
// younger than the max age, whose IDs it announces, so a peer that missed
// some (the rate limiter dropped them, or it was briefly disconnected) can
// fetch them.
type recentCache struct {
	maxAge time.Duration
	now    func() time.Time

	mu       sync.Mutex
	order    *list.List // of *cacheEntry, oldest first
	byID     map[MessageID]*list.Element
	byAuthor map[did.DID]int
	wanted   map[MessageID]time.Time // IDs requested recently
	bytes    int
}

type cacheEntry struct {
	id      MessageID
	author  did.DID
	ts      uint64
	raw     []byte
	checked bool // the envelope's own signature was verified
}

func newRecentCache(maxAge time.Duration, now func() time.Time) *recentCache {
	return &recentCache{maxAge: maxAge, now: now, order: list.New(), byID: map[MessageID]*list.Element{},
		byAuthor: map[did.DID]int{}, wanted: map[MessageID]time.Time{}}
}

func (c *recentCache) Add(m *Message, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[m.ID]; ok {
		return
	}
	if c.byAuthor[m.Author] >= CacheEntriesPerAuthor {
		// The author's oldest envelope by its own clock goes, not the
		// first to arrive: a node that has just started fetches its
		// neighbours' recent messages, older than what it published
		// meanwhile, and evicting by arrival pushed its own new message
		// out of what it announces, so a peer that missed it never fetched
		// it (seen in TestChaosRestartUnderLoad).
		var oldest *list.Element
		for el := c.order.Front(); el != nil; el = el.Next() {
			if e := el.Value.(*cacheEntry); e.author == m.Author && (oldest == nil || e.ts < oldest.Value.(*cacheEntry).ts) {
				oldest = el
			}
		}
		if oldest != nil && oldest.Value.(*cacheEntry).ts > m.Timestamp {
			// Older than all the author's held: not kept, and not asked
			// for again for a while.
			if len(c.wanted) < maxWanted {
				c.wanted[m.ID] = c.now()
			}
			return
		}
		if oldest != nil {
			c.removeLocked(oldest)
		}
	}
	delete(c.wanted, m.ID)
	e := &cacheEntry{id: m.ID, author: m.Author, ts: m.Timestamp, raw: raw, checked: m.sigChecked}
	c.byID[m.ID] = c.order.PushBack(e)
	c.byAuthor[m.Author]++
	c.bytes += len(raw)
	for c.order.Len() > CacheEntries {
		c.removeLocked(c.order.Front())
	}
}

func (c *recentCache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.byID, e.id)
	if c.byAuthor[e.author]--; c.byAuthor[e.author] <= 0 {
		delete(c.byAuthor, e.author)
	}
	c.bytes -= len(e.raw)
}

// expireLocked drops entries older than the max age: peers would reject them.
func (c *recentCache) expireLocked(now time.Time) {
	cutoff := uint64(now.Add(-c.maxAge).UnixMilli())
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).ts < cutoff {
			c.removeLocked(el)
		}
		el = next
	}
	for id, t := range c.wanted {
		if now.Sub(t) > wantedTTL {
			delete(c.wanted, id)
		}
	}
}

// Heads are the IDs of the cached envelopes, newest first.
func (c *recentCache) Heads() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(c.now())
	out := make([][]byte, 0, c.order.Len())
	for el := c.order.Back(); el != nil && len(out) < MaxHeads; el = el.Prev() {
		id := el.Value.(*cacheEntry).id
		out = append(out, append([]byte{}, id[:]...))
	}
	return out
}

// Want returns the announced IDs not cached and not requested in the last minute.
func (c *recentCache) Want(heads [][]byte) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out [][]byte
	for _, h := range heads {
		var id MessageID
		if len(h) != len(id) {
			continue
		}
		copy(id[:], h)
		if _, ok := c.byID[id]; ok {
			continue
		}
		if t, ok := c.wanted[id]; ok && now.Sub(t) < wantedTTL {
			continue
		}
		if len(c.wanted) >= maxWanted {
			c.expireLocked(now)
			if len(c.wanted) >= maxWanted {
				break
			}
		}
		c.wanted[id] = now
		out = append(out, h)
	}
	return out
}

func (c *recentCache) Get(keys [][]byte, maxCount, maxBytes int) [][]byte {
	return c.getVerified(keys, maxCount, maxBytes, nil)
}

// getVerified is Get that first verifies (with verify) the envelopes whose
// own signature was not checked on arrival, and drops those that fail, so
// this node never serves an envelope a peer would reject.
func (c *recentCache) getVerified(keys [][]byte, maxCount, maxBytes int, verify func(raw []byte) bool) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	total := 0
	for _, k := range keys {
		var id MessageID
		if len(k) != len(id) {
			continue
		}
		copy(id[:], k)
		el, ok := c.byID[id]
		if !ok {
			continue
		}
		e := el.Value.(*cacheEntry)
		raw := e.raw
		if len(out) >= maxCount || total+len(raw) > maxBytes {
			break
		}
		if !e.checked && verify != nil {
			if !verify(raw) {
				c.removeLocked(el)
				continue
			}
			e.checked = true
		}
		out = append(out, raw)
		total += len(raw)
	}
	return out
}

// stats reports the entries and bytes held.
func (c *recentCache) stats() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}

// sweep expires old entries.
func (c *recentCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(c.now())
}
