package node

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

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// AntiEntropyInterval is how often the node pulls from a random peer even
// when nothing told it that it lacks something.
const AntiEntropyInterval = 30 * time.Second

// syncMetrics outlive key rotations.
type syncMetrics struct {
	received    prometheus.Counter
	rejected    prometheus.Counter
	served      prometheus.Counter
	lag         *lagGauge
	lastSuccess prometheus.Gauge
}

func newSyncMetrics(reg prometheus.Registerer) (*syncMetrics, error) {
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_ledger_sync_lag_entries",
		Help: "Entries this node still has to receive from peers in the syncs running now: for each running sync, the entries the peer announced minus those received so far; the largest of these (concurrent syncs mostly fetch the same entries). 0 when no sync is running or the node is caught up."})
	m := &syncMetrics{
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

// Penalties charged to a peer over sync, in bad-block units (see
// gossip.Penalties): each block that fails verification costs one; a
// response that breaks the protocol (a wrong count, an oversize frame)
// costs violationPenalty, as the stream ends there and then.
const violationPenalty = 5

// penalizer is what sync tells about peers that serve bad blocks
// (*gossip.Penalties, which the gossip score reads).
type penalizer interface {
	Add(p peer.ID, units float64)
}

// storeLedger adapts the durable store to the sync protocol.
type storeLedger struct {
	s   *store.Store
	m   *syncMetrics
	pen penalizer
	log *slog.Logger
}

func (a storeLedger) Summary() map[did.DID]ledger.AuthorSummary {
	var out map[did.DID]ledger.AuthorSummary
	a.s.Read(func(l *ledger.Ledger) { out = l.Summary() })
	return out
}

func (a storeLedger) MissingFrom(ctx context.Context, r map[did.DID]ledger.AuthorSummary, limit int) ([][]byte, error) {
	return a.s.MissingFrom(ctx, r, limit)
}

// Ingest stores blocks from peer from, counts what it refused and charges
// from for each refused block.
func (a storeLedger) Ingest(ctx context.Context, from peer.ID, blocks [][]byte) (ledgersync.Stats, error) {
	res, err := a.s.Ingest(ctx, blocks, nil)
	st := ledgersync.Stats{Received: len(blocks)}
	var first store.Result
	for _, r := range res {
		switch {
		// A block refused because the batch could not be stored (err) is
		// this node's failure, not the peer's.
		case r.Err != nil && (err == nil || !errors.Is(r.Err, err)):
			if st.Rejected == 0 {
				first = r
			}
			st.Rejected++
		case r.Err == nil && !r.Duplicate:
			st.New++
		}
	}
	if st.Rejected > 0 {
		// One line per batch, not per block: a hostile peer could send
		// hundreds of thousands.
		a.log.Info("SECURITY: refused ledger blocks from a peer; it is penalised", "peer", from, "refused", st.Rejected, "of", len(blocks),
			"first_cid", first.CID, "first_err", first.Err)
	}
	a.m.received.Add(float64(st.New))
	a.m.rejected.Add(float64(st.Rejected))
	if st.Rejected > 0 && a.pen != nil {
		a.pen.Add(from, float64(st.Rejected))
	}
	return st, err
}

// ledgerSync pulls from peers: when one connects, when asked to (a peer
// announced heads this node lacks, or an operator ran `icnctl ledger
// sync`), and every AntiEntropyInterval. At most one pull per peer runs at a
// time: a request for a peer already being pulled from joins that pull.
type ledgerSync struct {
	h    host.Host
	svc  *ledgersync.Service
	m    *syncMetrics
	pen  penalizer
	log  *slog.Logger
	kick chan peer.ID
	// want carries requests to start pulls (or join running ones) to Run,
	// which owns every pull; stopped is closed when Run has returned.
	want    chan syncWant
	stopped chan struct{}

	// autoSlot staggers automatic pulls (see autoPullWait).
	autoSlot chan struct{}

	mu      sync.Mutex
	running map[peer.ID]*syncRun
}

// autoPullWait is how long an automatic pull waits for another automatic
// pull to finish before it starts anyway. A node that connects to several
// peers at once would otherwise pull the same missing history from each of
// them: waiting, the second pull sends a summary that already holds what
// the first fetched and gets only the rest. The bound keeps a slow or
// stalling peer from holding back pulls from the others for long. Pulls an
// operator asks for (`icnctl ledger sync`) never wait.
const autoPullWait = 20 * time.Second

func newLedgerSync(h host.Host, s *store.Store, m *syncMetrics, pen penalizer, log *slog.Logger) *ledgerSync {
	adapter := storeLedger{s: s, m: m, pen: pen, log: log}
	svc := ledgersync.New(h, adapter, log, ledgersync.Options{OnServe: func(n int) { m.served.Add(float64(n)) }})
	return &ledgerSync{h: h, svc: svc, m: m, pen: pen, log: log, kick: make(chan peer.ID, 16),
		want: make(chan syncWant), stopped: make(chan struct{}), autoSlot: make(chan struct{}, 1), running: map[peer.ID]*syncRun{}}
}

// Kick asks for a sync with p soon; it never blocks.
func (ls *ledgerSync) Kick(p peer.ID) {
	select {
	case ls.kick <- p:
	default:
	}
}

func (ls *ledgerSync) Close() error { return ls.svc.Close() }

func (ls *ledgerSync) supports(p peer.ID) bool {
	protos, err := ls.h.Peerstore().SupportsProtocols(p, ledgersync.ID)
	return err == nil && len(protos) > 0
}

// serving returns the peers of ps that speak ledger sync.
func (ls *ledgerSync) serving(ps []peer.ID) []peer.ID {
	var out []peer.ID
	for _, p := range ps {
		if ls.supports(p) {
			out = append(out, p)
		}
	}
	return out
}

// syncWant asks Run to pull from peers now; reply gets one handle per peer.
type syncWant struct {
	peers []peer.ID
	reply chan []watchedRun
}

// watchedRun is a pull someone asked for, and whether it was already
// running (joined) or started for them.
type watchedRun struct {
	*syncRun
	joined bool
}

// errSyncStopped means the stack is stopping (shutdown or key rotation).
var errSyncStopped = errors.New("ledger sync is stopping")

// Run syncs until ctx ends. At most one sync per peer runs at a time.
func (ls *ledgerSync) Run(ctx context.Context) error {
	defer close(ls.stopped)
	sub, err := ls.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	defer sub.Close()
	tick := time.NewTicker(AntiEntropyInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(p peer.ID, auto bool) watchedRun {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if r := ls.running[p]; r != nil {
			return watchedRun{r, true}
		}
		r := newSyncRun(p)
		ls.running[p] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			if auto {
				defer ls.takeAutoSlot(ctx)()
			}
			st, err := ls.syncWith(ctx, p, r.progress)
			ls.mu.Lock()
			delete(ls.running, p)
			ls.mu.Unlock()
			r.finish(st, err)
		}()
		return watchedRun{r, false}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Out():
			if !ok {
				return nil
			}
			e := ev.(event.EvtPeerIdentificationCompleted)
			if slices.Contains(e.Protocols, ledgersync.ID) {
				start(e.Peer, true)
			}
		case p := <-ls.kick:
			start(p, true)
		case w := <-ls.want:
			runs := make([]watchedRun, len(w.peers))
			for i, p := range w.peers {
				runs[i] = start(p, false)
			}
			w.reply <- runs
		case <-tick.C:
			if cands := ls.serving(ls.h.Network().Peers()); len(cands) > 0 {
				start(cands[rand.IntN(len(cands))], true)
			}
		}
	}
}

