// Package penaltytest is the recording Penalizer the protocols' tests
// share: it remembers what each peer was charged.
package penaltytest

import (
	"maps"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Charges records what a Penalizer was told. Its zero value is ready.
type Charges struct {
	mu sync.Mutex
	by map[peer.ID]float64
	n  int
}

// Add records units charged to p.
func (c *Charges) Add(p peer.ID, units float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[peer.ID]float64{}
	}
	c.by[p] += units
	c.n++
}

// Snapshot is the units charged per peer and the number of charges.
func (c *Charges) Snapshot() (map[peer.ID]float64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by), c.n
}
