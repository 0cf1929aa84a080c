package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// gossipShared is the part of the gossip layer that outlives a key
// rotation: its config, its metrics and its memory (replay window, caches,
// joined topics). Each new stack builds a gossip.Service over it.
type gossipShared struct {
	cfg     gossip.Config
	memory  *gossip.Memory
	metrics *gossip.Metrics
}

// gossipConfig maps the [network], [rate_limiting] and [gossip] tables;
// checkEntry validates ledger entries pushed on currency topics.
func gossipConfig(cfg config.Config, checkEntry gossip.PayloadCheck) gossip.Config {
	return gossip.Config{
		NetworkID:        cfg.Network.NetworkID,
		MaxMessageSize:   cfg.Gossip.MaxMessageSize,
		ClockSkew:        cfg.Gossip.ClockSkew.Duration,
		MaxAge:           cfg.Gossip.MaxAge.Duration,
		AnnounceInterval: cfg.Gossip.AnnounceInterval.Duration,
		RateLimit:        cfg.RateLimiting.MessagesPerSecond,
		RateBurst:        cfg.RateLimiting.Burst,
		Types: map[string]gossip.PayloadCheck{LedgerEntryType: checkEntry, LedgerStateType: checkStatePayload,
			TrustAttestationType: checkAttestation},
		// A state announcement is for the announcer's neighbours: one that
		// differs pulls from it. Flooded, every node would receive every
		// node's, a load that grows with the network (docs/ledger.md).
		DirectTypes: []string{LedgerStateType},
	}
}

func newGossipShared(cfg config.Config, reg prometheus.Registerer, net *netMetrics, checkEntry gossip.PayloadCheck) (*gossipShared, error) {
	m, err := gossip.NewMetrics(reg, net.messagesReceived, net.messagesRateLimits)
	if err != nil {
		return nil, err
	}
	gc := gossipConfig(cfg, checkEntry)
	mem := gossip.NewMemory(gc)
	if err := gossip.RegisterMemoryMetrics(reg, mem); err != nil {
		return nil, err
	}
	return &gossipShared{cfg: gc, memory: mem, metrics: m}, nil
}

func newGossip(deps stackDeps, st *netStack) (*gossip.Service, error) {
	return gossip.New(deps.gossip.cfg, gossip.Deps{
		Host:     st.h,
		Identity: st.id,
		Bindings: deps.book,
		Memory:   deps.gossip.memory,
		Metrics:  deps.gossip.metrics,
		Log:      deps.log.With("component", "gossip"),
		AppScore: func(p peer.ID) float64 {
			return deps.penalty.AppScore(p) + classScore(deps.trustG.classOf(p))
		},
		Penalties:   deps.penalty.charger(st.h, penaltyGossipRequest),
		Tier:        deps.trustG.tier,
		AllowAuthor: deps.trustG.allowAuthor(),
		Tracer:      deps.tp.Tracer(gossipTracer),
	})
}

// GossipLeave leaves a topic; the ledger's topics cannot be left.
func (n *Node) GossipLeave(topic string) error {
	topic = CanonicalTopic(topic)
	if strings.HasPrefix(topic, "ledger:") {
		return fmt.Errorf("%s carries the ledger; the node stays on it: %w", topic, ErrLedgerTopic)
	}
	if topic == TrustTopic {
		return fmt.Errorf("%s carries the trust graph; the node stays on it: %w", topic, ErrLedgerTopic)
	}
	svc := n.current().gossip
	joined := false
	for _, t := range svc.Topics() {
		joined = joined || t.Topic == topic
	}
	if !joined {
		return &TopicNotJoinedError{Topic: topic}
	}
	return svc.Leave(topic)
}

// GossipWireTopic is the GossipSub topic a topic name travels on.
func (n *Node) GossipWireTopic(topic string) string {
	return gossip.WireTopic(n.cfg.Network.NetworkID, topic)
}

// GossipTopics lists the joined topics.
func (n *Node) GossipTopics() []controlapi.GossipTopic {
	infos := n.current().gossip.Topics()
	out := make([]controlapi.GossipTopic, len(infos))
	for i, t := range infos {
		out[i] = controlapi.GossipTopic{Topic: t.Topic, WireTopic: t.WireTopic, Subscribers: t.Subscribers,
			Peers: t.Peers, MeshPeers: t.MeshPeers, Stateful: t.Stateful, Cached: t.Cached}
	}
	return out
}

// GossipPublish signs and publishes a message as this node's DID.
func (n *Node) GossipPublish(ctx context.Context, req controlapi.GossipPublishRequest) (controlapi.GossipPublished, error) {
	req.Topic = CanonicalTopic(req.Topic)
	if err := gossip.CheckTopic(req.Topic); err != nil {
		return controlapi.GossipPublished{}, argErr(ArgTopic, req.Topic, err)
	}
	typ := req.Type
	if typ == "" {
		typ = gossip.TypeBinary
		if utf8.Valid(req.Data) {
			typ = gossip.TypeText
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := n.current().gossip.Publish(ctx, req.Topic, typ, req.Data)
	if err != nil {
		if errors.As(err, new(*gossip.TooLargeError)) || errors.Is(err, gossip.ErrStopped) || ctx.Err() != nil {
			return controlapi.GossipPublished{}, err
		}
		// What is left is the payload type: reserved or unknown.
		return controlapi.GossipPublished{}, argErr(ArgType, typ, err)
	}
	return controlapi.GossipPublished{ID: p.ID.String(), Topic: p.Topic, Seq: p.Seq, Peers: p.Peers}, nil
}

// GossipSubscribe subscribes in process (tests and future subsystems).
func (n *Node) GossipSubscribe(topic string) (*gossip.Subscription, error) {
	return n.current().gossip.Subscribe(CanonicalTopic(topic), 0)
}

// Gossip is the current stack's gossip service (a key rotation replaces it).
func (n *Node) Gossip() *gossip.Service { return n.current().gossip }
