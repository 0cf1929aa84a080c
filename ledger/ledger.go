package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/did"
)

// Status is where an entry stands.
type Status uint8

// Statuses. An entry whose causal past is not all known yet is Pending; once
// complete it is Accepted or Quarantined. Only the discovery of an
// equivocation with a new winner can change a complete entry's status.
const (
	StatusUnknown Status = iota
	StatusPending
	StatusAccepted
	StatusQuarantined
)

func (s Status) String() string {
	return [...]string{"unknown", "pending", "accepted", "quarantined"}[s]
}

// The state is a pure function of the set S of verified entries whose causal
// past is complete in S. For each such entry E, in causal order:
//
//  1. if another entry in S has E's author and seq and a smaller CID, E is an
//     equivocation loser (quarantined; both are kept as evidence);
//  2. else if E's own chain (its prev links) runs through a loser, E is
//     quarantined: an author must build on the winning twin;
//  3. else if E breaks a rule judged on the accepted entries of its causal
//     past (chain links, currency defined, credit limit), E is quarantined;
//  4. else E is accepted.
//
// Balances sum the postings of accepted entries. An author's accepted debits
// all lie on its winning chain, which is in the causal past of its next
// entry, and credits from others only add: a balance that respects the
// credit limit over the accepted part of an entry's causal past respects it
// over every superset. So replicas agree, and no balance ever ends below
// its limit.
//
// Rule 3 looks only at the accepted part of the causal past, so an entry that
// merely references a quarantined entry (as a head it knew) stays valid
// unless it needed that entry's credits: one member's equivocation does not
// freeze the honest members who happened to see it.
//
// Add evaluates a new entry from its causal past alone, which is exact as
// long as no equivocation changes a winner; when one does, the whole state
// is recomputed in causal order (rare, and only caused by a misbehaving
// author).

// Ledger is the in-memory ledger state. It is not safe for concurrent use.
type Ledger struct {
	nodes    map[cid.Cid]*node
	pending  map[cid.Cid]*Verified
	waiting  map[cid.Cid][]cid.Cid // missing CID -> pending entries waiting for it
	authors  map[did.DID]*authorState
	authorIx []did.DID // author index -> DID, for vector clocks
	balances map[acctCur]int64
	// credits[account, currency][author index] are prefix sums, in seq
	// order, of the amounts that author's accepted entries post to the
	// account: the causal-past balance of an account is a sum of lookups.
	credits    map[acctCur]map[uint32]*prefix
	currencies map[CurrencyID]currencyState
	heads      map[cid.Cid]bool
	accepted   int
	transfers  int // accepted transfer entries
	// hash caches StateHash until the accepted set changes.
	hash      [32]byte
	hashValid bool
}

type acctCur struct {
	acct did.DID
	cur  CurrencyID
}

type node struct {
	v        *Verified
	status   Status
	reason   string
	loser    bool
	tainted  bool   // its prev chain runs through a loser
	vc       vclock // its causal past, including itself
	children []cid.Cid
}

type authorState struct {
	ix       uint32
	top      uint64               // highest seq of a complete entry
	digest   [32]byte             // XOR of sha256(CID) over its complete entries
	groups   map[uint64][]cid.Cid // seq -> complete entries with that seq
	accepted map[uint64]cid.Cid   // seq -> the accepted entry
}

type currencyState struct {
	def CurrencyDef
	seq uint64 // the issuer's seq of the defining entry
	cid cid.Cid
}

// New returns an empty ledger.
func New() *Ledger {
	return &Ledger{
		nodes:      map[cid.Cid]*node{},
		pending:    map[cid.Cid]*Verified{},
		waiting:    map[cid.Cid][]cid.Cid{},
		authors:    map[did.DID]*authorState{},
		balances:   map[acctCur]int64{},
		credits:    map[acctCur]map[uint32]*prefix{},
		currencies: map[CurrencyID]currencyState{},
		heads:      map[cid.Cid]bool{},
	}
}

// Decision is the status an entry got or changed to.
type Decision struct {
	CID    cid.Cid
	Status Status
	Reason string
}

// Outcome reports what one Add changed.
type Outcome struct {
	// Status and Reason of the added entry after the Add.
	Status Status
	Reason string
	// Duplicate is true when the entry was already known.
	Duplicate bool
	// Missing are the parents the entry waits for when Pending.
	Missing []cid.Cid
	// Decisions lists, in order, every entry whose status was decided or
	// changed: the added one, pending entries it completed, and entries
	// whose status a new equivocation winner changed.
	Decisions []Decision
}

