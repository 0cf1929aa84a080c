package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/controlapi"
)

// DatastoreDir is the Badger datastore's directory inside the data dir.
const DatastoreDir = "datastore"

// Quarantine sizes at which /health turns degraded and unhealthy.
const (
	QuarantineDegraded  = 100
	QuarantineUnhealthy = 1000
)

// DatastoreError means the ledger datastore exists but cannot be opened or
// read back: it is damaged, or incomplete (a copy of a running node's files).
type DatastoreError struct {
	Dir string
	Err error
}

func (e *DatastoreError) Error() string {
	return fmt.Sprintf("the ledger datastore cannot be opened: %v", e.Err)
}

func (e *DatastoreError) Unwrap() error { return e.Err }

// Hint says how to start again.
func (e *DatastoreError) Hint() string {
	return fmt.Sprintf("if it is damaged, or was copied while icnd was running, move it aside (mv %s %s.broken) and start icnd again: "+
		"it starts with an empty ledger and fetches the entries from its peers, and `icnctl ledger restore FILE` "+
		"brings back a backup made with `icnctl ledger backup`", e.Dir, e.Dir)
}

func openLedger(ctx context.Context, dataDir string, inMemory bool, log *slog.Logger) (*store.Store, error) {
	dir := filepath.Join(dataDir, DatastoreDir)
	began := time.Now()
	s, err := store.Open(ctx, dir, store.Options{Log: log.With("component", "ledger"), InMemory: inMemory})
	switch {
	case err == nil:
	case errors.As(err, new(*store.InUseError)), errors.As(err, new(*store.DiskFullError)):
		return nil, err
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOSPC), ctx.Err() != nil:
		return nil, err
	default:
		return nil, &DatastoreError{Dir: dir, Err: err}
	}
	info := s.Loaded()
	if info.SnapshotError != nil {
		log.Warn("ledger snapshot not used; replaying every entry instead (nothing is lost)", "err", info.SnapshotError)
	}
	log.Info("ledger loaded", "entries", s.Count(), "from_snapshot", info.FromSnapshot, "replayed", info.Replayed,
		"took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// registerLedgerMetrics exports the ledger's counts, read at scrape time.
func registerLedgerMetrics(reg prometheus.Registerer, s *store.Store) error {
	stat := func(f func(ledger.Stats) int) func() float64 {
		return func() float64 {
			var v int
			s.Read(func(l *ledger.Ledger) { v = f(l.Stats()) })
			return float64(v)
		}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icn_ledger_transactions_total",
			Help: "Accepted ledger transfers."}, stat(func(s ledger.Stats) int { return s.Transfers })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_ledger_accounts_total",
			Help: "Accounts (DIDs) holding a non-zero balance in some currency."}, stat(func(s ledger.Stats) int { return s.Accounts })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_ledger_currencies_total",
			Help: "Currencies defined."}, stat(func(s ledger.Stats) int { return s.Currencies })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_ledger_entries_quarantined",
			Help: "Entries held in quarantine (equivocations, invalid entries and what depends on them)."}, stat(func(s ledger.Stats) int { return s.Quarantined })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_ledger_entries_pending",
			Help: "Entries waiting for parents the node has not received yet."}, stat(func(s ledger.Stats) int { return s.Pending })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_ledger_entries_accepted",
			Help: "Entries accepted into the ledger state."}, stat(func(s ledger.Stats) int { return s.Accepted })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icn_ledger_snapshot_failures_total",
			Help: "Periodic ledger snapshots that failed since start (logged at WARN); the next start replays every entry since the last snapshot written."}, func() float64 { return float64(s.SnapshotFailures()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Quarantine lists the quarantined entries and why.
func (n *Node) Quarantine() []controlapi.Quarantined {
	out := []controlapi.Quarantined{}
	n.ledger.Read(func(l *ledger.Ledger) {
		for _, q := range l.Quarantine() {
			out = append(out, controlapi.Quarantined{CID: q.CID.String(), Author: q.Author.String(), Seq: q.Seq, Reason: q.Reason})
		}
	})
	return out
}

// Currencies lists the currencies defined in the ledger.
func (n *Node) Currencies() []controlapi.CurrencyInfo {
	out := []controlapi.CurrencyInfo{}
	n.ledger.Read(func(l *ledger.Ledger) {
		for _, c := range l.Currencies() {
			out = append(out, controlapi.CurrencyInfo{Symbol: c.ID.Symbol, Display: c.Def.DisplaySymbol(), Issuer: c.ID.Issuer.String(), Decimals: c.Def.Decimals,
				CreditLimit: ledger.FormatAmount(c.Def.CreditLimit, c.Def.Decimals)})
		}
	})
	return out
}

// VerifyLedger re-reads every stored block and checks the state it makes;
// progress, if set, gets blocks done and the total.
func (n *Node) VerifyLedger(ctx context.Context, progress func(done, total int)) (controlapi.VerifyReport, error) {
	rep, err := n.ledger.Verify(ctx, progress)
	if err != nil {
		return controlapi.VerifyReport{}, err
	}
	problems := rep.Problems
	if problems == nil {
		problems = []string{}
	}
	return controlapi.VerifyReport{Blocks: rep.Blocks, Accepted: rep.Accepted, Quarantined: rep.Quarantined, Pending: rep.Pending,
		StateHash: rep.StateHash, OK: rep.OK(), Problems: problems}, nil
}

// signer returns the node's DID and DID key.
func (n *Node) signer() (did.DID, func(*ledger.Entry) ([]byte, error)) {
	id := n.current().id
	return id.DID, func(e *ledger.Entry) ([]byte, error) {
		b, _, err := ledger.Sign(e, id.DIDKey)
		return b, err
	}
}

// appendEntry builds the node's next entry, refuses it if it would be
// quarantined, stores it durably, and returns it.
func (n *Node) appendEntry(ctx context.Context, fill func(l *ledger.Ledger, e *ledger.Entry) error) (_ controlapi.Entry, err error) {
	ctx, span := n.tracer.Start(ctx, "ledger.append")
	defer func() { endSpan(span, err) }()
	me, sign := n.signer()
	var built *ledger.Entry
	res, err := n.ledger.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		seq, prev, parents := l.Next(me)
		e := &ledger.Entry{Author: me, Seq: seq, Prev: prev, Parents: parents, Timestamp: time.Now().UnixMilli()}
		if err := fill(l, e); err != nil {
			return nil, err
		}
		built = e
		return sign(e)
	})
	if err != nil {
		return controlapi.Entry{}, err
	}
	var out controlapi.Entry
	n.ledger.Read(func(l *ledger.Ledger) {
		out = entryInfo(l, &ledger.Verified{Entry: built, CID: res.CID}, res.Status, res.Reason)
	})
	span.SetAttributes(attribute.String("icn.ledger.cid", res.CID.String()), attribute.String("icn.ledger.status", res.Status.String()))
	n.published(ctx, res.CID)
	return out, nil
}