// errNotConnected ends a pull from a peer that is gone.
var errNotConnected = errors.New("not connected")

// takeAutoSlot waits until no other automatic pull runs, or autoPullWait
// passes, or ctx ends, and returns what to call when the pull is over.
func (ls *ledgerSync) takeAutoSlot(ctx context.Context) (release func()) {
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

func (ls *ledgerSync) syncWith(ctx context.Context, p peer.ID, progress func(received, announced int)) (ledgersync.Stats, error) {
	if ls.h.Network().Connectedness(p) != network.Connected {
		return ledgersync.Stats{}, errNotConnected
	}
	began := time.Now()
	lag := ls.m.lag.begin()
	defer ls.m.lag.end(lag)
	st, err := ls.svc.Sync(ctx, p, func(received, announced int) {
		ls.m.lag.set(lag, announced-received)
		progress(received, announced)
	})
	if err != nil {
		if errors.Is(err, ledgersync.ErrViolation) {
			ls.log.Warn("SECURITY: a peer broke the ledger sync protocol; it is penalised", "peer", p, "err", err)
			if ls.pen != nil {
				ls.pen.Add(p, violationPenalty)
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

// pullNow starts a pull from each peer, or joins the one already running,
// and returns them to watch. It fails if Run is not running or stops.
func (ls *ledgerSync) pullNow(ctx context.Context, peers []peer.ID) ([]watchedRun, error) {
	w := syncWant{peers: peers, reply: make(chan []watchedRun, 1)}
	select {
	case ls.want <- w:
		return <-w.reply, nil
	case <-ls.stopped:
		return nil, errSyncStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// syncRun is one pull from one peer, which callers other than its starter
// may watch.
type syncRun struct {
	peer peer.ID
	mu   sync.Mutex
	// received and announced as last reported by the protocol.
	received, announced int
	finished            bool
	stats               ledgersync.Stats
	err                 error
	// watchers are poked (never blocking) on every change.
	watchers map[chan struct{}]struct{}
}

func newSyncRun(p peer.ID) *syncRun {
	return &syncRun{peer: p, watchers: map[chan struct{}]struct{}{}}
}

func (r *syncRun) progress(received, announced int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received, r.announced = received, announced
	r.pokeLocked()
}

func (r *syncRun) finish(st ledgersync.Stats, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished, r.stats, r.err = true, st, err
	r.received, r.announced = st.Received, st.Announced
	r.pokeLocked()
}

func (r *syncRun) pokeLocked() {
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (r *syncRun) watch(ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers[ch] = struct{}{}
}

func (r *syncRun) unwatch(ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.watchers, ch)
}

// runState is a snapshot of a syncRun.
type runState struct {
	received, announced int
	finished            bool
	stats               ledgersync.Stats
	err                 error
}

func (r *syncRun) state() runState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return runState{r.received, r.announced, r.finished, r.stats, r.err}
}

// waitRuns waits until every run has finished, calling progress with the
// entries received and announced summed over the runs whenever one
// changes. If ctx ends first, it returns ctx's error; the runs go on.
func waitRuns(ctx context.Context, runs []watchedRun, progress func(received, announced int)) ([]runState, error) {
	poke := make(chan struct{}, 1)
	for _, r := range runs {
		r.watch(poke)
		defer r.unwatch(poke)
	}
	var lastR, lastA = -1, -1
	for {
		states := make([]runState, len(runs))
		done := true
		var received, announced int
		for i, r := range runs {
			states[i] = r.state()
			done = done && states[i].finished
			received += states[i].received
			announced += states[i].announced
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
