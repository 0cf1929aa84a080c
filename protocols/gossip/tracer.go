package gossip

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows GossipSub's mesh (GRAFT/PRUNE) per topic and counts
// the messages GossipSub itself drops. GossipSub calls it from its event
// loop, so every method is short.
type meshTracer struct {
	m *Metrics

	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer(m *Metrics) *meshTracer {
	return &meshTracer{m: m, mesh: map[string]map[peer.ID]struct{}{}}
}

// count returns how many of peers (the topic's connected peers) are in the
// topic's mesh. Peers that disconnected without a PRUNE drop out this way.
func (t *meshTracer) count(topic string, peers []peer.ID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range peers {
		if _, ok := t.mesh[topic][p]; ok {
			n++
		}
	}
	return n
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.mesh[topic]
	if m == nil {
		m = map[peer.ID]struct{}{}
		t.mesh[topic] = m
	}
	m[p] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *meshTracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull:
		t.m.drop(DropValidationQueue)
	case pubsub.RejectValidationThrottled:
		t.m.drop(DropThrottled)
	}
}

func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID) { t.m.drop(DropOutboundQueue) }

func (t *meshTracer) UndeliverableMessage(*pubsub.Message) { t.m.drop(DropSlowSubscriber) }

func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (t *meshTracer) Join(string)                                          {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
