// Package gossip owns ICN's topic messaging on GossipSub: topic names
// (icn/<network_id>/<topic>), the signed envelope every message travels in
// (author DID, sequence number, timestamp, payload type, payload, Ed25519
// signature over the full topic name), the validators that reject forged,
// replayed, stale, oversize or malformed messages and feed GossipSub's peer
// scoring, the per-peer rate limiter, the announce/request exchange that lets
// a peer fetch what it missed (/icn/gossip/req/1.0.0), the icn_gossip_*
// metrics, and a Go channel API for local subscribers.
//
// A Service lives on one libp2p host; a key rotation replaces it. What must
// survive that (the replay window, the caches, the joined topics) lives in a
// Memory shared by the successive services. The wire formats, validation
// rules, score parameters and limits are documented in docs/gossip.md.
package gossip

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/internal/wiretrace"
)

// Tuning. docs/gossip.md explains the numbers.
const (
	// MaxTopics bounds the topics one node joins.
	MaxTopics = 256
	// ValidateQueueSize is GossipSub's front validation queue (default 32):
	// large enough that a burst on one topic does not fill it for all
	// (go-libp2p-pubsub#621).
	ValidateQueueSize = 4096
	// ValidateThrottle bounds validations in flight over all topics.
	ValidateThrottle = 8192
	// ValidatorConcurrency bounds validations in flight on one topic, so a
	// busy topic is throttled on its own before it can take the global
	// throttle from the others.
	ValidatorConcurrency = 512
	// ValidatorTimeout bounds one validation.
	ValidatorTimeout = 5 * time.Second
	// PeerOutboundQueueSize is the RPC queue per peer (default 32, which
	// dropped messages at a few thousand per second).
	PeerOutboundQueueSize = 512
	// pubsubBuffer is the service's own GossipSub subscription buffer.
	pubsubBuffer = 1024
	// DefaultSubscriberBuffer is a local subscription's channel capacity.
	DefaultSubscriberBuffer = 256
	fetchWorkers            = 4
	fetchQueue              = 64
	sweepInterval           = 30 * time.Second
	limiterPeers            = 4096
	limiterIdle             = time.Minute
	// Requests per second (and burst) one peer may make.
	requestRate  = 2
	requestBurst = 8
)

// Defaults of Config.
const (
	DefaultMaxMessageSize       = 64 << 10
	DefaultClockSkew            = 2 * time.Minute
	DefaultMaxAge               = 10 * time.Minute
	DefaultAnnounceInterval     = 10 * time.Second
	DefaultRateLimit            = 100
	DefaultRateBurst            = 20
	DefaultDuplicateGrace       = 2 * time.Minute // GossipSub's seen-message TTL
	DefaultScoreInspectInterval = 5 * time.Second
)

// Errors that end subscriptions (Subscription.Err) or refuse calls.
var (
	ErrCancelled = errors.New("subscription cancelled")
	ErrLeft      = errors.New("topic left")
	ErrStopped   = errors.New("gossip service stopped")
)

