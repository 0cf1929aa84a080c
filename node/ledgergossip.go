package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/protocols/gossip"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// Gossip payload types of the ledger.
const (
	// LedgerEntryType carries one ledger block.
	LedgerEntryType = "icn/ledger-entry"
	// LedgerStateType carries a node's ledger state hash and its holdings
	// digest (32 bytes each, see ledger.Ledger.Holdings): a peer for which
	// either differs pulls from the announcer with ledgersync. The second
	// spreads equivocation evidence, which leaves state hashes equal.
	LedgerStateType = "icn/ledger-state"
)

// How often the state hash is announced: soon after it changes, and
// periodically even when it does not.
const (
	stateAnnounceMin = 3 * time.Second
	stateAnnounceMax = 30 * time.Second
)

func checkStatePayload(p []byte) error {
	if len(p) != 64 {
		return fmt.Errorf("ledger state announcement is %d bytes, want 64", len(p))
	}
	return nil
}

// stateAnnouncement is what a node announces: its state hash, then its
// holdings digest.
func stateAnnouncement(s *store.Store) [64]byte {
	var out [64]byte
	var d [32]byte
	h := s.ReadWithStateHash(func(l *ledger.Ledger) { d = l.Holdings() })
	copy(out[:32], h[:])
	copy(out[32:], d[:])
	return out
}

// LedgerTopic is the gossip topic of a currency: ledger:<symbol>, the
// symbol in canonical form whatever its letter case (HRS and hrs share
// ledger:hrs).
func LedgerTopic(symbol string) string {
	if c, err := ledger.CanonicalSymbol(symbol); err == nil {
		symbol = c
	}
	return "ledger:" + symbol
}

// CanonicalTopic is the topic a user means: a ledger topic with its symbol
// folded (ledger:HRS is ledger:hrs), any other topic as given.
func CanonicalTopic(topic string) string {
	if sym, ok := strings.CutPrefix(topic, "ledger:"); ok {
		return LedgerTopic(sym)
	}
	return topic
}

// LedgerStateTopic carries state-hash announcements; every node joins it,
// so even a node that knows no currency yet learns that it lags. They are
// a direct type: each goes to the announcer's neighbours only, so a node
// hears from its own peers, not from the whole network. "*" can never be
// a currency symbol.
const LedgerStateTopic = "ledger:*"

// ledgerGossip pushes the node's own entries on their currency topics and
// ingests the entries others push. What push misses (a node offline, a
// dropped message), sync catches: an entry whose parents are unknown kicks a
// sync with the peer that passed it on.
type ledgerGossip struct {
	g     *gossip.Service
	store *store.Store
	sync  *ledgersync.Scheduler
	pub   <-chan pushEntry
	log   *slog.Logger
	// tracer makes the ledger.ingest spans of pushed entries that came
	// with a trace.
	tracer trace.Tracer
}

// pushEntry is one of the node's own entries to push, and the trace it was
// written in (invalid when none).
type pushEntry struct {
	cid cid.Cid
	sc  trace.SpanContext
}

// refreshInterval is how often new currencies are looked for to subscribe to.
const refreshInterval = 2 * time.Second

// Close is a no-op: subscriptions end with Run.
func (lg *ledgerGossip) Close() error { return nil }