// Add inserts a verified entry and evaluates everything it completes.
func (l *Ledger) Add(v *Verified) Outcome {
	if n, ok := l.nodes[v.CID]; ok {
		return Outcome{Status: n.status, Reason: n.reason, Duplicate: true}
	}
	if _, ok := l.pending[v.CID]; ok {
		return Outcome{Status: StatusPending, Duplicate: true, Missing: l.missingOf(v.Entry)}
	}
	if missing := l.missingOf(v.Entry); len(missing) > 0 {
		l.pending[v.CID] = v
		for _, m := range missing {
			l.waiting[m] = append(l.waiting[m], v.CID)
		}
		return Outcome{Status: StatusPending, Missing: missing}
	}
	var out Outcome
	queue := []*Verified{v}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		out.Decisions = append(out.Decisions, l.insert(cur)...)
		for _, w := range l.waiting[cur.CID] {
			pv, ok := l.pending[w]
			if !ok || len(l.missingOf(pv.Entry)) > 0 {
				continue
			}
			delete(l.pending, w)
			queue = append(queue, pv)
		}
		delete(l.waiting, cur.CID)
	}
	n := l.nodes[v.CID]
	out.Status, out.Reason = n.status, n.reason
	return out
}

func (l *Ledger) missingOf(e *Entry) []cid.Cid {
	var missing []cid.Cid
	check := func(c cid.Cid) {
		if _, ok := l.nodes[c]; !ok {
			missing = append(missing, c)
		}
	}
	if e.Prev.Defined() {
		check(e.Prev)
	}
	for _, p := range e.Parents {
		check(p)
	}
	return missing
}

func (l *Ledger) author(d did.DID) *authorState {
	a, ok := l.authors[d]
	if !ok {
		a = &authorState{ix: uint32(len(l.authorIx)), groups: map[uint64][]cid.Cid{}, accepted: map[uint64]cid.Cid{}}
		l.authors[d] = a
		l.authorIx = append(l.authorIx, d)
	}
	return a
}

func cidLess(a, b cid.Cid) bool { return bytes.Compare(a.Bytes(), b.Bytes()) < 0 }

// insert places one entry whose causal past is complete.
func (l *Ledger) insert(v *Verified) []Decision {
	e := v.Entry
	a := l.author(e.Author)
	n := &node{v: v}
	l.nodes[v.CID] = n
	for _, p := range parentsOf(e) {
		pn := l.nodes[p]
		pn.children = append(pn.children, v.CID)
	}
	group := a.groups[e.Seq]
	a.groups[e.Seq] = append(group, v.CID)
	a.top = max(a.top, e.Seq)
	h := sha256.Sum256(v.CID.Bytes())
	for i := range a.digest {
		a.digest[i] ^= h[i]
	}
	if len(group) > 0 && !cidLess(v.CID, minCID(group)) {
		l.evaluate(a, n, true)
		return []Decision{{v.CID, n.status, n.reason}}
	}
	if len(group) > 0 {
		// A new winner: statuses anywhere may change. Recompute.
		return l.recompute()
	}
	l.evaluate(a, n, false)
	return []Decision{{v.CID, n.status, n.reason}}
}

func minCID(cs []cid.Cid) cid.Cid {
	m := cs[0]
	for _, c := range cs[1:] {
		if cidLess(c, m) {
			m = c
		}
	}
	return m
}

// recompute re-derives every status and index from the complete entries,
// in a deterministic causal order, and reports the statuses that changed.
func (l *Ledger) recompute() []Decision {
	before := make(map[cid.Cid]Status, len(l.nodes))
	for c, n := range l.nodes {
		before[c] = n.status
	}
	l.balances = map[acctCur]int64{}
	l.credits = map[acctCur]map[uint32]*prefix{}
	l.currencies = map[CurrencyID]currencyState{}
	l.heads = map[cid.Cid]bool{}
	l.accepted, l.transfers = 0, 0
	l.hashValid = false
	for _, a := range l.authors {
		a.accepted = map[uint64]cid.Cid{}
	}
	// Kahn's algorithm, smallest CID first among the ready ones.
	indeg := make(map[cid.Cid]int, len(l.nodes))
	var ready []cid.Cid
	for c, n := range l.nodes {
		indeg[c] = len(parentsOf(n.v.Entry))
		if indeg[c] == 0 {
			ready = append(ready, c)
		}
	}
	var decisions []Decision
	for len(ready) > 0 {
		SortCIDs(ready)
		c := ready[0]
		ready = ready[1:]
		n := l.nodes[c]
		e := n.v.Entry
		a := l.authors[e.Author]
		n.status, n.reason, n.loser, n.tainted, n.vc = StatusUnknown, "", false, false, nil
		l.evaluate(a, n, !minCID(a.groups[e.Seq]).Equals(c))
		if n.status != before[c] {
			decisions = append(decisions, Decision{c, n.status, n.reason})
		}
		for _, ch := range n.children {
			indeg[ch]--
			if indeg[ch] == 0 {
				ready = append(ready, ch)
			}
		}
	}
	return decisions
}