// Config configures a Service. Zero values mean the defaults.
type Config struct {
	// NetworkID namespaces the topics (required).
	NetworkID string
	// MaxMessageSize bounds one envelope in bytes.
	MaxMessageSize int
	// ClockSkew is how far ahead a timestamp may be; MaxAge how far behind.
	ClockSkew, MaxAge time.Duration
	// AnnounceInterval is how often heads are announced on each topic.
	AnnounceInterval time.Duration
	// RateLimit (messages per second) and RateBurst make each peer's token bucket.
	RateLimit float64
	RateBurst int
	// Types are payload types accepted besides the built-in ones, with
	// their checks (for example the ledger's entries).
	Types map[string]PayloadCheck
	// DirectTypes are payload types (among Types) meant for the
	// publisher's direct peers only, such as announcements of a node's
	// own state. A receiver accepts one only from its publisher (which
	// earns the publisher GossipSub's first-delivery credit) and ignores
	// the copies its neighbours forward, counted as relayed_announce; it
	// neither keeps one to serve nor takes one by request. So a message
	// reaches the publisher's neighbours and theirs, and travels no
	// further: its cost grows with degrees, not with the network's size.
	DirectTypes []string
	// DuplicateGrace is how long after its first arrival the same envelope
	// may arrive again by another path without being called a replay.
	DuplicateGrace time.Duration
	// ScoreInspectInterval is how often peer scores are sampled.
	ScoreInspectInterval time.Duration
	// ReportInterval bounds the log: at most one line per peer in this
	// long for messages dropped by the rate limiter, and one for messages
	// rejected by validation, each with the count since the peer's last.
	ReportInterval time.Duration
	// VerifyEnvelopes verifies every envelope signature on arrival, even
	// when the GossipSub signature already proves the author (see admit).
	VerifyEnvelopes bool
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.RateLimit <= 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.DuplicateGrace <= 0 {
		c.DuplicateGrace = DefaultDuplicateGrace
	}
	if c.ScoreInspectInterval <= 0 {
		c.ScoreInspectInterval = DefaultScoreInspectInterval
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = DefaultReportInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// rpcLimit is GossipSub's RPC size limit for a given envelope limit: twice
// the envelope limit plus room for framing, so an oversize envelope still
// reaches the validator (and is counted and scored) instead of resetting the
// stream, while anything far larger is cut off by the stream reader.
func rpcLimit(maxMessageSize int) int { return 2*maxMessageSize + 16<<10 }

// Bindings tells which DID a peer speaks for (protocols/identity's Book).
type Bindings interface {
	ByPeer(peer.ID) (did.Binding, bool)
	ByDID(did.DID) (did.Binding, bool)
}

// Deps are what a Service runs on.
type Deps struct {
	Host     host.Host
	Identity *did.Identity // signs our envelopes
	Bindings Bindings
	// Memory outlives the service; nil means a private one.
	Memory  *Memory
	Metrics *Metrics
	Log     *slog.Logger
	// AppScore is the peer score's application-specific term (P5), for
	// example (*Penalties).AppScore; nil means 0.
	AppScore func(peer.ID) float64
	// Tier, when set, gives each peer its own rate limit (the node tiers
	// it by trust class) instead of Config's RateLimit and RateBurst.
	Tier func(peer.ID) Tier
	// AllowAuthor, when set, is asked about the author of every envelope
	// received that passed the other checks: false ignores the envelope
	// (not delivered, not relayed, no penalty: the node's trust policy
	// does not admit its author). Counted as ReasonUntrusted.
	AllowAuthor func(did.DID) bool
	// Tracer makes the publish, validate and deliver spans; nil makes
	// none. A published envelope carries the publish span's context in
	// its extension block; one received with a context is validated and
	// delivered in spans under it (Message.Trace).
	Tracer trace.Tracer
	// Penalties, if set, is charged for each violation of the request
	// protocol (ID) a peer commits, as requester or as responder
	// (RequestViolationPenalty).
	Penalties Penalizer
}

// Message is an accepted envelope as delivered to subscribers. Subscribers
// share it: treat it as read-only.
type Message struct {
	ID    MessageID
	Topic string // short name
	Envelope
	// From is the peer that published it on GossipSub (the author's node,
	// or whoever served it when Fetched).
	From peer.ID
	// ReceivedFrom is the peer that passed it to us (ourselves when Local).
	ReceivedFrom peer.ID
	// Fetched is true when it arrived by request after an announce.
	Fetched bool
	// Local is true for what this node published.
	Local bool
	// Trace is the context of the span the message was delivered in, when
	// it arrived with a trace context (invalid otherwise): work done for
	// the message (a ledger ingest) is a span under it.
	Trace trace.SpanContext
	// sigChecked: the envelope's own signature was verified (see admit).
	sigChecked bool
	// remote is the trace context the message arrived with; envLen is the
	// envelope's length in the GossipSub data (the rest is the extension
	// block). Both are set where the data is split: the validator, send.
	remote trace.SpanContext
	envLen int
}

// Published describes a message this node published.
type Published struct {
	ID    MessageID
	Topic string
	Seq   uint64
	// Peers is how many connected peers are subscribed to the topic.
	Peers int
}

// TooLargeError means an envelope would exceed the size limit.
type TooLargeError struct{ Size, Limit int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message of %d bytes (with its envelope) exceeds the %d-byte limit (gossip.max_message_size)", e.Size, e.Limit)
}

// Service is the gossip layer on one host.
type Service struct {
	cfg      Config
	h        host.Host
	id       *did.Identity
	bindings Bindings
	mem      *Memory
	m        *Metrics
	log      *slog.Logger
	appScore func(peer.ID) float64
	types    types
	direct   map[string]bool // Config.DirectTypes
	keys     *keyCache

	mesh    *meshTracer
	scores  atomic.Pointer[map[peer.ID]float64]
	limiter *peerLimiter
	// allowAuthor is Deps.AllowAuthor.
	allowAuthor func(did.DID) bool
	// tracer is Deps.Tracer, a no-op one when nil.
	tracer trace.Tracer
	// pen is Deps.Penalties (may be nil).
	pen      Penalizer
	requests *peerLimiter
	fetchQ   chan fetchJob
	// rateReports and rejectReports name misbehaving peers in the log.
	rateReports, rejectReports *peerReporter

	// started is closed once Run has started GossipSub (or has ended
	// without doing so); Publish waits for it.
	started chan struct{}
	// runDone is closed when Run has returned.
	runDone chan struct{}

	mu sync.Mutex
	// ps is GossipSub, set by Run for its lifetime.
	ps     *pubsub.PubSub
	topics map[string]*topic
	// ran: Run was called; stopped: Run ended or Close was called.
	ran, stopped bool
	// endRun ends Run (Close calls it).
	endRun  context.CancelFunc
	streams map[network.Stream]struct{}
	pumps   sync.WaitGroup
	handler sync.WaitGroup

	closeOnce sync.Once
}

// New checks the configuration and builds the service; it starts nothing.
// Run starts GossipSub on the host (with StrictSign, our message IDs, peer
// scoring and the queue sizes above), registers the request protocol and
// rejoins the topics the memory holds.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.defaults()
	if cfg.NetworkID == "" {
		return nil, errors.New("gossip: no network id")
	}
	if err := CheckTopic(cfg.NetworkID); err != nil {
		return nil, fmt.Errorf("gossip: network id: %w", err)
	}
	if deps.Host == nil || deps.Identity == nil || deps.Bindings == nil || deps.Metrics == nil {
		return nil, errors.New("gossip: Host, Identity, Bindings and Metrics are required")
	}
	tys, err := newTypes(cfg.Types)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	direct := map[string]bool{}
	for _, t := range cfg.DirectTypes {
		if _, ok := cfg.Types[t]; !ok {
			return nil, fmt.Errorf("gossip: direct type %q is not one of Types", t)
		}
		direct[t] = true
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	mem := deps.Memory
	if mem == nil {
		mem = NewMemory(cfg)
	}
	if deps.Tracer == nil {
		deps.Tracer = noop.NewTracerProvider().Tracer("")
	}
	s := &Service{
		cfg: cfg, h: deps.Host, id: deps.Identity, bindings: deps.Bindings, mem: mem, m: deps.Metrics, log: log,
		appScore:      deps.AppScore,
		types:         tys,
		direct:        direct,
		keys:          newKeyCache(),
		limiter:       newTieredLimiter(cfg.RateLimit, cfg.RateBurst, deps.Tier),
		allowAuthor:   deps.AllowAuthor,
		tracer:        deps.Tracer,
		pen:           deps.Penalties,
		requests:      newPeerLimiter(requestRate, requestBurst, limiterPeers, limiterIdle),
		fetchQ:        make(chan fetchJob, fetchQueue),
		rateReports:   newPeerReporter(kindRateLimited, cfg.ReportInterval, reportPeers),
		rejectReports: newPeerReporter(kindRejected, cfg.ReportInterval, reportPeers),
		started:       make(chan struct{}),
		runDone:       make(chan struct{}),
		topics:        map[string]*topic{},
		streams:       map[network.Stream]struct{}{},
	}
	s.mesh = newMeshTracer(s.m)
	// The memory's topics are joined at once, locally: Topics lists them
	// and subscriptions may be taken; Run joins them on GossipSub.
	for _, short := range mem.joinedTopics() {
		if _, err := s.joinLocked(short); err != nil {
			return nil, fmt.Errorf("gossip: rejoin %s: %w", short, err)
		}
	}
	return s, nil
}

// startPubSub starts GossipSub for the lifetime of ctx.
func (s *Service) startPubSub(ctx context.Context) (*pubsub.PubSub, error) {
	prefix := TopicPrefix + s.cfg.NetworkID + "/"
	ps, err := pubsub.NewGossipSub(ctx, s.h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMaxMessageSize(rpcLimit(s.cfg.MaxMessageSize)),
		pubsub.WithPeerOutboundQueueSize(PeerOutboundQueueSize),
		pubsub.WithValidateQueueSize(ValidateQueueSize),
		pubsub.WithValidateThrottle(ValidateThrottle),
		pubsub.WithPeerExchange(false),
		pubsub.WithFloodPublish(true),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(topicFilter{prefix: prefix}, MaxTopics)),
		pubsub.WithPeerScore(ScoreParams(s.appScore), ScoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(func(m map[peer.ID]float64) { s.scores.Store(&m) }), s.cfg.ScoreInspectInterval),
		pubsub.WithRawTracer(s.mesh),
		pubsub.WithLogger(s.log.With("component", "pubsub")),
	)
	if err != nil {
		return nil, fmt.Errorf("gossip: start GossipSub: %w", err)
	}
	return ps, nil
}

// messageID is the GossipSub message ID: SHA-256 of the envelope bytes
// (not the extension block after them), so the same envelope is the same
// message whoever publishes or forwards it, with whatever trace context.
func messageID(m *pb.Message) string {
	data := m.Data
	if env, _, ok := SplitWire(data); ok {
		data = env
	}
	sum := sha256.Sum256(data)
	return string(sum[:])
}

// topicFilter admits only this network's well-named topics, for our own
// subscriptions and for the subscriptions peers tell us about.
type topicFilter struct{ prefix string }

func (f topicFilter) CanSubscribe(t string) bool {
	return len(t) > len(f.prefix) && t[:len(f.prefix)] == f.prefix && CheckTopic(t[len(f.prefix):]) == nil
}

func (f topicFilter) FilterIncomingSubscriptions(_ peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	return pubsub.FilterSubscriptions(subs, f.CanSubscribe), nil
}

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("gossip service already running")

// Run starts GossipSub and the request protocol, joins the topics the
// memory holds (and those joined since New), then announces heads and
// fetches what peers announce until ctx ends or Close is called. When it
// returns, every local subscription has ended (ErrStopped), GossipSub has
// stopped and none of the service's goroutines is left. A service runs
// once: a key rotation builds a new one over the same Memory.
func (s *Service) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	switch {
	case s.ran:
		s.mu.Unlock()
		return ErrRunning
	case s.stopped:
		s.mu.Unlock()
		return ErrStopped
	}
	s.ran, s.endRun = true, cancel
	s.mu.Unlock()
	defer close(s.runDone)
	var wg sync.WaitGroup
	defer func() {
		cancel() // stops GossipSub and the fetch workers
		s.shutdown()
		wg.Wait()
	}()
	startedOnce := sync.OnceFunc(func() { close(s.started) })
	defer startedOnce()

	// GossipSub lives as long as Run: it stops when ctx ends.
	ps, err := s.startPubSub(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.h.SetStreamHandler(ID, s.handleRequest)
	if err := s.attachAll(ps); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	startedOnce()

	for range fetchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fetchLoop(ctx)
		}()
	}
	announce := time.NewTicker(s.cfg.AnnounceInterval)
	defer announce.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	// Lines held back are written within a tenth of the interval of being due.
	reports := time.NewTicker(s.cfg.ReportInterval / 10)
	defer reports.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushReports(s.cfg.Now().Add(s.cfg.ReportInterval)) // what is pending, before the lines are lost
			return nil
		case <-announce.C:
			s.announceAll(ctx)
		case <-reports.C:
			s.flushReports(s.cfg.Now())
		case <-sweep.C:
			now := s.cfg.Now()
			s.limiter.sweep(now)
			s.requests.sweep(now)
			s.mem.sweep(now)
		}
	}
}

