package ledgersync

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// AntiEntropyInterval is how often the scheduler pulls from a random peer
// even when nothing told it that it lacks something.
const AntiEntropyInterval = 30 * time.Second

// autoPullWait is how long an automatic pull waits for another automatic
// pull to finish before it starts anyway. A node that connects to several
// peers at once would otherwise pull the same missing history from each of
// them: waiting, the second pull sends a summary that already holds what
// the first fetched and gets only the rest. The bound keeps a slow or
// stalling peer from holding back pulls from the others for long. Pulls an
// operator asks for (PullNow) never wait.
const autoPullWait = 20 * time.Second

// ViolationPenalty is what a response that breaks the protocol (a wrong
// count, an oversize frame) costs its sender, in bad-block units (see
// Penalizer); each block that fails verification costs one.
const ViolationPenalty = 5

// Errors of the scheduler.
var (
	// ErrStopped: the scheduler is not running (shutdown or key rotation).
	ErrStopped = errors.New("ledger sync is stopping")
	// ErrNotConnected ends a pull from a peer that is gone.
	ErrNotConnected = errors.New("not connected")
)

// Penalizer is told about peers that serve bad blocks or break the
// protocol, as requesters or as responders (the node's penalty record,
// which the gossip score reads and which disconnects persistent
// offenders). units is what the offence costs.
type Penalizer interface {
	Add(p peer.ID, units float64)
}

// Metrics are the icn_ledger_sync_* series. Create them once per node
// (they outlive the schedulers that key rotations replace).
type Metrics struct {
	received    prometheus.Counter
	rejected    prometheus.Counter
	served      prometheus.Counter
	lag         *lagGauge
	lastSuccess prometheus.Gauge
}

// NewMetrics registers the icn_ledger_sync_* series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_ledger_sync_lag_entries",
		Help: "Entries this node still has to receive from peers in the syncs running now: for each running sync, the entries the peer announced minus those received so far; the largest of these (concurrent syncs mostly fetch the same entries). 0 when no sync is running or the node is caught up."})
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_received_total",
			Help: "Ledger entries received from peers by sync that were new to this node."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_rejected_total",
			Help: "Ledger blocks from peers refused: malformed, truncated, bad signature, not hashing to their CID, or breaking a static rule."}),
		served: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_served_total",
			Help: "Ledger entries sent to peers that lacked them."}),
		lag: newLagGauge(lag),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_ledger_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last sync that completed."}),
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.served, lag, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// lagGauge sets icn_ledger_sync_lag_entries to the largest remaining count
// over the syncs in progress. Concurrent syncs with several peers mostly
// fetch the same entries, so the largest is the better estimate of how far
// behind the node is; a sum would count the same entries once per peer.
type lagGauge struct {
	g         prometheus.Gauge
	mu        sync.Mutex
	next      uint64
	remaining map[uint64]int
}

func newLagGauge(g prometheus.Gauge) *lagGauge {
	return &lagGauge{g: g, remaining: map[uint64]int{}}
}

// begin registers a sync; set its remaining count with set and remove it
// with end.
func (l *lagGauge) begin() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.remaining[l.next] = 0
	return l.next
}

func (l *lagGauge) set(id uint64, remaining int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.remaining[id]; ok {
		l.remaining[id] = remaining
		l.updateLocked()
	}
}

func (l *lagGauge) end(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.remaining, id)
	l.updateLocked()
}

func (l *lagGauge) updateLocked() {
	most := 0
	for _, r := range l.remaining {
		most = max(most, r)
	}
	l.g.Set(float64(most))
}

// accounted wraps the node's Ledger: it counts what Ingest received and
// refused, logs refusals (one line per batch: a hostile peer could send
// hundreds of thousands of bad blocks) and charges the sender for each.
type accounted struct {
	Ledger
	m   *Metrics
	pen Penalizer
	log *slog.Logger
}