func parentsOf(e *Entry) []cid.Cid {
	if !e.Prev.Defined() {
		return e.Parents
	}
	return append([]cid.Cid{e.Prev}, e.Parents...)
}

// evaluate applies the rules to an entry whose causal past is evaluated,
// sets its status and vector clock, and accepts it when it passes.
func (l *Ledger) evaluate(a *authorState, n *node, loser bool) {
	e := n.v.Entry
	var vc vclock
	for _, p := range parentsOf(e) {
		vc = vc.merge(l.nodes[p].vc)
	}
	raw, eff := vc.get(a.ix)
	var prev *node
	if e.Prev.Defined() {
		prev = l.nodes[e.Prev]
		n.tainted = prev.loser || prev.tainted
	}
	n.loser = loser
	if loser || n.tainted {
		// Not on the winning chain: the author's effective seq stays put.
		n.vc = vc.with(a.ix, e.Seq, eff)
	} else {
		n.vc = vc.with(a.ix, e.Seq, e.Seq)
	}
	n.status, n.reason = l.judge(n, vc, raw, prev)
	if n.status == StatusAccepted {
		l.accept(a, n)
	}
}

// judge returns the status of an entry given the merged clock of its parents.
func (l *Ledger) judge(n *node, vc vclock, raw uint64, prev *node) (Status, string) {
	e := n.v.Entry
	switch {
	case n.loser:
		return StatusQuarantined, fmt.Sprintf("equivocation: %s signed another seq %d with a smaller CID, which wins", e.Author, e.Seq)
	case n.tainted:
		return StatusQuarantined, fmt.Sprintf("built on a losing equivocation of %s", e.Author)
	case prev != nil && (prev.v.Entry.Author != e.Author || prev.v.Entry.Seq != e.Seq-1):
		return StatusQuarantined, fmt.Sprintf("prev %s is not seq %d of the author", e.Prev, e.Seq-1)
	case raw != e.Seq-1:
		return StatusQuarantined, fmt.Sprintf("its causal past already holds seq %d of the author", raw)
	}
	switch e.Kind {
	case KindCurrency:
		id := CurrencyID{Symbol: e.Currency.Symbol, Issuer: e.Author}
		if _, ok := l.currencies[id]; ok {
			return StatusQuarantined, fmt.Sprintf("currency %s is already defined", id.Symbol)
		}
	case KindTransfer:
		net := map[CurrencyID]int64{}
		for _, p := range e.Postings {
			cs, ok := l.currencies[p.Currency]
			if ok {
				_, eff := vc.get(l.authors[p.Currency.Issuer].ix)
				ok = eff >= cs.seq
			}
			if !ok {
				return StatusQuarantined, fmt.Sprintf("currency %s is not defined in the entry's causal past", p.Currency)
			}
			if p.Account == e.Author {
				net[p.Currency] += p.Amount
			}
		}
		for cur, delta := range net {
			if delta >= 0 {
				continue
			}
			def := l.currencies[cur].def
			bal := l.balanceIn(vc, acctCur{e.Author, cur})
			after, ok := addInt64(bal, delta)
			if !ok || after < -def.CreditLimit {
				f := func(u int64) string { return FormatAmount(u, def.Decimals) }
				return StatusQuarantined, fmt.Sprintf("over the credit limit: %s would go from %s to %s %s, below the limit of -%s",
					e.Author, f(bal), f(after), cur.Symbol, f(def.CreditLimit))
			}
		}
	}
	return StatusAccepted, ""
}