// attachAll makes ps the service's GossipSub and joins on it every topic
// the memory holds and every topic joined before Run.
func (s *Service) attachAll(ps *pubsub.PubSub) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ps = ps
	for _, short := range s.mem.joinedTopics() {
		if _, err := s.joinLocked(short); err != nil {
			return fmt.Errorf("gossip: rejoin %s: %w", short, err)
		}
	}
	for short, tp := range s.topics {
		if tp.t == nil {
			if err := s.attachLocked(tp); err != nil {
				return fmt.Errorf("gossip: join %s: %w", short, err)
			}
		}
	}
	return nil
}

// shutdown ends every local subscription, refuses new ones, stops the
// request protocol and the pumps, and waits for them. Run calls it on its
// way out; it is safe to call more than once.
func (s *Service) shutdown() {
	s.stop()
	s.h.RemoveStreamHandler(ID)
	s.mu.Lock()
	topics := make([]*topic, 0, len(s.topics))
	for _, tp := range s.topics {
		topics = append(topics, tp)
	}
	for st := range s.streams {
		st.Reset()
	}
	s.mu.Unlock()
	for _, tp := range topics {
		if tp.cancel != nil {
			tp.cancel()
		}
	}
	s.pumps.Wait()
	s.handler.Wait()
}

// stop ends every local subscription and refuses new ones.
func (s *Service) stop() {
	s.mu.Lock()
	s.stopped = true
	topics := make([]*topic, 0, len(s.topics))
	for _, tp := range s.topics {
		topics = append(topics, tp)
	}
	s.mu.Unlock()
	for _, tp := range topics {
		tp.closeSubs(ErrStopped, s.m)
	}
}