// Run subscribes to the topic of every known currency until ctx ends.
func (lg *ledgerGossip) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	subs := map[string]*gossip.Subscription{}
	defer func() {
		for _, s := range subs {
			s.Cancel()
		}
		wg.Wait()
	}()
	subscribe := func(topic string) {
		if _, ok := subs[topic]; ok {
			return
		}
		sub, err := lg.g.Subscribe(topic, gossip.DefaultSubscriberBuffer)
		if err != nil {
			lg.log.Warn("cannot subscribe to a ledger topic", "topic", topic, "err", err)
			return
		}
		subs[topic] = sub
		wg.Add(1)
		go func() {
			defer wg.Done()
			lg.receive(ctx, sub)
		}()
	}
	refresh := func() {
		var syms []string
		lg.store.Read(func(l *ledger.Ledger) {
			for _, c := range l.Currencies() {
				syms = append(syms, c.ID.Symbol)
			}
		})
		subscribe(LedgerStateTopic)
		for _, s := range syms {
			subscribe(LedgerTopic(s))
		}
	}
	refresh()
	tick := time.NewTicker(refreshInterval)
	defer tick.Stop()
	var announced [64]byte
	var lastAnnounce time.Time
	announce := func(now time.Time) {
		h := stateAnnouncement(lg.store)
		if now.Sub(lastAnnounce) < stateAnnounceMin || (h == announced && now.Sub(lastAnnounce) < stateAnnounceMax) {
			return
		}
		announced, lastAnnounce = h, now
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = lg.g.Publish(pctx, LedgerStateTopic, LedgerStateType, h[:])
		cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			refresh()
			announce(now)
		case pe := <-lg.pub:
			c := pe.cid
			block, err := lg.store.Block(ctx, c)
			if err != nil {
				lg.log.Warn("cannot read an entry to push it", "cid", c, "err", err)
				continue
			}
			e, err := ledger.Decode(block)
			if err != nil {
				lg.log.Warn("cannot decode an entry to push it", "cid", c, "err", err)
				continue
			}
			for _, sym := range entrySymbols(e) {
				subscribe(LedgerTopic(sym))
				// The push is part of the trace the entry was written in.
				pctx, cancel := context.WithTimeout(trace.ContextWithSpanContext(ctx, pe.sc), 10*time.Second)
				_, err := lg.g.Publish(pctx, LedgerTopic(sym), LedgerEntryType, block)
				cancel()
				if err != nil && ctx.Err() == nil {
					lg.log.Info("could not push a ledger entry; peers will sync it", "cid", c, "err", err)
				}
			}
		}
	}
}

// entrySymbols lists the symbols an entry is pushed under; they are
// canonical, as the ledger's static rules require.
func entrySymbols(e *ledger.Entry) []string {
	if e.Currency != nil {
		return []string{e.Currency.Symbol}
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range e.Postings {
		if !seen[p.Currency.Symbol] {
			seen[p.Currency.Symbol] = true
			out = append(out, p.Currency.Symbol)
		}
	}
	return out
}

func (lg *ledgerGossip) receive(ctx context.Context, sub *gossip.Subscription) {
	for m := range sub.Messages() {
		if m.Local {
			continue
		}
		if m.Type == LedgerStateType {
			mine := stateAnnouncement(lg.store)
			if !bytes.Equal(mine[:], m.Payload) {
				lg.sync.Kick(m.From, m.Trace)
			}
			continue
		}
		if m.Type != LedgerEntryType {
			continue
		}
		ictx, end := ingestSpan(trace.ContextWithSpanContext(ctx, m.Trace), lg.tracer, 1)
		res, err := lg.store.Ingest(ictx, [][]byte{m.Payload}, nil)
		if err != nil {
			end(err)
			if ctx.Err() == nil {
				lg.log.WarnContext(ictx, "storing a pushed ledger entry failed", "err", err)
			}
			continue
		}
		if len(res) == 1 {
			trace.SpanFromContext(ictx).SetAttributes(attribute.String("icn.ledger.cid", res[0].CID.String()),
				attribute.String("icn.ledger.status", res[0].Status.String()))
			lg.log.DebugContext(ictx, "ledger entry received by gossip", "cid", res[0].CID, "status", res[0].Status,
				"duplicate", res[0].Duplicate, "from", m.ReceivedFrom)
		}
		end(nil)
		if len(res) == 1 && res[0].Status == ledger.StatusPending {
			// Its parents are unknown here: fetch the history from whoever
			// passed it on, in the same trace.
			lg.sync.Kick(m.ReceivedFrom, trace.SpanContextFromContext(ictx))
		}
	}
}