// published is called with every entry the node itself wrote (or a member
// submitted), in the trace of the request; gossip wires it to push the
// entry to peers in that trace.
func (n *Node) published(ctx context.Context, c cid.Cid) {
	if n.onPublish != nil {
		n.onPublish(c, trace.SpanContextFromContext(ctx))
	}
}

// CreateCurrency defines a currency issued by this node's DID.
func (n *Node) CreateCurrency(ctx context.Context, req controlapi.CurrencyRequest) (controlapi.Entry, error) {
	sym, err := ledger.CanonicalSymbol(req.Symbol)
	if err != nil {
		return controlapi.Entry{}, argErr(ArgSymbol, req.Symbol, err)
	}
	if req.Decimals > ledger.MaxDecimals {
		return controlapi.Entry{}, argErrf(ArgDecimals, fmt.Sprint(req.Decimals), "%d decimals is too many", req.Decimals)
	}
	// A zero limit would make the currency unusable: in mutual credit every
	// payment starts with somebody going below zero.
	limit, err := ledger.ParseAmount(req.CreditLimit, req.Decimals)
	if errors.Is(err, ledger.ErrZeroAmount) {
		return controlapi.Entry{}, argErrf(ArgCreditLimit, req.CreditLimit, "a credit limit of %s is refused: in mutual credit every payment starts with "+
			"somebody going below zero, so with a zero limit nobody could ever pay", req.CreditLimit)
	}
	if err != nil {
		return controlapi.Entry{}, argErrf(ArgCreditLimit, req.CreditLimit, "credit limit: %w", err)
	}
	return n.appendEntry(ctx, func(l *ledger.Ledger, e *ledger.Entry) error {
		me := e.Author
		if c, ok := l.LookupCurrency(ledger.CurrencyID{Symbol: sym, Issuer: me}); ok {
			return &CurrencyExistsError{Symbol: c.Def.DisplaySymbol()}
		}
		e.Kind = ledger.KindCurrency
		e.Currency = &ledger.CurrencyDef{Symbol: sym, Display: ledger.DisplayFor(req.Symbol), Decimals: req.Decimals, CreditLimit: limit}
		return nil
	})
}