// Close ends Run if it is running and waits for it to return; it is
// idempotent. Joined topics stay in the memory for the next service.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		ran, endRun := s.ran, s.endRun
		s.stopped = true
		s.mu.Unlock()
		if ran {
			endRun()
			<-s.runDone
		} else {
			close(s.started)
		}
		s.stop()
		s.mu.Lock()
		topics := s.topics
		s.topics = map[string]*topic{}
		s.mu.Unlock()
		for range topics {
			s.m.topics.Dec()
		}
	})
	return nil
}

// topic is one joined topic.
type topic struct {
	short, wire string
	t           *pubsub.Topic
	sub         *pubsub.Subscription
	cancel      context.CancelFunc // stops the pump
	state       State
	stateful    bool

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// closeSubs ends every local subscription with reason; later deliveries are dropped.
func (tp *topic) closeSubs(reason error, m *Metrics) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.closed = true
	for sub := range tp.subs {
		delete(tp.subs, sub)
		sub.err = reason
		close(sub.ch)
		m.subscriptions.Dec()
	}
}

// Join joins a topic: the node relays its messages, announces its state and
// keeps it across key rotations, even with no local subscriber. Idempotent.
// Before Run the topic is recorded, and Run joins it on GossipSub.
func (s *Service) Join(short string) error {
	if err := CheckTopic(short); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.joinLocked(short)
	return err
}

func (s *Service) joinLocked(short string) (*topic, error) {
	if tp := s.topics[short]; tp != nil {
		return tp, nil
	}
	if s.stopped {
		return nil, ErrStopped
	}
	if len(s.topics) >= MaxTopics {
		return nil, fmt.Errorf("already joined %d topics, the most one node may join", MaxTopics)
	}
	state, stateful := s.mem.state(short)
	tp := &topic{short: short, wire: WireTopic(s.cfg.NetworkID, short), state: state, stateful: stateful,
		subs: map[*Subscription]struct{}{}}
	if s.ps != nil {
		if err := s.attachLocked(tp); err != nil {
			return nil, err
		}
	}
	s.topics[short] = tp
	s.mem.setJoined(short, true)
	s.m.topics.Inc()
	return tp, nil
}

// attachLocked joins tp on GossipSub (s.ps) with its validator, and starts
// the pump that hands its messages to the local subscribers.
func (s *Service) attachLocked(tp *topic) (err error) {
	if err := s.ps.RegisterTopicValidator(tp.wire, s.validator(tp),
		pubsub.WithValidatorConcurrency(ValidatorConcurrency), pubsub.WithValidatorTimeout(ValidatorTimeout)); err != nil {
		return fmt.Errorf("register validator for %s: %w", tp.wire, err)
	}
	defer func() {
		if err != nil {
			if tp.sub != nil {
				tp.sub.Cancel()
			}
			if tp.t != nil {
				_ = tp.t.Close()
			}
			tp.sub, tp.t = nil, nil
			_ = s.ps.UnregisterTopicValidator(tp.wire)
		}
	}()
	if tp.t, err = s.ps.Join(tp.wire); err != nil {
		return fmt.Errorf("join %s: %w", tp.wire, err)
	}
	if err = tp.t.SetScoreParams(TopicScoreParams()); err != nil {
		return fmt.Errorf("score parameters for %s: %w", tp.wire, err)
	}
	if tp.sub, err = tp.t.Subscribe(pubsub.WithBufferSize(pubsubBuffer)); err != nil {
		return fmt.Errorf("subscribe %s: %w", tp.wire, err)
	}
	// The pump ends when the topic is left or Run ends (shutdown).
	ctx, cancel := context.WithCancel(context.Background())
	tp.cancel = cancel
	s.pumps.Add(1)
	go func() {
		defer s.pumps.Done()
		s.pump(ctx, tp)
	}()
	return nil
}

// Leave leaves a topic: its subscriptions end (ErrLeft), the node stops
// relaying it and forgets its cache.
func (s *Service) Leave(short string) error {
	s.mu.Lock()
	tp := s.topics[short]
	delete(s.topics, short)
	ps := s.ps
	s.mu.Unlock()
	s.mem.setJoined(short, false)
	if tp == nil {
		return fmt.Errorf("topic %q is not joined", short)
	}
	tp.closeSubs(ErrLeft, s.m)
	s.m.topics.Dec()
	if tp.t == nil { // joined before Run: nothing on GossipSub yet
		return nil
	}
	tp.cancel()
	tp.sub.Cancel()
	err := tp.t.Close()
	if uerr := ps.UnregisterTopicValidator(tp.wire); err == nil {
		err = uerr
	}
	return err
}

// pump moves validated messages from GossipSub to the local subscribers.
func (s *Service) pump(ctx context.Context, tp *topic) {
	for {
		pm, err := tp.sub.Next(ctx)
		if err != nil {
			return
		}
		msg, ok := pm.ValidatorData.(*Message)
		if !ok {
			continue
		}
		if msg.Type == TypeAnnounce {
			if !msg.Local {
				s.onAnnounce(tp, msg)
			}
			continue
		}
		s.deliverTraced(tp, msg, pm.Data)
	}
}

