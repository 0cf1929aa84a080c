package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring (docs/gossip.md explains each number). A peer's score is the
// sum over topics of the topic terms (capped at TopicScoreCap when
// positive) plus the peer-wide penalties. An invalid message (a validator
// Reject) costs InvalidMessageDeliveriesWeight × count², so one costs 20,
// three push a peer below the gossip threshold, four below the publish
// threshold and five into the graylist, where its RPCs are ignored.
const (
	scoreGossipThreshold    = -100
	scorePublishThreshold   = -200
	scoreGraylistThreshold  = -400
	scoreAcceptPXThreshold  = 100 // peer exchange is off; kept for completeness
	scoreOpportunisticGraft = 2

	scoreTopicCap            = 40
	scoreInvalidWeight       = -20
	scoreFirstDeliveryWeight = 0.5
	scoreFirstDeliveryCap    = 40
	scoreTimeInMeshWeight    = 0.01
	scoreTimeInMeshCap       = 600
)

// ScoreThresholds are the thresholds every node uses.
func ScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             scoreGossipThreshold,
		PublishThreshold:            scorePublishThreshold,
		GraylistThreshold:           scoreGraylistThreshold,
		AcceptPXThreshold:           scoreAcceptPXThreshold,
		OpportunisticGraftThreshold: scoreOpportunisticGraft,
	}
}

// ScoreParams are the peer-wide score parameters. Per-topic parameters are
// set on each topic when it is joined (TopicScoreParams). app is P5, the
// application-specific score (for example (*Penalties).AppScore); nil means
// 0 for every peer. GossipSub calls it under its score lock: it must be quick.
func ScoreParams(app func(peer.ID) float64) *pubsub.PeerScoreParams {
	if app == nil {
		app = func(peer.ID) float64 { return 0 }
	}
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: scoreTopicCap,
		// P5: what the node learnt of the peer outside GossipSub (bad ledger
		// blocks served by sync, see Penalties); later also the trust graph.
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		// P6: more than 10 peers behind one IP cost (n-10)² × 5. Cooperatives
		// behind one NAT are common, so the threshold is generous; loopback
		// addresses are exempt in go-libp2p-pubsub.
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 10,
		// P7: router-detected misbehaviour (GRAFT during backoff, broken IWANT
		// promises) beyond 6 costs the square of the excess × 10.
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		// A peer that disconnects and comes back keeps its (bad) score.
		RetainScore: 10 * time.Minute,
	}
}

// TopicScoreParams are set on every joined topic.
func TopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,
		// P1: +0.01 per second in the mesh, up to +6 after 10 minutes.
		TimeInMeshWeight:  scoreTimeInMeshWeight,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     scoreTimeInMeshCap,
		// P2: +0.5 per message first delivered by the peer, up to +20,
		// decaying to nothing over 10 minutes.
		FirstMessageDeliveriesWeight: scoreFirstDeliveryWeight,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:    scoreFirstDeliveryCap,
		// P3 and P3b (mesh delivery deficits) are off: cooperative topics
		// are quiet and bursty, and a deficit penalty would punish honest
		// peers for silence.
		// P4: invalid messages cost 20 × count², decaying over an hour.
		InvalidMessageDeliveriesWeight: scoreInvalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