// balanceIn is an account's balance over the accepted entries of a causal
// past given by its vector clock.
func (l *Ledger) balanceIn(vc vclock, k acctCur) int64 {
	var sum int64
	for ix, p := range l.credits[k] {
		_, eff := vc.get(ix)
		sum += p.upTo(eff)
	}
	return sum
}

func (l *Ledger) accept(a *authorState, n *node) {
	l.hashValid = false
	e := n.v.Entry
	a.accepted[e.Seq] = n.v.CID
	l.accepted++
	for _, p := range parentsOf(e) {
		delete(l.heads, p)
	}
	l.heads[n.v.CID] = true
	switch e.Kind {
	case KindCurrency:
		id := CurrencyID{Symbol: e.Currency.Symbol, Issuer: e.Author}
		l.currencies[id] = currencyState{def: *e.Currency, seq: e.Seq, cid: n.v.CID}
	case KindTransfer:
		l.transfers++
		for _, p := range e.Postings {
			k := acctCur{p.Account, p.Currency}
			l.balances[k] += p.Amount
			byAuthor := l.credits[k]
			if byAuthor == nil {
				byAuthor = map[uint32]*prefix{}
				l.credits[k] = byAuthor
			}
			pf := byAuthor[a.ix]
			if pf == nil {
				pf = &prefix{}
				byAuthor[a.ix] = pf
			}
			pf.add(e.Seq, p.Amount)
		}
	}
}

// Status returns an entry's status and, when quarantined, why.
func (l *Ledger) Status(c cid.Cid) (Status, string) {
	if n, ok := l.nodes[c]; ok {
		return n.status, n.reason
	}
	if _, ok := l.pending[c]; ok {
		return StatusPending, ""
	}
	return StatusUnknown, ""
}

// Get returns a known entry (complete or pending).
func (l *Ledger) Get(c cid.Cid) (*Verified, bool) {
	if n, ok := l.nodes[c]; ok {
		return n.v, true
	}
	v, ok := l.pending[c]
	return v, ok
}

// Balance is an account's balance in a currency, in the smallest unit.
func (l *Ledger) Balance(account did.DID, cur CurrencyID) int64 {
	return l.balances[acctCur{account, cur}]
}

// AccountBalance is one (account, currency) balance.
type AccountBalance struct {
	Account  did.DID
	Currency CurrencyID
	Units    int64
}