// deliverTraced delivers msg, in a span under the trace context it
// arrived with, if any.
func (s *Service) deliverTraced(tp *topic, msg *Message, data []byte) {
	raw := data[:msg.envLen] // the envelope, without the extension block
	if !msg.remote.IsValid() {
		s.deliver(tp, msg, raw)
		return
	}
	_, span := s.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), msg.remote), "gossip.deliver",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(msgAttrs(tp, msg)...))
	msg.Trace = span.SpanContext()
	s.deliver(tp, msg, raw)
	span.End()
}

// msgAttrs describe a message on a span.
func msgAttrs(tp *topic, msg *Message) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("icn.gossip.topic", tp.short),
		attribute.String("icn.gossip.type", msg.Type),
		attribute.String("icn.gossip.message_id", msg.ID.String()),
		attribute.String("icn.gossip.author", msg.Author.String()),
		attribute.String("icn.gossip.from", msg.From.String()),
		attribute.String("icn.gossip.received_from", msg.ReceivedFrom.String()),
	}
}

// deliver records an accepted envelope in the topic's state and hands it to
// every local subscriber without ever blocking: a subscriber whose buffer is
// full misses it (counted as slow_subscriber).
//
// A direct message (Config.DirectTypes) is only handed to subscribers: it
// is an announcement for this node, not content a State keeps and serves.
func (s *Service) deliver(tp *topic, msg *Message, raw []byte) {
	if s.direct[msg.Type] {
		s.m.entries.Inc()
		s.fanOut(tp, msg)
		return
	}
	if tp.stateful && !msg.sigChecked {
		// A registered State (the ledger) keeps envelopes that others will
		// verify on their own: check the envelope's signature first.
		if msg.Verify(tp.wire) != nil {
			s.m.reject(ReasonBadSignature)
			s.noteRejected(msg.ReceivedFrom, tp.short, ReasonBadSignature, s.cfg.Now())
			return
		}
		msg.sigChecked = true
	}
	tp.state.Add(msg, raw)
	s.m.entries.Inc()
	if msg.Fetched {
		s.m.fetched.Inc()
	}
	s.fanOut(tp, msg)
}

// fanOut hands msg to every local subscriber without blocking.
func (s *Service) fanOut(tp *topic, msg *Message) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for sub := range tp.subs {
		select {
		case sub.ch <- msg:
		default:
			s.m.drop(DropSlowSubscriber)
		}
	}
}

// Subscription is a local subscriber's view of a topic. Its channel is
// closed exactly once: when Cancel is called, when the topic is left, or
// when the service stops; Err then says which.
type Subscription struct {
	topic string
	ch    chan *Message
	tp    *topic
	m     *Metrics
	err   error // guarded by tp.mu
}

// Messages is the channel of delivered messages.
func (sub *Subscription) Messages() <-chan *Message { return sub.ch }

// Topic is the short topic name.
func (sub *Subscription) Topic() string { return sub.topic }

// Cancel ends the subscription and closes its channel. Idempotent.
func (sub *Subscription) Cancel() {
	tp := sub.tp
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if _, ok := tp.subs[sub]; ok {
		delete(tp.subs, sub)
		sub.err = ErrCancelled
		close(sub.ch)
		sub.m.subscriptions.Dec()
	}
}

// Err is nil while the subscription is open, then ErrCancelled, ErrLeft or ErrStopped.
func (sub *Subscription) Err() error {
	sub.tp.mu.Lock()
	defer sub.tp.mu.Unlock()
	return sub.err
}

// Subscribe joins the topic if needed and returns a subscription with a
// channel of the given capacity (0: DefaultSubscriberBuffer).
func (s *Service) Subscribe(short string, buffer int) (*Subscription, error) {
	if err := CheckTopic(short); err != nil {
		return nil, err
	}
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tp, err := s.joinLocked(short)
	if err != nil {
		return nil, err
	}
	sub := &Subscription{topic: short, ch: make(chan *Message, buffer), tp: tp, m: s.m}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		return nil, ErrStopped
	}
	tp.subs[sub] = struct{}{}
	s.m.subscriptions.Inc()
	return sub, nil
}

// Publish signs payload as this node's DID and publishes it on the topic,
// joining it if needed. typ must be a registered payload type other than
// icn/announce, and the payload must pass the type's check.
func (s *Service) Publish(ctx context.Context, short, typ string, payload []byte) (Published, error) {
	if err := CheckTopic(short); err != nil {
		return Published{}, err
	}
	if typ == TypeAnnounce {
		return Published{}, fmt.Errorf("payload type %s is reserved for the node's own announces", TypeAnnounce)
	}
	if err := s.types.check(typ, payload); err != nil {
		if errors.Is(err, errUnknownType) {
			return Published{}, fmt.Errorf("unknown payload type %q (known: %s)", typ, s.types.names())
		}
		return Published{}, err
	}
	// Before Run has started GossipSub there is nowhere to publish: wait.
	select {
	case <-s.started:
	case <-ctx.Done():
		return Published{}, fmt.Errorf("gossip not started: %w", ctx.Err())
	}
	s.mu.Lock()
	tp, err := s.joinLocked(short)
	s.mu.Unlock()
	if err != nil {
		return Published{}, err
	}
	if tp.t == nil { // Run failed to start, or ended
		return Published{}, ErrStopped
	}
	p, err := s.publish(ctx, tp, typ, payload)
	if err == nil {
		s.m.published.Inc()
	}
	return p, err
}

// EnvelopeError says why PublishEnvelope refused an envelope signed by
// someone else; nothing was published. Reason is one of the Reason
// constants (malformed, unknown_type, bad_payload, bad_signature, replay,
// stale, future, oversize).
type EnvelopeError struct {
	Reason string
	Err    error
}

func (e *EnvelopeError) Error() string {
	return "envelope refused (" + e.Reason + "): " + e.Err.Error()
}