func (a accounted) Ingest(ctx context.Context, from peer.ID, blocks [][]byte) (Stats, error) {
	st, err := a.Ledger.Ingest(ctx, from, blocks)
	if st.Rejected > 0 {
		a.log.Info("SECURITY: refused ledger blocks from a peer; it is penalised", "peer", from, "refused", st.Rejected, "of", len(blocks),
			"first_cid", st.FirstRejected.CID, "first_err", st.FirstRejected.Err)
		if a.pen != nil {
			a.pen.Add(from, float64(st.Rejected))
		}
	}
	a.m.received.Add(float64(st.New))
	a.m.rejected.Add(float64(st.Rejected))
	return st, err
}

// SchedulerConfig is what a Scheduler runs on.
type SchedulerConfig struct {
	Host    host.Host
	Ledger  Ledger
	Metrics *Metrics
	// Penalties, if set, is charged for protocol violations: responses
	// that break the protocol (ViolationPenalty) and malformed requests
	// (MalformedRequestPenalty).
	Penalties Penalizer
	// BlockPenalties, if set, is charged one unit per block that fails
	// verification; nil means Penalties.
	BlockPenalties Penalizer
	Log            *slog.Logger
	// Tracer makes the ledgersync.pull and ledgersync.serve spans; nil
	// makes none.
	Tracer trace.Tracer
}

// Scheduler serves the protocol (its Service) and decides when to pull
// from whom: when a peer that speaks the protocol connects (or starts
// speaking it), when asked to (Kick: a peer announced heads this node
// lacks; PullNow: an operator ran `icnctl ledger sync`), and every
// AntiEntropyInterval from a random peer. At most one pull per peer runs
// at a time: a request for a peer already being pulled from joins that
// pull. A key rotation replaces the host and with it the scheduler; the
// Metrics and the Penalizer carry over.
type Scheduler struct {
	h    host.Host
	svc  *Service
	m    *Metrics
	pen  Penalizer
	log  *slog.Logger
	kick chan kick
	tr   trace.Tracer
	// want carries requests to start pulls (or join running ones) to Run,
	// which owns every pull; stopped is closed when Run has returned.
	want    chan pullWant
	stopped chan struct{}

	// autoSlot staggers automatic pulls (see autoPullWait).
	autoSlot chan struct{}

	mu      sync.Mutex
	ran     bool
	running map[peer.ID]*pull
}

// NewScheduler builds a scheduler; it starts nothing (Run does).
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	blockPen := cfg.BlockPenalties
	if blockPen == nil {
		blockPen = cfg.Penalties
	}
	led := accounted{Ledger: cfg.Ledger, m: cfg.Metrics, pen: blockPen, log: log}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	svc := New(cfg.Host, led, log, Options{OnServe: func(n int) { cfg.Metrics.served.Add(float64(n)) }, Tracer: cfg.Tracer,
		Penalties: cfg.Penalties})
	return &Scheduler{h: cfg.Host, svc: svc, m: cfg.Metrics, pen: cfg.Penalties, log: log, kick: make(chan kick, 16), tr: cfg.Tracer,
		want: make(chan pullWant), stopped: make(chan struct{}), autoSlot: make(chan struct{}, 1), running: map[peer.ID]*pull{}}
}

// Service is the protocol service the scheduler runs.
func (ls *Scheduler) Service() *Service { return ls.svc }

// kick is a request for a pull from a peer, for the work of a trace (sc
// valid) or not.
type kick struct {
	p  peer.ID
	sc trace.SpanContext
}

// Kick asks for a sync with p soon; it never blocks. why is the trace of
// the work that needs it (a gossiped entry whose parents are missing), or
// an invalid SpanContext: the pull's span is part of that trace, or linked
// to it when the pull is already running for another.
func (ls *Scheduler) Kick(p peer.ID, why trace.SpanContext) {
	select {
	case ls.kick <- kick{p, why}:
	default:
	}
}

// Close removes the protocol handler. It is idempotent.
func (ls *Scheduler) Close() error { return ls.svc.Close() }

// Supports reports whether p speaks ledger sync, as far as identify told.
func (ls *Scheduler) Supports(p peer.ID) bool {
	protos, err := ls.h.Peerstore().SupportsProtocols(p, ID)
	return err == nil && len(protos) > 0
}

