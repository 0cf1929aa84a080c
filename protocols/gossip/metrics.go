package gossip

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a message is dropped by validation: the values of the reason label
// of icn_gossip_messages_rejected_total. Rejections marked (R) return
// ValidationReject and count against the peer that sent the message in
// GossipSub's peer score; the others return ValidationIgnore.
const (
	ReasonRateLimited     = "rate_limited"     // the sending peer exceeded its token bucket
	ReasonOversize        = "oversize"         // (R) larger than gossip.max_message_size
	ReasonMalformed       = "malformed"        // (R) not a valid envelope encoding
	ReasonUnknownType     = "unknown_type"     // (R) payload type not registered
	ReasonBadPayload      = "bad_payload"      // (R) payload does not match its type (text not UTF-8, bad JSON, bad announce)
	ReasonBadSignature    = "bad_signature"    // (R) the author's signature does not verify for this topic
	ReasonBindingMismatch = "binding_mismatch" // (R) the publishing peer speaks for the author's DID but is not its current node
	ReasonReplay          = "replay"           // (R) seq already used, or an envelope seen before sent again later
	ReasonStale           = "stale"            // timestamp older than gossip.max_age
	ReasonFuture          = "future"           // timestamp further ahead than gossip.clock_skew
	ReasonUntrusted       = "untrusted"        // author below the trust policy's gossip class (trusted mode); ignored, no penalty
)

// Reasons a peer's traffic is rate limited: the values of the reason label
// of icn_network_messages_rate_limited_by_topic_total.
const (
	// RateLimitMessages: a gossip message beyond the peer's token bucket
	// ([rate_limiting]); also counted in icn_network_messages_rate_limited_total.
	RateLimitMessages = "messages"
	// RateLimitRequests: a request over /icn/gossip/req/1.0.0 beyond the
	// peer's request bucket (2 per second, burst 8).
	RateLimitRequests = "requests"
)

// TopicOther is the topic label of traffic for a topic this node has not
// joined, so the label takes at most MaxTopics+1 values.
const TopicOther = "other"

// Reasons an accepted or not-yet-validated message is dropped without
// blame: the values of the reason label of icn_gossip_messages_dropped_total.
const (
	DropDuplicate       = "duplicate"        // the same envelope again by another path
	DropSlowSubscriber  = "slow_subscriber"  // a local subscriber's buffer was full
	DropValidationQueue = "validation_queue" // GossipSub's validation queue was full
	DropThrottled       = "throttled"        // the topic's validator concurrency was exhausted
	DropOutboundQueue   = "outbound_queue"   // a peer's outbound queue was full
	DropRelayedAnnounce = "relayed_announce" // an announce, or a direct type, not from its publisher (they travel one hop)
)

// Metrics are the icn_gossip_* series. Create them once per node (they must
// outlive the services that key rotations replace) and pass them to each.
type Metrics struct {
	entries       prometheus.Counter
	subscriptions prometheus.Gauge
	topics        prometheus.Gauge
	published     prometheus.Counter
	received      prometheus.Counter
	rejected      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	announcesRecv prometheus.Counter
	announcesSent prometheus.Counter
	requests      prometheus.Counter
	fetched       prometheus.Counter

	// The node's network counters, incremented alongside.
	networkReceived prometheus.Counter
	rateLimited     prometheus.Counter
	// rateLimitedBy is icn_network_messages_rate_limited_by_topic_total.
	rateLimitedBy *prometheus.CounterVec
	// rateLimitedClass is icn_network_messages_rate_limited_by_class_total.
	rateLimitedClass *prometheus.CounterVec
}