func (e *EnvelopeError) Unwrap() error { return e.Err }

// PublishEnvelope publishes an envelope that its author signed elsewhere (a
// member's wallet, through the gateway), joining the topic if needed. It
// runs the checks a received envelope meets (decoding, payload type,
// clock, the author's signature over this topic, the replay window) and
// refuses with an *EnvelopeError what would not pass them, so what this
// node relays is what its peers accept. Announces are refused.
func (s *Service) PublishEnvelope(ctx context.Context, short string, raw []byte) (Published, error) {
	if err := CheckTopic(short); err != nil {
		return Published{}, err
	}
	refuse := func(reason string, err error) (Published, error) {
		return Published{}, &EnvelopeError{Reason: reason, Err: err}
	}
	if len(raw) > s.cfg.MaxMessageSize {
		return Published{}, &TooLargeError{Size: len(raw), Limit: s.cfg.MaxMessageSize}
	}
	env, err := decode(raw, s.cfg.MaxMessageSize, s.keys.author)
	if err != nil {
		return refuse(ReasonMalformed, err)
	}
	if env.Type == TypeAnnounce {
		return refuse(ReasonUnknownType, fmt.Errorf("payload type %s is reserved for the node's own announces", TypeAnnounce))
	}
	if err := s.types.check(env.Type, env.Payload); err != nil {
		if errors.Is(err, errUnknownType) {
			return refuse(ReasonUnknownType, fmt.Errorf("unknown payload type %q (known: %s)", env.Type, s.types.names()))
		}
		return refuse(ReasonBadPayload, err)
	}
	now := s.cfg.Now()
	if ts := int64(env.Timestamp); ts > now.UnixMilli()+s.cfg.ClockSkew.Milliseconds() {
		return refuse(ReasonFuture, fmt.Errorf("timestamp %s is more than %s ahead of this node's clock", env.Time().UTC().Format(time.RFC3339), s.cfg.ClockSkew))
	} else if ts < now.UnixMilli()-s.cfg.MaxAge.Milliseconds() {
		return refuse(ReasonStale, fmt.Errorf("timestamp %s is more than %s old", env.Time().UTC().Format(time.RFC3339), s.cfg.MaxAge))
	}
	select {
	case <-s.started:
	case <-ctx.Done():
		return Published{}, fmt.Errorf("gossip not started: %w", ctx.Err())
	}
	s.mu.Lock()
	tp, err := s.joinLocked(short)
	s.mu.Unlock()
	if err != nil {
		return Published{}, err
	}
	if tp.t == nil {
		return Published{}, ErrStopped
	}
	if err := env.Verify(tp.wire); err != nil {
		return refuse(ReasonBadSignature, err)
	}
	id := IDOf(raw)
	if v := s.mem.window.check(env.Author, env.Seq, env.Timestamp, id, now); v != fresh {
		return refuse(ReasonReplay, fmt.Errorf("seq %d of %s was already used, or is too old: use a larger seq (the time in microseconds is a good one)", env.Seq, env.Author))
	}
	msg := &Message{ID: id, Topic: tp.short, Envelope: *env, From: s.h.ID(), ReceivedFrom: s.h.ID(), Local: true, sigChecked: true}
	p, err := s.send(ctx, tp, msg, append([]byte{}, raw...))
	if err == nil {
		s.m.published.Inc()
	}
	return p, err
}

// send publishes an accepted envelope (raw) on GossipSub. Inside a trace
// (ctx holds a span) it does so in a gossip.publish span whose context
// travels in the extension block; outside one (periodic announcements) it
// starts no trace of its own.
func (s *Service) send(ctx context.Context, tp *topic, msg *Message, raw []byte) (Published, error) {
	span := trace.SpanFromContext(ctx)
	if span.SpanContext().IsValid() {
		ctx, span = s.tracer.Start(ctx, "gossip.publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(msgAttrs(tp, msg)...))
		defer span.End()
	}
	data := wiretrace.Append(raw, span.SpanContext())
	msg.envLen = len(raw)
	if err := tp.t.Publish(ctx, data, pubsub.WithValidatorData(msg)); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return Published{}, fmt.Errorf("publish on %s: %w", tp.wire, err)
	}
	peers := len(tp.t.ListPeers())
	span.SetAttributes(attribute.Int("icn.gossip.peers", peers))
	return Published{ID: msg.ID, Topic: tp.short, Seq: msg.Seq, Peers: peers}, nil
}

func (s *Service) publish(ctx context.Context, tp *topic, typ string, payload []byte) (Published, error) {
	now := s.cfg.Now()
	env := &Envelope{Author: s.id.DID, Seq: s.mem.nextSeq(now), Timestamp: uint64(now.UnixMilli()), Type: typ,
		Payload: append([]byte{}, payload...)}
	env.Sign(tp.wire, s.id.Sign)
	// GossipSub keeps a reference to the published slice until it is sent:
	// Marshal allocates a fresh one per message.
	raw, err := env.Marshal()
	if err != nil {
		return Published{}, err
	}
	if len(raw) > s.cfg.MaxMessageSize {
		return Published{}, &TooLargeError{Size: len(raw), Limit: s.cfg.MaxMessageSize}
	}
	id := IDOf(raw)
	msg := &Message{ID: id, Topic: tp.short, Envelope: *env, From: s.h.ID(), ReceivedFrom: s.h.ID(), Local: true, sigChecked: true}
	s.mem.window.check(env.Author, env.Seq, env.Timestamp, id, now)
	return s.send(ctx, tp, msg, raw)
}

// relayAllowed decides a message that src relays while src's own bucket
// is empty: GossipSub marks a message seen before validators run, so
// ignoring it here would drop it for good, even when its publisher's own
// copy arrives a moment later. A message published by a peer whose tier
// is marked Relay (trusted enough) is charged to that publisher's bucket
// instead; anything else waits on src's bucket as usual.
func (s *Service) relayAllowed(src peer.ID, pm *pubsub.Message, now time.Time) bool {
	origin := pm.GetFrom()
	if origin == "" || origin == src || origin == s.h.ID() {
		return false
	}
	return s.limiter.allowRelayed(origin, now)
}