// Serving returns the peers of ps that speak ledger sync.
func (ls *Scheduler) Serving(ps []peer.ID) []peer.ID {
	var out []peer.ID
	for _, p := range ps {
		if ls.Supports(p) {
			out = append(out, p)
		}
	}
	return out
}

// pullWant asks Run to pull from peers now; reply gets one handle per peer.
type pullWant struct {
	peers []peer.ID
	sc    trace.SpanContext
	reply chan []Pull
}

// Pull is a pull someone asked for: the peer, and whether it was already
// running (Joined) or started for them. WaitPulls watches it.
type Pull struct {
	*pull
	Joined bool
}

// Peer is the peer pulled from.
func (p Pull) Peer() peer.ID { return p.peer }

// Run serves the protocol and pulls until ctx ends; when it returns, every
// pull and every response it served has ended. A scheduler runs once.
func (ls *Scheduler) Run(ctx context.Context) error {
	ls.mu.Lock()
	if ls.ran {
		ls.mu.Unlock()
		return errors.New("ledger sync scheduler already ran")
	}
	ls.ran = true
	ls.mu.Unlock()
	defer close(ls.stopped)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := ls.h.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return err
	}
	defer sub.Close()
	tick := time.NewTicker(AntiEntropyInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait: the pulls and the responder end with ctx
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ls.svc.Run(ctx) // the responder serves under ctx
	}()
	start := func(p peer.ID, auto bool, why trace.SpanContext) Pull {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if r := ls.running[p]; r != nil {
			r.link(why)
			return Pull{r, true}
		}
		r := newPull(p)
		ls.running[p] = r
		pctx := ctx
		if why.IsValid() {
			// Only pulls done for a trace's work are traced: the periodic
			// ones would each start a trace of their own.
			pctx, r.span = ls.tr.Start(trace.ContextWithSpanContext(ctx, why), "ledgersync.pull",
				trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("icn.peer", p.String())))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if auto {
				defer ls.takeAutoSlot(ctx)()
			}
			st, err := ls.syncWith(pctx, p, r.progress)
			r.endSpan(st, err)
			ls.mu.Lock()
			delete(ls.running, p)
			ls.mu.Unlock()
			r.finish(st, err)
		}()
		return Pull{r, false}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Out():
			if !ok {
				return nil
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if slices.Contains(e.Protocols, ID) {
					start(e.Peer, true, trace.SpanContext{})
				}
			case event.EvtPeerProtocolsUpdated:
				// A peer that identified before it served the protocol
				// (its stack was still starting, as after a key rotation).
				if slices.Contains(e.Added, ID) {
					start(e.Peer, true, trace.SpanContext{})
				}
			}
		case k := <-ls.kick:
			start(k.p, true, k.sc)
		case w := <-ls.want:
			runs := make([]Pull, len(w.peers))
			for i, p := range w.peers {
				runs[i] = start(p, false, w.sc)
			}
			w.reply <- runs
		case <-tick.C:
			if cands := ls.Serving(ls.h.Network().Peers()); len(cands) > 0 {
				start(cands[rand.IntN(len(cands))], true, trace.SpanContext{})
			}
		}
	}
}

// takeAutoSlot waits until no other automatic pull runs, or autoPullWait
// passes, or ctx ends, and returns what to call when the pull is over.
func (ls *Scheduler) takeAutoSlot(ctx context.Context) (release func()) {
	t := time.NewTimer(autoPullWait)
	defer t.Stop()
	select {
	case ls.autoSlot <- struct{}{}:
		return func() { <-ls.autoSlot }
	case <-t.C:
	case <-ctx.Done():
	}
	return func() {}
}

func (ls *Scheduler) syncWith(ctx context.Context, p peer.ID, progress func(received, announced int)) (Stats, error) {
	if ls.h.Network().Connectedness(p) != network.Connected {
		return Stats{}, ErrNotConnected
	}
	began := time.Now()
	lag := ls.m.lag.begin()
	defer ls.m.lag.end(lag)
	st, err := ls.svc.Sync(ctx, p, func(received, announced int) {
		ls.m.lag.set(lag, announced-received)
		progress(received, announced)
	})
	if err != nil {
		if errors.Is(err, ErrViolation) {
			ls.log.Warn("SECURITY: a peer broke the ledger sync protocol; it is penalised", "peer", p, "err", err)
			if ls.pen != nil {
				ls.pen.Add(p, ViolationPenalty)
			}
		} else if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			ls.log.Info("ledger sync with a peer failed", "peer", p, "err", err, "received", st.Received)
		}
		return st, err
	}
	ls.m.lastSuccess.SetToCurrentTime()
	if st.New > 0 || st.Rejected > 0 {
		ls.log.Info("ledger synced", "peer", p, "new", st.New, "rejected", st.Rejected, "took", time.Since(began).Round(time.Millisecond))
	}
	return st, nil
}

