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
	lag         prometheus.Gauge
	lastSuccess prometheus.Gauge
}

func newSyncMetrics(reg prometheus.Registerer) (*syncMetrics, error) {
	m := &syncMetrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_received_total",
			Help: "Ledger entries received from peers by sync that were new to this node."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_rejected_total",
			Help: "Ledger blocks from peers refused: malformed, truncated, bad signature, not hashing to their CID, or breaking a static rule."}),
		served: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_ledger_sync_entries_served_total",
			Help: "Ledger entries sent to peers that lacked them."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_ledger_sync_lag_entries",
			Help: "New entries the most recent sync fetched: 0 when this node was caught up."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_ledger_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last sync that completed."}),
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.served, m.lag, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// storeLedger adapts the durable store to the sync protocol.
type storeLedger struct {
	s   *store.Store
	m   *syncMetrics
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

func (a storeLedger) Ingest(ctx context.Context, blocks [][]byte) (ledgersync.Stats, error) {
	res, err := a.s.Ingest(ctx, blocks, nil)
	st := ledgersync.Stats{Received: len(blocks)}
	for _, r := range res {
		switch {
		case r.Err != nil:
			st.Rejected++
			a.log.Info("refused a ledger block from a peer", "cid", r.CID, "err", r.Err)
		case !r.Duplicate:
			st.New++
		}
	}
	a.m.received.Add(float64(st.New))
	a.m.rejected.Add(float64(st.Rejected))
	return st, err
}

// ledgerSync pulls from peers: when one connects, when asked to (a peer
// announced heads this node lacks), and every AntiEntropyInterval.
type ledgerSync struct {
	h    host.Host
	svc  *ledgersync.Service
	m    *syncMetrics
	log  *slog.Logger
	kick chan peer.ID
}

func newLedgerSync(h host.Host, s *store.Store, m *syncMetrics, log *slog.Logger) *ledgerSync {
	adapter := storeLedger{s: s, m: m, log: log}
	svc := ledgersync.New(h, adapter, log, ledgersync.Options{OnServe: func(n int) { m.served.Add(float64(n)) }})
	return &ledgerSync{h: h, svc: svc, m: m, log: log, kick: make(chan peer.ID, 16)}
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

// Run syncs until ctx ends. At most one sync per peer runs at a time.
func (ls *ledgerSync) Run(ctx context.Context) error {
	sub, err := ls.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	defer sub.Close()
	tick := time.NewTicker(AntiEntropyInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := map[peer.ID]bool{}
	start := func(p peer.ID) {
		mu.Lock()
		defer mu.Unlock()
		if running[p] || ctx.Err() != nil {
			return
		}
		running[p] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); delete(running, p); mu.Unlock() }()
			ls.syncWith(ctx, p)
		}()
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
				start(e.Peer)
			}
		case p := <-ls.kick:
			start(p)
		case <-tick.C:
			var cands []peer.ID
			for _, p := range ls.h.Network().Peers() {
				if ls.supports(p) {
					cands = append(cands, p)
				}
			}
			if len(cands) > 0 {
				start(cands[rand.IntN(len(cands))])
			}
		}
	}
}

func (ls *ledgerSync) syncWith(ctx context.Context, p peer.ID) {
	if ls.h.Network().Connectedness(p) != network.Connected {
		return
	}
	began := time.Now()
	st, err := ls.svc.Sync(ctx, p, nil)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			ls.log.Info("ledger sync with a peer failed", "peer", p, "err", err, "received", st.Received)
		}
		return
	}
	ls.m.lag.Set(float64(st.New))
	ls.m.lastSuccess.SetToCurrentTime()
	if st.New > 0 || st.Rejected > 0 {
		ls.log.Info("ledger synced", "peer", p, "new", st.New, "rejected", st.Rejected, "took", time.Since(began).Round(time.Millisecond))
	}
}