// validator is the topic's GossipSub validator: rate limit first, then admit.
func (s *Service) validator(tp *topic) pubsub.ValidatorEx {
	return func(_ context.Context, src peer.ID, pm *pubsub.Message) pubsub.ValidationResult {
		if src == s.h.ID() { // our own publish, checked in publish
			if _, ok := pm.ValidatorData.(*Message); ok {
				return pubsub.ValidationAccept
			}
			return pubsub.ValidationReject
		}
		now := s.cfg.Now()
		s.m.received.Inc()
		s.m.networkReceived.Inc()
		if ok, class := s.limiter.allow(src, now); !ok && !s.relayAllowed(src, pm, now) {
			s.m.reject(ReasonRateLimited)
			if class != "" {
				s.m.rateLimitByClass(class)
			}
			s.noteRateLimited(src, tp.short, RateLimitMessages, now)
			return pubsub.ValidationIgnore
		}
		// GossipSub data: the envelope, then an extension block.
		env, ext, ok := SplitWire(pm.Data)
		if !ok {
			return s.refuse(src, tp, ReasonMalformed, now)
		}
		if len(env) > s.cfg.MaxMessageSize {
			return s.refuse(src, tp, ReasonOversize, now)
		}
		remote, err := wiretrace.Parse(ext)
		if err != nil {
			return s.refuse(src, tp, ReasonMalformed, now)
		}
		span := s.validateSpan(tp, remote, src)
		msg, res := s.admit(tp, env, pm.GetFrom(), src, false, now)
		if res == pubsub.ValidationAccept {
			msg.remote, msg.envLen = remote, len(env)
			pm.ValidatorData = msg
		}
		if span != nil {
			span.SetAttributes(attribute.String("icn.gossip.result", resultName(res)))
			span.End()
		}
		return res
	}
}

// refuse rejects a message from via for reason, counted as admit counts.
func (s *Service) refuse(via peer.ID, tp *topic, reason string, now time.Time) pubsub.ValidationResult {
	s.m.reject(reason)
	s.noteRejected(via, tp.short, reason, now)
	return pubsub.ValidationReject
}

// validateSpan starts a gossip.validate span under sc, the trace context
// a message arrived with; nil when it came with none (no cost for
// untraced messages).
func (s *Service) validateSpan(tp *topic, sc trace.SpanContext, src peer.ID) trace.Span {
	if !sc.IsValid() {
		return nil
	}
	_, span := s.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "gossip.validate",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("icn.gossip.topic", tp.short), attribute.String("icn.gossip.received_from", src.String())))
	return span
}

func resultName(r pubsub.ValidationResult) string {
	switch r {
	case pubsub.ValidationAccept:
		return "accept"
	case pubsub.ValidationReject:
		return "reject"
	default:
		return "ignore"
	}
}

// admit runs every check on an envelope received on tp from peer via
// (published by from, or served by from when fetched). It counts what it
// refuses, and records what it accepts in the replay window.
func (s *Service) admit(tp *topic, raw []byte, from, via peer.ID, fetched bool, now time.Time) (*Message, pubsub.ValidationResult) {
	reject := func(reason string) (*Message, pubsub.ValidationResult) {
		s.m.reject(reason)
		s.noteRejected(via, tp.short, reason, now)
		return nil, pubsub.ValidationReject
	}
	ignore := func(reason string) (*Message, pubsub.ValidationResult) {
		s.m.reject(reason)
		return nil, pubsub.ValidationIgnore
	}
	if len(raw) > s.cfg.MaxMessageSize {
		return reject(ReasonOversize)
	}
	env, err := decode(raw, s.cfg.MaxMessageSize, s.keys.author)
	if err != nil {
		return reject(ReasonMalformed)
	}
	if err := s.types.check(env.Type, env.Payload); err != nil {
		if errors.Is(err, errUnknownType) {
			return reject(ReasonUnknownType)
		}
		return reject(ReasonBadPayload)
	}
	// Clock checks ignore rather than reject: an honest forwarder whose
	// clock differs a little from ours must not lose score for them.
	nowMS := now.UnixMilli()
	if int64(env.Timestamp) > nowMS+s.cfg.ClockSkew.Milliseconds() {
		return ignore(ReasonFuture)
	}
	if int64(env.Timestamp) < nowMS-s.cfg.MaxAge.Milliseconds() {
		return ignore(ReasonStale)
	}
	// GossipSub (StrictSign) has already verified From's signature over
	// this very data and topic. When From's key is the author's DID key (a
	// node that never rotated), that signature proves the author, and the
	// envelope's own signature is checked only when the envelope leaves
	// this node (served on request, handed to a registered State): this
	// saves one Ed25519 verification per message per hop. Otherwise (a
	// relayed envelope, a rotated node key, a fetched envelope) it is
	// checked here.
	sigChecked := false
	if fetched || s.cfg.VerifyEnvelopes || from != s.keys.peerOf(env.Author) {
		if err := env.Verify(tp.wire); err != nil {
			return reject(ReasonBadSignature)
		}
		sigChecked = true
	}
	if s.bindingMismatch(from, env.Author) {
		return reject(ReasonBindingMismatch)
	}
	if s.allowAuthor != nil && !s.allowAuthor(env.Author) {
		return ignore(ReasonUntrusted)
	}
	if env.Type == TypeAnnounce && fetched {
		return reject(ReasonBadPayload) // announces are never served by request
	}
	// Announces and direct types travel one hop: only from their publisher.
	if (env.Type == TypeAnnounce || s.direct[env.Type]) && (fetched || from != via) {
		s.m.drop(DropRelayedAnnounce)
		return nil, pubsub.ValidationIgnore
	}
	if env.Type == TypeAnnounce {
		if speaks, known := s.speaksFor(from, env.Author); !speaks {
			if known {
				return reject(ReasonBindingMismatch)
			}
			return nil, pubsub.ValidationIgnore // binding not learnt yet
		}
	}
	id := IDOf(raw)
	switch s.mem.window.check(env.Author, env.Seq, env.Timestamp, id, now) {
	case duplicate:
		s.m.drop(DropDuplicate)
		return nil, pubsub.ValidationIgnore
	case replay:
		return reject(ReasonReplay)
	case forgotten, belowWindow:
		return ignore(ReasonReplay)
	}
	return &Message{ID: id, Topic: tp.short, Envelope: *env, From: from, ReceivedFrom: via, Fetched: fetched, sigChecked: sigChecked},
		pubsub.ValidationAccept
}