// PullNow starts a pull from each peer, or joins the one already running,
// and returns them to watch (WaitPulls). It fails with ErrStopped if Run is
// not running or stops, and with ctx's error if ctx ends first.
func (ls *Scheduler) PullNow(ctx context.Context, peers []peer.ID) ([]Pull, error) {
	w := pullWant{peers: peers, sc: trace.SpanContextFromContext(ctx), reply: make(chan []Pull, 1)}
	select {
	case ls.want <- w:
		return <-w.reply, nil
	case <-ls.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pull is one pull from one peer, which callers other than its starter
// may watch.
type pull struct {
	peer peer.ID
	// span is the pull's span when it is traced; set before the pull
	// starts, ended by it.
	span trace.Span
	mu   sync.Mutex
	// received and announced as last reported by the protocol.
	received, announced int
	finished            bool
	stats               Stats
	err                 error
	// watchers are poked (never blocking) on every change.
	watchers map[chan struct{}]struct{}
}

func newPull(p peer.ID) *pull {
	return &pull{peer: p, watchers: map[chan struct{}]struct{}{}}
}

// link records that the work of trace sc waits on this running pull too.
func (r *pull) link(sc trace.SpanContext) {
	if r.span != nil && sc.IsValid() {
		r.span.AddLink(trace.Link{SpanContext: sc})
	}
}

func (r *pull) endSpan(st Stats, err error) {
	if r.span == nil {
		return
	}
	r.span.SetAttributes(attribute.Int("icn.ledgersync.announced", st.Announced), attribute.Int("icn.ledgersync.received", st.Received),
		attribute.Int("icn.ledgersync.new", st.New), attribute.Int("icn.ledgersync.rejected", st.Rejected))
	if err != nil {
		r.span.SetStatus(codes.Error, err.Error())
	}
	r.span.End()
}

func (r *pull) progress(received, announced int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received, r.announced = received, announced
	r.pokeLocked()
}

func (r *pull) finish(st Stats, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished, r.stats, r.err = true, st, err
	r.received, r.announced = st.Received, st.Announced
	r.pokeLocked()
}

func (r *pull) pokeLocked() {
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (r *pull) watch(ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers[ch] = struct{}{}
}

func (r *pull) unwatch(ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.watchers, ch)
}

// PullState is a snapshot of a pull.
type PullState struct {
	Received, Announced int
	Finished            bool
	// Stats and Err are the pull's result once Finished.
	Stats Stats
	Err   error
}

// State is a snapshot of the pull now.
func (r *pull) State() PullState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return PullState{r.received, r.announced, r.finished, r.stats, r.err}
}

// WaitPulls waits until every pull has finished, calling progress with the
// entries received and announced summed over the pulls whenever one
// changes. If ctx ends first, it returns ctx's error; the pulls go on.
func WaitPulls(ctx context.Context, pulls []Pull, progress func(received, announced int)) ([]PullState, error) {
	poke := make(chan struct{}, 1)
	for _, r := range pulls {
		r.watch(poke)
		defer r.unwatch(poke)
	}
	var lastR, lastA = -1, -1
	for {
		states := make([]PullState, len(pulls))
		done := true
		var received, announced int
		for i, r := range pulls {
			states[i] = r.State()
			done = done && states[i].Finished
			received += states[i].Received
			announced += states[i].Announced
		}
		if progress != nil && announced > 0 && (received != lastR || announced != lastA) {
			lastR, lastA = received, announced
			progress(received, announced)
		}
		if done {
			return states, nil
		}
		select {
		case <-poke:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