// resolveCurrency finds a currency by symbol or symbol@issuer, the symbol
// in any letter case.
func resolveCurrency(l *ledger.Ledger, s string) (ledger.Currency, error) {
	typed, issuer, qualified := strings.Cut(s, "@")
	sym, err := ledger.CanonicalSymbol(typed)
	if err != nil {
		return ledger.Currency{}, argErr(ArgCurrency, s, err)
	}
	if qualified {
		if _, err := did.Parse(issuer); err != nil {
			return ledger.Currency{}, argErr(ArgCurrencyIssuer, s, err)
		}
	}
	var matches []ledger.Currency
	for _, c := range l.Currencies() {
		if c.ID.Symbol == sym && (!qualified || c.ID.Issuer.String() == issuer) {
			matches = append(matches, c)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		var known []string
		for _, c := range l.Currencies() {
			known = append(known, c.Def.DisplaySymbol())
		}
		return ledger.Currency{}, &UnknownCurrencyError{Symbol: s, Typed: typed, Qualified: qualified, Known: known}
	}
	var opts []string
	for _, c := range matches {
		opts = append(opts, c.Def.DisplaySymbol()+"@"+c.ID.Issuer.String())
	}
	return ledger.Currency{}, &AmbiguousCurrencyError{Symbol: typed, Options: opts}
}

// Pay pays req.To from this node's DID.
func (n *Node) Pay(ctx context.Context, req controlapi.PayRequest) (controlapi.Entry, error) {
	to, err := did.Parse(req.To)
	if err != nil {
		return controlapi.Entry{}, argErr(ArgPayee, req.To, err)
	}
	if len(req.Memo) > ledger.MaxMemo {
		return controlapi.Entry{}, argErrf(ArgMemo, req.Memo, "the memo is %d bytes; at most %d", len(req.Memo), ledger.MaxMemo)
	}
	return n.appendEntry(ctx, func(l *ledger.Ledger, e *ledger.Entry) error {
		if to == e.Author {
			return ErrPaySelf
		}
		cur, err := resolveCurrency(l, req.Currency)
		if err != nil {
			return err
		}
		units, err := ledger.ParseAmount(req.Amount, cur.Def.Decimals)
		if err != nil {
			return &ArgError{Arg: ArgAmount, Value: req.Amount, Err: err, Decimals: cur.Def.Decimals}
		}
		e.Kind, e.Memo = ledger.KindTransfer, req.Memo
		e.Postings = []ledger.Posting{
			{Account: e.Author, Currency: cur.ID, Amount: -units},
			{Account: to, Currency: cur.ID, Amount: units},
		}
		return nil
	})
}

func entryInfo(l *ledger.Ledger, v *ledger.Verified, st ledger.Status, reason string) controlapi.Entry {
	e := v.Entry
	out := controlapi.Entry{CID: v.CID.String(), Author: e.Author.String(), Seq: e.Seq, Kind: e.Kind.String(),
		Status: st.String(), Reason: reason, Timestamp: e.Timestamp, Memo: e.Memo}
	if e.Currency != nil {
		out.Currency = &controlapi.CurrencyInfo{Symbol: e.Currency.Symbol, Display: e.Currency.DisplaySymbol(), Issuer: e.Author.String(), Decimals: e.Currency.Decimals,
			CreditLimit: ledger.FormatAmount(e.Currency.CreditLimit, e.Currency.Decimals)}
	}
	for _, p := range e.Postings {
		dec, shown := uint8(0), ledger.DefaultDisplay(p.Currency.Symbol)
		if c, ok := l.LookupCurrency(p.Currency); ok {
			dec, shown = c.Def.Decimals, c.Def.DisplaySymbol()
		}
		out.Postings = append(out.Postings, controlapi.Posting{DID: p.Account.String(), Currency: p.Currency.Symbol, Display: shown,
			Issuer: p.Currency.Issuer.String(), Amount: ledger.FormatAmount(p.Amount, dec), Units: p.Amount})
	}
	return out
}

// Balances lists balances, for one DID and/or currency when given.
func (n *Node) Balances(didStr, currency string) ([]controlapi.Balance, error) {
	var who did.DID
	if didStr != "" {
		d, err := did.Parse(didStr)
		if err != nil {
			return nil, argErr(ArgDID, didStr, err)
		}
		who = d
	}
	out := []controlapi.Balance{}
	var err error
	n.ledger.Read(func(l *ledger.Ledger) {
		var only *ledger.CurrencyID
		if currency != "" {
			c, cerr := resolveCurrency(l, currency)
			if cerr != nil {
				err = cerr
				return
			}
			only = &c.ID
		}
		for _, b := range l.Balances() {
			if (!who.IsZero() && b.Account != who) || (only != nil && b.Currency != *only) {
				continue
			}
			c, ok := l.LookupCurrency(b.Currency)
			if !ok {
				c.Def.Symbol = b.Currency.Symbol // shown in uppercase
			}
			out = append(out, controlapi.Balance{DID: b.Account.String(), Currency: b.Currency.Symbol, Display: c.Def.DisplaySymbol(), Issuer: b.Currency.Issuer.String(),
				Balance: ledger.FormatAmount(b.Units, c.Def.Decimals), Units: b.Units})
		}
		// A member with no activity in a currency still has a balance: zero.
		if !who.IsZero() && only != nil && len(out) == 0 {
			c, _ := l.LookupCurrency(*only)
			out = append(out, controlapi.Balance{DID: who.String(), Currency: only.Symbol, Display: c.Def.DisplaySymbol(), Issuer: only.Issuer.String(),
				Balance: ledger.FormatAmount(0, c.Def.Decimals)})
		}
	})
	return out, err
}

// History lists entries by or to a DID ("" means this node's).
func (n *Node) History(ctx context.Context, didStr string) ([]controlapi.Entry, error) {
	who, _ := n.signer()
	if didStr != "" {
		d, err := did.Parse(didStr)
		if err != nil {
			return nil, argErr(ArgDID, didStr, err)
		}
		who = d
	}
	recs, err := n.ledger.History(ctx, who)
	if err != nil {
		return nil, err
	}
	out := []controlapi.Entry{}
	n.ledger.Read(func(l *ledger.Ledger) {
		for _, r := range recs {
			out = append(out, entryInfo(l, &ledger.Verified{Entry: r.Entry, CID: r.CID}, r.Status, r.Reason))
		}
	})
	return out, nil
}

// LedgerHead reports heads, counts and the state hash.
func (n *Node) LedgerHead() controlapi.Head {
	var h controlapi.Head
	hash := n.ledger.ReadWithStateHash(func(l *ledger.Ledger) {
		st := l.Stats()
		h = controlapi.Head{Heads: []string{}, Entries: st.Accepted + st.Quarantined, Accepted: st.Accepted,
			Quarantined: st.Quarantined, Pending: st.Pending}
		for _, c := range l.Heads() {
			h.Heads = append(h.Heads, c.String())
		}
	})
	h.StateHash = fmt.Sprintf("%x", hash)
	return h
}

// quarantineSize is the number of quarantined entries.
func (n *Node) quarantineSize() int {
	var q int
	n.ledger.Read(func(l *ledger.Ledger) { q = l.Stats().Quarantined })
	return q
}

// IngestLedgerBlocks stores ledger blocks obtained out of band (another
// tool, a test) exactly as if a peer had sent them.
func (n *Node) IngestLedgerBlocks(ctx context.Context, blocks [][]byte) ([]store.Result, error) {
	return n.ledger.Ingest(ctx, blocks, nil)
}

// ImportLedgerBlocks is IngestLedgerBlocks for blocks that must have the
// CIDs in want (a backup archive names each block's CID).
func (n *Node) ImportLedgerBlocks(ctx context.Context, blocks [][]byte, want []cid.Cid) ([]store.Result, error) {
	return n.ledger.Import(ctx, blocks, want)
}

// LedgerBackup opens a consistent view of every stored block, as of now,
// while ingest goes on; the caller closes it.
func (n *Node) LedgerBackup() *store.Backup { return n.ledger.Backup() }