// bindingMismatch reports whether the peer that published a message speaks
// for its author's DID without being the author's current node: the
// DID-derived peer ID of a DID known to have rotated to another node key.
// A message published or served by a node of another DID is relayed
// content and fine.
func (s *Service) bindingMismatch(from peer.ID, author did.DID) bool {
	if from == "" {
		return false
	}
	if _, ok := s.bindings.ByPeer(from); ok {
		// The book keeps only current bindings: either the author's current
		// node, or a node of another DID.
		return false
	}
	if from != s.keys.peerOf(author) {
		return false
	}
	cur, ok := s.bindings.ByDID(author)
	return ok && cur.PeerID != from
}

// speaksFor reports whether from is the author's current node, and whether
// that is known at all.
func (s *Service) speaksFor(from peer.ID, author did.DID) (speaks, known bool) {
	if bd, ok := s.bindings.ByPeer(from); ok {
		return bd.DID == author, true
	}
	if from == s.keys.peerOf(author) {
		cur, ok := s.bindings.ByDID(author)
		return !ok || cur.PeerID == from, true
	}
	return false, false
}

// TopicInfo describes a joined topic.
type TopicInfo struct {
	Topic       string
	WireTopic   string
	Subscribers int  // local subscriptions
	Peers       int  // connected peers subscribed to the topic
	MeshPeers   int  // of those, the ones in our GossipSub mesh
	Stateful    bool // a registered State (not the default cache)
	Cached      int  // envelopes in the default cache
}

// Topics lists the joined topics, sorted by name.
func (s *Service) Topics() []TopicInfo {
	type joined struct {
		tp *topic
		t  *pubsub.Topic // nil before Run
	}
	s.mu.Lock()
	topics := make([]joined, 0, len(s.topics))
	for _, tp := range s.topics {
		topics = append(topics, joined{tp, tp.t})
	}
	s.mu.Unlock()
	out := make([]TopicInfo, 0, len(topics))
	for _, j := range topics {
		tp := j.tp
		var peers []peer.ID
		if j.t != nil {
			peers = j.t.ListPeers()
		}
		info := TopicInfo{Topic: tp.short, WireTopic: tp.wire, Peers: len(peers), Stateful: tp.stateful,
			MeshPeers: s.mesh.count(tp.wire, peers)}
		tp.mu.Lock()
		info.Subscribers = len(tp.subs)
		tp.mu.Unlock()
		if c, ok := tp.state.(*recentCache); ok {
			info.Cached, _ = c.stats()
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// PeerScore is the GossipSub score of a peer at the last sample.
func (s *Service) PeerScore(p peer.ID) (float64, bool) {
	m := s.scores.Load()
	if m == nil {
		return 0, false
	}
	v, ok := (*m)[p]
	return v, ok
}

// Stats are the sizes of the service's bounded structures.
type Stats struct {
	Memory        MemoryStats
	LimiterPeers  int
	RequestPeers  int
	Topics        int
	Subscriptions int
}

// Stats reports the service's sizes (for tests and debugging).
func (s *Service) Stats() Stats {
	st := Stats{Memory: s.mem.Stats(), LimiterPeers: s.limiter.size(), RequestPeers: s.requests.size()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Topics = len(s.topics)
	for _, tp := range s.topics {
		tp.mu.Lock()
		st.Subscriptions += len(tp.subs)
		tp.mu.Unlock()
	}
	return st
}

// PubSub exposes the GossipSub instance (for benchmarks and diagnostics);
// nil until Run has started it.
func (s *Service) PubSub() *pubsub.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

// keyCache remembers author keys already checked (a curve-point check costs
// about as much as a signature check) and their DID-derived peer IDs.
type keyCache struct {
	mu sync.Mutex
	m  map[[ed25519.PublicKeySize]byte]keyInfo
}

type keyInfo struct {
	d   did.DID
	pid peer.ID
	err error
}

const keyCacheSize = 4096

func newKeyCache() *keyCache {
	return &keyCache{m: map[[ed25519.PublicKeySize]byte]keyInfo{}}
}

func (k *keyCache) lookup(pub []byte) keyInfo {
	var key [ed25519.PublicKeySize]byte
	copy(key[:], pub)
	k.mu.Lock()
	info, ok := k.m[key]
	k.mu.Unlock()
	if ok {
		return info
	}
	info.d, info.err = did.FromPublicKey(pub)
	if info.err == nil {
		info.pid = info.d.PeerID()
	}
	k.mu.Lock()
	if len(k.m) >= keyCacheSize {
		clear(k.m)
	}
	k.m[key] = info
	k.mu.Unlock()
	return info
}

func (k *keyCache) author(pub ed25519.PublicKey) (did.DID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return did.DID{}, fmt.Errorf("public key is %d bytes", len(pub))
	}
	info := k.lookup(pub)
	return info.d, info.err
}

func (k *keyCache) peerOf(d did.DID) peer.ID { return k.lookup(d.PublicKey()).pid }