// NewMetrics registers the gossip series on reg. networkReceived and
// rateLimited are the node's icn_network_messages_received_total and
// icn_network_messages_rate_limited_total; nil means private counters
// (for tests).
func NewMetrics(reg prometheus.Registerer, networkReceived, rateLimited prometheus.Counter) (*Metrics, error) {
	if networkReceived == nil {
		networkReceived = prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_network_messages_received_total"})
	}
	if rateLimited == nil {
		rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_network_messages_rate_limited_total"})
	}
	m := &Metrics{
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_entries_total",
			Help: "Gossip envelopes accepted and delivered on joined topics (by gossip or by request), including the node's own, since start. A count of deliveries: what is held now is icn_gossip_entries_held.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "icn_gossip_subscriptions_total",
			Help: "Local topic subscriptions open now (icnctl gossip subscribe streams and in-process subscribers).",
		}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "icn_gossip_topics_joined",
			Help: "Gossip topics this node has joined (it relays their messages).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_messages_published_total",
			Help: "Envelopes this node published (not counting announces).",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_messages_received_total",
			Help: "Gossip messages received from peers and handed to validation (before rate limiting).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_gossip_messages_rejected_total",
			Help: "Gossip messages refused by validation, by reason (see docs/gossip.md).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_gossip_messages_dropped_total",
			Help: "Gossip messages dropped without blame, by reason: duplicate, slow_subscriber, validation_queue, throttled, outbound_queue, relayed_announce.",
		}, []string{"reason"}),
		announcesRecv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_announces_received_total",
			Help: "Head announcements accepted from neighbouring peers.",
		}),
		announcesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_announces_sent_total",
			Help: "Head announcements this node published.",
		}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_requests_received_total",
			Help: "Requests for missing envelopes received over /icn/gossip/req/1.0.0.",
		}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_gossip_entries_fetched_total",
			Help: "Envelopes obtained by request after an announce (a subset of icn_gossip_entries_total).",
		}),
		rateLimitedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_messages_rate_limited_by_topic_total",
			Help: "Gossip traffic from peers dropped by a per-peer rate limiter, by topic (a joined topic, or \"other\") and reason: messages (the [rate_limiting] bucket; the same events as icn_network_messages_rate_limited_total), requests (the /icn/gossip/req/1.0.0 bucket).",
		}, []string{"topic", "reason"}),
		rateLimitedClass: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_messages_rate_limited_by_class_total",
			Help: "Gossip messages dropped by the per-peer rate limiter, by the sending peer's trust class (isolated, known, partner, federated): the same events as icn_network_messages_rate_limited_total.",
		}, []string{"class"}),
		networkReceived: networkReceived,
		rateLimited:     rateLimited,
	}
	for _, c := range []string{"isolated", "known", "partner", "federated"} {
		m.rateLimitedClass.WithLabelValues(c)
	}
	for _, r := range []string{ReasonRateLimited, ReasonOversize, ReasonMalformed, ReasonUnknownType, ReasonBadPayload,
		ReasonBadSignature, ReasonBindingMismatch, ReasonReplay, ReasonStale, ReasonFuture, ReasonUntrusted} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{DropDuplicate, DropSlowSubscriber, DropValidationQueue, DropThrottled, DropOutboundQueue, DropRelayedAnnounce} {
		m.dropped.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.entries, m.subscriptions, m.topics, m.published, m.received, m.rejected,
		m.dropped, m.announcesRecv, m.announcesSent, m.requests, m.fetched, m.rateLimitedBy, m.rateLimitedClass} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) reject(reason string) {
	m.rejected.WithLabelValues(reason).Inc()
	if reason == ReasonRateLimited {
		m.rateLimited.Inc()
	}
}

// rateLimit counts one message or request dropped by a rate limiter on
// topic (a joined topic's short name, or TopicOther).
func (m *Metrics) rateLimit(topic, reason string) {
	m.rateLimitedBy.WithLabelValues(topic, reason).Inc()
}

func (m *Metrics) drop(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// rateLimitByClass counts a message dropped by the limiter by class.
func (m *Metrics) rateLimitByClass(class string) { m.rateLimitedClass.WithLabelValues(class).Inc() }

// Values of the store label of icn_gossip_entries_held.
const (
	// HeldCache: envelopes in the per-topic caches of recent messages
	// (the default State of topics without a registered one; at most
	// CacheEntries per topic, none older than the max age).
	HeldCache = "cache"
	// HeldReplayWindow: (author, sequence number) records in the replay
	// window (24 bytes each; at most windowAuthors × windowPerAuthor).
	HeldReplayWindow = "replay_window"
)

// RegisterMemoryMetrics registers the gauges of what mem holds:
// icn_gossip_entries_held{store} and icn_gossip_entries_held_bytes. They
// are read from mem at scrape time. Entries a registered State holds (the
// ledger's) are not gossip memory and are not counted.
func RegisterMemoryMetrics(reg prometheus.Registerer, mem *Memory) error {
	held := &memoryCollector{mem: mem,
		entries: prometheus.NewDesc("icn_gossip_entries_held",
			"Entries held in the gossip memory now, by store: cache (envelopes in the per-topic caches of recent messages, at most 256 per topic) and replay_window (author and sequence-number records of the replay window). Ledger entries are not included.",
			[]string{"store"}, nil),
		bytes: prometheus.NewDesc("icn_gossip_entries_held_bytes",
			"Bytes of the envelopes in the per-topic caches (icn_gossip_entries_held{store=\"cache\"}).", nil, nil),
	}
	return reg.Register(held)
}

// memoryCollector reads the memory's sizes once per scrape.
type memoryCollector struct {
	mem            *Memory
	entries, bytes *prometheus.Desc
}

func (c *memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
}

func (c *memoryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.mem.Stats()
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.CachedEntries), HeldCache)
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.WindowSeqs), HeldReplayWindow)
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.CachedBytes))
}
