package node

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// The ledger pull scheduler lives in protocols/ledgersync; node wires it to
// the store.

// newLedgerSync builds the scheduler of one stack over the durable store.
// pen is charged for protocol violations, blockPen for bad blocks.
func newLedgerSync(h host.Host, s *store.Store, m *ledgersync.Metrics, pen, blockPen ledgersync.Penalizer, log *slog.Logger, tp trace.TracerProvider) *ledgersync.Scheduler {
	return ledgersync.NewScheduler(ledgersync.SchedulerConfig{Host: h, Ledger: storeLedger{s, tp.Tracer(tracerName)}, Metrics: m,
		Penalties: pen, BlockPenalties: blockPen, Log: log, Tracer: tp.Tracer(ledgersyncTracer)})
}

// storeLedger adapts the durable store to the sync protocol.
type storeLedger struct {
	s      *store.Store
	tracer trace.Tracer
}

func (a storeLedger) Summary() map[did.DID]ledger.AuthorSummary {
	var out map[did.DID]ledger.AuthorSummary
	a.s.Read(func(l *ledger.Ledger) { out = l.Summary() })
	return out
}

func (a storeLedger) MissingCIDs(r map[did.DID]ledger.AuthorSummary, limit int) []cid.Cid {
	return a.s.MissingCIDs(r, limit)
}

func (a storeLedger) Block(ctx context.Context, c cid.Cid) ([]byte, error) { return a.s.Block(ctx, c) }

// Ingest stores blocks from a peer and says which it refused. A block
// refused because the batch could not be stored (err) is this node's
// failure, not the peer's, and is not counted against it.
func (a storeLedger) Ingest(ctx context.Context, _ peer.ID, blocks [][]byte) (_ ledgersync.Stats, err error) {
	ctx, end := ingestSpan(ctx, a.tracer, len(blocks))
	defer func() { end(err) }()
	res, err := a.s.Ingest(ctx, blocks, nil)
	st := ledgersync.Stats{Received: len(blocks)}
	for _, r := range res {
		switch {
		case r.Err != nil && errors.As(r.Err, new(*UntrustedAuthorError)):
			// The policy here, not the peer's fault: not counted against it.
		case r.Err != nil && (err == nil || !errors.Is(r.Err, err)):
			if st.Rejected == 0 {
				st.FirstRejected = ledgersync.Rejection{CID: r.CID, Err: r.Err}
			}
			st.Rejected++
		case r.Err == nil && !r.Duplicate:
			st.New++
		}
	}
	return st, err
}