// Balances lists every non-zero balance, sorted by currency then account.
func (l *Ledger) Balances() []AccountBalance {
	out := make([]AccountBalance, 0, len(l.balances))
	for k, v := range l.balances {
		if v != 0 {
			out = append(out, AccountBalance{k.acct, k.cur, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Currency.String() != b.Currency.String() {
			return a.Currency.String() < b.Currency.String()
		}
		return a.Account.String() < b.Account.String()
	})
	return out
}

// Currency is a defined currency.
type Currency struct {
	ID  CurrencyID
	Def CurrencyDef
	CID cid.Cid
}

// Currencies lists the accepted currencies sorted by symbol then issuer.
func (l *Ledger) Currencies() []Currency {
	out := make([]Currency, 0, len(l.currencies))
	for id, cs := range l.currencies {
		out = append(out, Currency{id, cs.def, cs.cid})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out
}

// LookupCurrency returns the currency with id.
func (l *Ledger) LookupCurrency(id CurrencyID) (Currency, bool) {
	cs, ok := l.currencies[id]
	return Currency{id, cs.def, cs.cid}, ok
}

// Heads are the accepted entries with no accepted child, sorted.
func (l *Ledger) Heads() []cid.Cid {
	out := make([]cid.Cid, 0, len(l.heads))
	for c := range l.heads {
		out = append(out, c)
	}
	SortCIDs(out)
	return out
}

// Counts reports how many entries are accepted, quarantined and pending.
func (l *Ledger) Counts() (accepted, quarantined, pending int) {
	return l.accepted, len(l.nodes) - l.accepted, len(l.pending)
}

// StateHash is equal on two ledgers exactly when they accepted the same
// entries (and so hold the same balances): sha256 over the sorted CIDs of
// the accepted entries.
func (l *Ledger) StateHash() [32]byte {
	if l.hashValid {
		return l.hash
	}
	cs := make([]cid.Cid, 0, l.accepted)
	for c, n := range l.nodes {
		if n.status == StatusAccepted {
			cs = append(cs, c)
		}
	}
	SortCIDs(cs)
	h := sha256.New()
	for _, c := range cs {
		h.Write(c.Bytes())
	}
	h.Sum(l.hash[:0])
	l.hashValid = true
	return l.hash
}

// Quarantined is one quarantined entry.
type Quarantined struct {
	CID    cid.Cid
	Author did.DID
	Seq    uint64
	Reason string
}

// Quarantine lists the quarantined entries sorted by author then seq.
func (l *Ledger) Quarantine() []Quarantined {
	var out []Quarantined
	for c, n := range l.nodes {
		if n.status == StatusQuarantined {
			out = append(out, Quarantined{c, n.v.Entry.Author, n.v.Entry.Seq, n.reason})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Author != out[j].Author {
			return out[i].Author.String() < out[j].Author.String()
		}
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return cidLess(out[i].CID, out[j].CID)
	})
	return out
}

// Missing lists the CIDs pending entries wait for, sorted.
func (l *Ledger) Missing() []cid.Cid {
	out := make([]cid.Cid, 0, len(l.waiting))
	for c := range l.waiting {
		if _, ok := l.pending[c]; !ok {
			out = append(out, c)
		}
	}
	SortCIDs(out)
	return out
}

// Vector is, per author, the highest seq of a complete entry: what sync
// compares to find what a peer lacks.
func (l *Ledger) Vector() map[did.DID]uint64 {
	out := make(map[did.DID]uint64, len(l.authors))
	for d, a := range l.authors {
		out[d] = a.top
	}
	return out
}

// AuthorEntries returns the complete entries of an author with seq above
// after, in seq order (equivocating entries side by side).
func (l *Ledger) AuthorEntries(author did.DID, after uint64) []*Verified {
	a, ok := l.authors[author]
	if !ok {
		return nil
	}
	var seqs []uint64
	for s := range a.groups {
		if s > after {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	var out []*Verified
	for _, s := range seqs {
		g := slices.Clone(a.groups[s])
		SortCIDs(g)
		for _, c := range g {
			out = append(out, l.nodes[c].v)
		}
	}
	return out
}

// LastAccepted returns the author's highest accepted seq and its CID.
func (l *Ledger) LastAccepted(author did.DID) (uint64, cid.Cid) {
	a, ok := l.authors[author]
	if !ok {
		return 0, cid.Undef
	}
	var best uint64
	for s := range a.accepted {
		if s > best {
			best = s
		}
	}
	if best == 0 {
		return 0, cid.Undef
	}
	return best, a.accepted[best]
}

// ErrEquivocation means the author already has a complete entry with that seq.
var ErrEquivocation = errors.New("the author already signed an entry with this seq")

// ErrIncomplete means an entry's parents are not all known.
var ErrIncomplete = errors.New("the entry's parents are not all known")

// Check evaluates an entry as Add would, without changing the ledger: it is
// how a node refuses to sign and publish its own entry that would be
// quarantined (over the limit, unknown currency). The entry must be complete
// and must not equivocate.
func (l *Ledger) Check(v *Verified) (Status, string, error) {
	e := v.Entry
	if len(l.missingOf(e)) > 0 {
		return StatusUnknown, "", ErrIncomplete
	}
	if a, ok := l.authors[e.Author]; ok && len(a.groups[e.Seq]) > 0 {
		return StatusUnknown, "", ErrEquivocation
	}
	a, ok := l.authors[e.Author]
	if !ok {
		a = &authorState{ix: uint32(len(l.authorIx))} // not registered: Check mutates nothing
	}
	n := &node{v: v}
	var vc vclock
	for _, p := range parentsOf(e) {
		vc = vc.merge(l.nodes[p].vc)
	}
	raw, _ := vc.get(a.ix)
	var prev *node
	if e.Prev.Defined() {
		prev = l.nodes[e.Prev]
		n.tainted = prev.loser || prev.tainted
	}
	st, reason := l.judge(n, vc, raw, prev)
	return st, reason, nil
}

// Next returns what an author's next entry must carry: its seq, its prev
// (the winning entry at seq-1) and, as parents, the current heads (at most
// MaxParents of them, prev excluded).
func (l *Ledger) Next(author did.DID) (seq uint64, prev cid.Cid, parents []cid.Cid) {
	if a, ok := l.authors[author]; ok && a.top > 0 {
		seq, prev = a.top, minCID(a.groups[a.top])
	}
	for _, h := range l.Heads() {
		if len(parents) == MaxParents {
			break
		}
		if !h.Equals(prev) {
			parents = append(parents, h)
		}
	}
	return seq + 1, prev, parents
}

// Stats summarises the ledger for metrics and `ledger head`.
type Stats struct {
	Accepted, Quarantined, Pending int
	// Transfers is the number of accepted transfer entries.
	Transfers int
	// Accounts is the number of accounts with a non-zero balance.
	Accounts   int
	Currencies int
}

// Stats returns the current counts.
func (l *Ledger) Stats() Stats {
	st := Stats{Accepted: l.accepted, Quarantined: len(l.nodes) - l.accepted, Pending: len(l.pending), Currencies: len(l.currencies)}
	accts := map[did.DID]bool{}
	for k, v := range l.balances {
		if v != 0 {
			accts[k.acct] = true
		}
	}
	st.Accounts = len(accts)
	st.Transfers = l.transfers
	return st
}

// Record is a complete entry with its status.
type Record struct {
	*Verified
	Status Status
	Reason string
}

// History lists the complete entries written by account or posting to it,
// ordered by author timestamp, then author, then seq.
func (l *Ledger) History(account did.DID) []Record {
	var out []Record
	for _, n := range l.nodes {
		e := n.v.Entry
		match := e.Author == account
		for _, p := range e.Postings {
			match = match || p.Account == account
		}
		if match {
			out = append(out, Record{n.v, n.status, n.reason})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Entry, out[j].Entry
		if a.Timestamp != b.Timestamp {
			return a.Timestamp < b.Timestamp
		}
		if a.Author != b.Author {
			return a.Author.String() < b.Author.String()
		}
		return a.Seq < b.Seq
	})
	return out
}

// AuthorSummary is what one ledger holds of one author: the highest seq of a
// complete entry and a digest of the set of those entries. Two ledgers with
// equal summaries for an author hold the same entries of that author; equal
// tops with different digests reveal an equivocation one side lacks.
type AuthorSummary struct {
	Top    uint64
	Digest [32]byte
}

// Summary returns the summary of every author.
func (l *Ledger) Summary() map[did.DID]AuthorSummary {
	out := make(map[did.DID]AuthorSummary, len(l.authors))
	for d, a := range l.authors {
		out[d] = AuthorSummary{a.top, a.digest}
	}
	return out
}

// MissingFrom returns the blocks a ledger with the given summary lacks,
// author by author in seq order, at most limit of them (0 means no limit).
// An author whose digest differs at an equal or higher top is sent whole, so
// equivocations spread. It needs the blocks in memory: a store that keeps
// them on disk uses MissingCIDs and reads them itself.
func (l *Ledger) MissingFrom(remote map[did.DID]AuthorSummary, limit int) [][]byte {
	cids := l.MissingCIDs(remote, limit)
	out := make([][]byte, 0, len(cids))
	for _, c := range cids {
		out = append(out, l.nodes[c].v.Block)
	}
	return out
}

// MissingCIDs is MissingFrom's list of CIDs.
func (l *Ledger) MissingCIDs(remote map[did.DID]AuthorSummary, limit int) []cid.Cid {
	authors := make([]did.DID, 0, len(l.authors))
	for d := range l.authors {
		authors = append(authors, d)
	}
	sort.Slice(authors, func(i, j int) bool { return authors[i].String() < authors[j].String() })
	var out []cid.Cid
	for _, d := range authors {
		mine := l.authors[d]
		theirs, known := remote[d]
		after := uint64(0)
		switch {
		case !known:
		case theirs.Top == mine.top && theirs.Digest == mine.digest:
			continue
		case theirs.Top < mine.top && l.prefixDigest(mine, theirs.Top) == theirs.Digest:
			after = theirs.Top // same prefix: only the tail is missing
		}
		for _, v := range l.AuthorEntries(d, after) {
			if limit > 0 && len(out) == limit {
				return out
			}
			out = append(out, v.CID)
		}
	}
	return out
}

// prefixDigest is the digest of an author's complete entries with seq <= top.
func (l *Ledger) prefixDigest(a *authorState, top uint64) [32]byte {
	var d [32]byte
	for seq, g := range a.groups {
		if seq > top {
			continue
		}
		for _, c := range g {
			h := sha256.Sum256(c.Bytes())
			for i := range d {
				d[i] ^= h[i]
			}
		}
	}
	return d
}
