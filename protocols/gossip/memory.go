package gossip

import (
	"sort"
	"sync"
	"time"
)

// Memory is the part of the gossip layer that outlives a Service. A key
// rotation replaces the libp2p host and with it the Service (and
// GossipSub's own seen-message cache); the replay window, the per-topic
// caches, the registered states, the topics joined and the author sequence
// counter carry over, so a re-keyed node neither delivers a message twice
// nor accepts an old one again, and rejoins its topics. Safe for concurrent use.
type Memory struct {
	window *replayWindow
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	lastSeq uint64
	joined  map[string]bool         // short topic names to (re)join
	states  map[string]State        // registered by the node (the ledger)
	caches  map[string]*recentCache // default states of the other topics
}

// NewMemory returns an empty memory for services with cfg (the same
// network, max age and clock skew must be used by every service sharing it).
func NewMemory(cfg Config) *Memory {
	cfg.defaults()
	return &Memory{
		window: newReplayWindow(cfg.DuplicateGrace, cfg.MaxAge+cfg.ClockSkew),
		maxAge: cfg.MaxAge,
		now:    cfg.Now,
		joined: map[string]bool{},
		states: map[string]State{},
		caches: map[string]*recentCache{},
	}
}

// nextSeq returns the author's next sequence number: the current time in
// microseconds, or one more than the last if the clock has not moved on.
// It therefore increases across restarts without being stored, as long as
// the clock does not go back.
func (m *Memory) nextSeq(now time.Time) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSeq = max(m.lastSeq+1, uint64(now.UnixMicro()))
	return m.lastSeq
}

// RegisterState makes a topic stateful: services announce st's heads on it
// and fetch what st wants from peers. It also marks the topic joined.
func (m *Memory) RegisterState(short string, st State) error {
	if err := CheckTopic(short); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[short] = st
	m.joined[short] = true
	delete(m.caches, short)
	return nil
}

// state returns the topic's registered state or its cache, and whether it
// was registered.
func (m *Memory) state(short string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.states[short]; ok {
		return st, true
	}
	c := m.caches[short]
	if c == nil {
		c = newRecentCache(m.maxAge, m.now)
		m.caches[short] = c
	}
	return c, false
}

func (m *Memory) setJoined(short string, joined bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if joined {
		m.joined[short] = true
		return
	}
	delete(m.joined, short)
	delete(m.caches, short)
}

func (m *Memory) joinedTopics() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.joined))
	for t := range m.joined {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// sweep expires what has aged out.
func (m *Memory) sweep(now time.Time) {
	m.window.sweep(now)
	m.mu.Lock()
	caches := make([]*recentCache, 0, len(m.caches))
	for _, c := range m.caches {
		caches = append(caches, c)
	}
	m.mu.Unlock()
	for _, c := range caches {
		c.sweep()
	}
}

// MemoryStats are the sizes of what the memory holds (for tests and metrics).
type MemoryStats struct {
	WindowAuthors int
	WindowSeqs    int
	CachedEntries int
	CachedBytes   int
}

// Stats reports the memory's sizes.
func (m *Memory) Stats() MemoryStats {
	var s MemoryStats
	s.WindowAuthors, s.WindowSeqs = m.window.size()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.caches {
		e, b := c.stats()
		s.CachedEntries += e
		s.CachedBytes += b
	}
	return s
}
