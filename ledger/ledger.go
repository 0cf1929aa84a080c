package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

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
//
// Memory. A complete entry is kept as a fixed-size record (its digest,
// author, seq and status, and offsets into shared pools of parent indexes and
// postings), not as a decoded Entry: the block itself stays with whoever
// stores it. DIDs and currencies are interned. Vector clocks are stored as
// differences from one parent's clock (see vclock.go).

// Ledger is the in-memory ledger state. It is not safe for concurrent use.
type Ledger struct {
	recs    []rec
	byKey   keyIndex
	parents []uint32 // pool: every record's parents other than prev
	posts   []post   // pool: every record's postings
	defs    map[uint32]CurrencyDef
	reasons map[uint32]string // quarantined record -> why
	clocks  clocks

	pending map[key]*Verified
	waiting map[key][]key // missing -> pending entries waiting for it

	ids   []did.DID // interned authors and accounts
	idIx  map[did.DID]uint32
	curs  []CurrencyID // interned currency names
	curIx map[CurrencyID]uint32

	authors  map[uint32]*authorState
	balances map[acctCur]int64
	// credits[account, currency][author] are prefix sums, in seq order, of
	// the amounts that author's accepted entries post to the account: the
	// causal-past balance of an account is a sum of lookups.
	credits    map[acctCur]map[uint32]*prefix
	currencies map[uint32]currencyState
	heads      map[uint32]struct{}
	accepted   int
	transfers  int // accepted transfer entries
	// hash caches StateHash until the accepted set changes; hashGen counts
	// those changes (see StateHashJob).
	hash      [32]byte
	hashValid bool
	hashGen   uint64
}

// noIx marks an absent record, DID or currency index.
const noIx = ^uint32(0)

// rec is one complete entry.
type rec struct {
	key    key
	seq    uint64
	author uint32
	prev   uint32 // record index, or noIx for seq 1
	par    uint32 // offset of its parents in Ledger.parents
	post   uint32 // offset of its postings in Ledger.posts
	clock  clockRef
	npar   uint8
	npost  uint8
	kind   Kind
	status Status
	flags  uint8
}

const (
	flagLoser   = 1 << iota // a twin (same author and seq) has a smaller CID
	flagTainted             // its prev chain runs through a loser
)

// post is a posting with interned account and currency.
type post struct {
	acct, cur uint32
	amount    int64
}

type acctCur struct{ acct, cur uint32 }

type authorState struct {
	top    uint64   // highest seq of a complete entry
	digest [32]byte // XOR of sha256(CID) over its complete entries
	// chain[s-1] is the complete entry with seq s and the smallest CID
	// (noIx if none); far holds the same for seqs far beyond the chain,
	// which only entries with a broken prev link can have.
	chain []uint32
	far   map[uint64]uint32
	twins map[uint64][]uint32 // seq -> the other complete entries with it
}

// farGap is how far past its chain an author's seq may jump and still be
// kept in the chain slice.
const farGap = 1024

// first returns the complete entry with seq s and the smallest CID.
func (a *authorState) first(s uint64) (uint32, bool) {
	if s >= 1 && s <= uint64(len(a.chain)) {
		i := a.chain[s-1]
		return i, i != noIx
	}
	i, ok := a.far[s]
	return i, ok
}

func (a *authorState) setFirst(s uint64, i uint32) {
	if s >= 1 && s <= uint64(len(a.chain))+farGap {
		for uint64(len(a.chain)) < s {
			a.chain = append(a.chain, noIx)
		}
		a.chain[s-1] = i
		return
	}
	if a.far == nil {
		a.far = map[uint64]uint32{}
	}
	a.far[s] = i
}

// seqs lists the seqs of its complete entries above after, ascending.
func (a *authorState) seqs(after uint64) []uint64 {
	var out []uint64
	for j, i := range a.chain {
		if s := uint64(j) + 1; s > after && i != noIx {
			out = append(out, s)
		}
	}
	var far []uint64
	for s := range a.far {
		if s > after {
			far = append(far, s)
		}
	}
	slices.Sort(far)
	return append(out, far...)
}

// group returns the complete entries with seq s, the smallest CID first.
func (a *authorState) group(s uint64) []uint32 {
	first, ok := a.first(s)
	if !ok {
		return nil
	}
	return append([]uint32{first}, a.twins[s]...)
}

type currencyState struct {
	def   CurrencyDef
	seq   uint64 // the issuer's seq of the defining entry
	entry uint32
}

// New returns an empty ledger.
func New() *Ledger {
	return &Ledger{
		byKey:      newKeyIndex(),
		defs:       map[uint32]CurrencyDef{},
		reasons:    map[uint32]string{},
		clocks:     newClocks(clockCacheBudget, maxClockDepth),
		pending:    map[key]*Verified{},
		waiting:    map[key][]key{},
		idIx:       map[did.DID]uint32{},
		curIx:      map[CurrencyID]uint32{},
		authors:    map[uint32]*authorState{},
		balances:   map[acctCur]int64{},
		credits:    map[acctCur]map[uint32]*prefix{},
		currencies: map[uint32]currencyState{},
		heads:      map[uint32]struct{}{},
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

// Add inserts a verified entry and evaluates everything it completes. The
// ledger keeps what it needs of v, not v itself.
func (l *Ledger) Add(v *Verified) Outcome {
	k, _ := keyOf(v.CID)
	if i, ok := l.byKey.find(l.recs, &k); ok {
		return Outcome{Status: l.recs[i].status, Reason: l.reasons[i], Duplicate: true}
	}
	if _, ok := l.pending[k]; ok {
		return Outcome{Status: StatusPending, Duplicate: true, Missing: l.missingOf(v.Entry)}
	}
	if missing := l.missingOf(v.Entry); len(missing) > 0 {
		l.pending[k] = v
		for _, m := range missing {
			mk, _ := keyOf(m)
			l.waiting[mk] = append(l.waiting[mk], k)
		}
		return Outcome{Status: StatusPending, Missing: missing}
	}
	var out Outcome
	queue := []*Verified{v}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		ck, _ := keyOf(cur.CID)
		out.Decisions = append(out.Decisions, l.insert(ck, cur)...)
		for _, w := range l.waiting[ck] {
			pv, ok := l.pending[w]
			if !ok || len(l.missingOf(pv.Entry)) > 0 {
				continue
			}
			delete(l.pending, w)
			queue = append(queue, pv)
		}
		delete(l.waiting, ck)
	}
	i, _ := l.byKey.find(l.recs, &k)
	out.Status, out.Reason = l.recs[i].status, l.reasons[i]
	return out
}

// missingOf lists the parents of e that are not complete entries. A parent
// that is not a CIDv1/cbor/sha2-256 can never be one, and stays missing.
func (l *Ledger) missingOf(e *Entry) []cid.Cid {
	var missing []cid.Cid
	check := func(c cid.Cid) {
		if _, ok := l.index(c); !ok {
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

// index returns the record index of a complete entry.
func (l *Ledger) index(c cid.Cid) (uint32, bool) {
	k, ok := keyOf(c)
	if !ok {
		return noIx, false
	}
	return l.byKey.find(l.recs, &k)
}

func (l *Ledger) intern(d did.DID) uint32 {
	if i, ok := l.idIx[d]; ok {
		return i
	}
	i := uint32(len(l.ids))
	l.ids = append(l.ids, d)
	l.idIx[d] = i
	return i
}

func (l *Ledger) internCur(c CurrencyID) uint32 {
	if i, ok := l.curIx[c]; ok {
		return i
	}
	l.intern(c.Issuer) // a snapshot names the issuer by its index
	i := uint32(len(l.curs))
	l.curs = append(l.curs, c)
	l.curIx[c] = i
	return i
}

func (l *Ledger) author(ix uint32) *authorState {
	a, ok := l.authors[ix]
	if !ok {
		a = &authorState{}
		l.authors[ix] = a
	}
	return a
}

// parentsOf returns a record's prev (if any) followed by its other parents.
func (l *Ledger) parentsOf(r *rec) []uint32 {
	ps := l.parents[r.par : r.par+uint32(r.npar)]
	if r.prev == noIx {
		return ps
	}
	return append([]uint32{r.prev}, ps...)
}

func (l *Ledger) postsOf(r *rec) []post { return l.posts[r.post : r.post+uint32(r.npost)] }

// insert places one entry whose causal past is complete.
func (l *Ledger) insert(k key, v *Verified) []Decision {
	e := v.Entry
	i := uint32(len(l.recs))
	r := rec{key: k, seq: e.Seq, author: l.intern(e.Author), prev: noIx, par: uint32(len(l.parents)),
		post: uint32(len(l.posts)), npar: uint8(len(e.Parents)), npost: uint8(len(e.Postings)), kind: e.Kind}
	if e.Prev.Defined() {
		r.prev, _ = l.index(e.Prev)
	}
	for _, p := range e.Parents {
		pi, _ := l.index(p)
		l.parents = append(l.parents, pi)
	}
	for _, p := range e.Postings {
		l.posts = append(l.posts, post{l.intern(p.Account), l.internCur(p.Currency), p.Amount})
	}
	if e.Currency != nil {
		l.defs[i] = *e.Currency
	}
	l.recs = append(l.recs, r)
	l.byKey.add(l.recs, &k, i)

	a := l.author(r.author)
	first, twin := a.first(e.Seq)
	a.top = max(a.top, e.Seq)
	h := sha256.Sum256(v.CID.Bytes())
	for j := range a.digest {
		a.digest[j] ^= h[j]
	}
	switch {
	case !twin:
		a.setFirst(e.Seq, i)
		l.evaluate(i, false)
	case bytes.Compare(k[:], l.recs[first].key[:]) > 0:
		l.addTwin(a, e.Seq, i)
		l.evaluate(i, true)
	default:
		// A new winner: statuses anywhere may change. Recompute.
		a.setFirst(e.Seq, i)
		l.addTwin(a, e.Seq, first)
		return l.recompute()
	}
	return []Decision{{v.CID, l.recs[i].status, l.reasons[i]}}
}

func (l *Ledger) addTwin(a *authorState, seq uint64, i uint32) {
	if a.twins == nil {
		a.twins = map[uint64][]uint32{}
	}
	a.twins[seq] = append(a.twins[seq], i)
}

// recompute re-derives every status and index from the complete entries,
// in a deterministic causal order, and reports the statuses that changed.
func (l *Ledger) recompute() []Decision {
	n := len(l.recs)
	before := make([]Status, n)
	for i := range l.recs {
		before[i] = l.recs[i].status
		l.recs[i].status, l.recs[i].flags = StatusUnknown, 0
	}
	l.reasons = map[uint32]string{}
	l.balances = map[acctCur]int64{}
	l.credits = map[acctCur]map[uint32]*prefix{}
	l.currencies = map[uint32]currencyState{}
	l.heads = map[uint32]struct{}{}
	l.accepted, l.transfers = 0, 0
	l.hashValid = false
	l.hashGen++
	l.clocks = newClocks(l.clocks.budget, l.clocks.maxDepth)
	// Children in one flat array (CSR), and Kahn's algorithm, smallest CID
	// first among the ready ones.
	indeg := make([]int32, n)
	start := make([]uint32, n+1)
	for i := range l.recs {
		for _, p := range l.parentsOf(&l.recs[i]) {
			start[p+1]++
		}
		indeg[i] = int32(len(l.parentsOf(&l.recs[i])))
	}
	for i := 1; i <= n; i++ {
		start[i] += start[i-1]
	}
	children := make([]uint32, start[n])
	fill := slices.Clone(start[:n])
	for i := range l.recs {
		for _, p := range l.parentsOf(&l.recs[i]) {
			children[fill[p]] = uint32(i)
			fill[p]++
		}
	}
	ready := &keyHeap{l: l}
	for i := range indeg {
		if indeg[i] == 0 {
			ready.push(uint32(i))
		}
	}
	var decisions []Decision
	for ready.len() > 0 {
		i := ready.pop()
		r := &l.recs[i]
		first, _ := l.authors[r.author].first(r.seq)
		l.evaluate(i, first != i)
		if r.status != before[i] {
			decisions = append(decisions, Decision{r.key.cid(), r.status, l.reasons[i]})
		}
		for _, ch := range children[start[i]:start[i+1]] {
			indeg[ch]--
			if indeg[ch] == 0 {
				ready.push(ch)
			}
		}
	}
	return decisions
}

// keyHeap is a min-heap of record indexes by CID.
type keyHeap struct {
	l  *Ledger
	xs []uint32
}

func (h *keyHeap) len() int { return len(h.xs) }

func (h *keyHeap) less(a, b int) bool {
	ka, kb := &h.l.recs[h.xs[a]].key, &h.l.recs[h.xs[b]].key
	return bytes.Compare(ka[:], kb[:]) < 0
}

func (h *keyHeap) push(x uint32) {
	h.xs = append(h.xs, x)
	for j := len(h.xs) - 1; j > 0; {
		p := (j - 1) / 2
		if !h.less(j, p) {
			break
		}
		h.xs[j], h.xs[p] = h.xs[p], h.xs[j]
		j = p
	}
}

func (h *keyHeap) pop() uint32 {
	top := h.xs[0]
	last := len(h.xs) - 1
	h.xs[0] = h.xs[last]
	h.xs = h.xs[:last]
	for j := 0; ; {
		c := 2*j + 1
		if c >= last {
			break
		}
		if c+1 < last && h.less(c+1, c) {
			c++
		}
		if !h.less(c, j) {
			break
		}
		h.xs[j], h.xs[c] = h.xs[c], h.xs[j]
		j = c
	}
	return top
}

// candidate is an entry being judged, with interned names: a complete
// record, or (for Check) an entry not in the ledger, whose unknown DIDs and
// currencies get indexes no record uses.
type candidate struct {
	who     did.DID // the author
	author  uint32
	seq     uint64
	prev    uint32
	kind    Kind
	def     *CurrencyDef
	posts   []post
	loser   bool
	tainted bool
}

// causalPast merges the clocks of parents.
func (l *Ledger) causalPast(parents []uint32) vclock {
	var vc vclock
	for _, p := range parents {
		vc = vc.merge(l.clocks.get(l, p))
	}
	return vc
}

// evaluate applies the rules to a record whose causal past is evaluated,
// sets its status and clock, and accepts it when it passes.
func (l *Ledger) evaluate(i uint32, loser bool) {
	r := &l.recs[i]
	parents := l.parentsOf(r)
	vc := l.causalPast(parents)
	raw, eff := vc.get(r.author)
	c := candidate{who: l.ids[r.author], author: r.author, seq: r.seq, prev: r.prev, kind: r.kind, posts: l.postsOf(r), loser: loser}
	if def, ok := l.defs[i]; ok {
		c.def = &def
	}
	if r.prev != noIx {
		c.tainted = l.recs[r.prev].flags&(flagLoser|flagTainted) != 0
	}
	if loser {
		r.flags |= flagLoser
	}
	if c.tainted {
		r.flags |= flagTainted
	}
	own := r.seq // not on the winning chain: the author's effective seq stays put
	if loser || c.tainted {
		own = eff
	}
	l.clocks.put(l, i, vc.with(r.author, r.seq, own), parents)
	var reason string
	r.status, reason = l.judge(&c, vc, raw)
	if r.status == StatusAccepted {
		l.accept(i)
	} else if reason != "" {
		l.reasons[i] = reason
	}
}

// judge returns the status of an entry given the merged clock of its parents.
func (l *Ledger) judge(c *candidate, vc vclock, raw uint64) (Status, string) {
	switch {
	case c.loser:
		return StatusQuarantined, fmt.Sprintf("equivocation: %s signed another seq %d with a smaller CID, which wins", c.who, c.seq)
	case c.tainted:
		return StatusQuarantined, fmt.Sprintf("built on a losing equivocation of %s", c.who)
	case c.prev != noIx && (l.recs[c.prev].author != c.author || l.recs[c.prev].seq != c.seq-1):
		return StatusQuarantined, fmt.Sprintf("prev %s is not seq %d of the author", l.recs[c.prev].key.cid(), c.seq-1)
	case raw != c.seq-1:
		return StatusQuarantined, fmt.Sprintf("its causal past already holds seq %d of the author", raw)
	}
	switch c.kind {
	case KindCurrency:
		if cur, ok := l.curIx[CurrencyID{Symbol: c.def.Symbol, Issuer: c.who}]; ok {
			if _, ok := l.currencies[cur]; ok {
				return StatusQuarantined, fmt.Sprintf("currency %s is already defined", c.def.Symbol)
			}
		}
	case KindTransfer:
		var net []post // the author's own postings, merged per currency
		for _, p := range c.posts {
			cs, ok := l.currencies[p.cur]
			if ok {
				_, eff := vc.get(l.recs[cs.entry].author)
				ok = eff >= cs.seq
			}
			if !ok {
				return StatusQuarantined, fmt.Sprintf("currency %s is not defined in the entry's causal past", l.curName(p.cur))
			}
			if p.acct == c.author {
				net = append(net, p) // static rules allow one posting per (account, currency)
			}
		}
		for _, p := range net {
			if p.amount >= 0 {
				continue
			}
			def := l.currencies[p.cur].def
			bal := l.balanceIn(vc, acctCur{c.author, p.cur})
			after, ok := addInt64(bal, p.amount)
			if !ok || after < -def.CreditLimit {
				f := func(u int64) string { return FormatAmount(u, def.Decimals) }
				return StatusQuarantined, fmt.Sprintf(ReasonOverCreditLimit+": %s would go from %s to %s %s, below the limit of -%s",
					c.who, f(bal), f(after), def.DisplaySymbol(), f(def.CreditLimit))
			}
		}
	}
	return StatusAccepted, ""
}

// ReasonOverCreditLimit starts the reason of an entry that would take its
// author below a currency's credit limit.
const ReasonOverCreditLimit = "over the credit limit"

// OverCreditLimit reports whether a quarantine reason is the credit limit.
func OverCreditLimit(reason string) bool { return strings.HasPrefix(reason, ReasonOverCreditLimit) }

func (l *Ledger) curName(cur uint32) string {
	if int(cur) < len(l.curs) {
		return l.curs[cur].String()
	}
	return "(unknown)"
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

func (l *Ledger) accept(i uint32) {
	l.hashValid = false
	l.hashGen++
	r := &l.recs[i]
	l.accepted++
	for _, p := range l.parentsOf(r) {
		delete(l.heads, p)
	}
	l.heads[i] = struct{}{}
	switch r.kind {
	case KindCurrency:
		def := l.defs[i]
		cur := l.internCur(CurrencyID{Symbol: def.Symbol, Issuer: l.ids[r.author]})
		l.currencies[cur] = currencyState{def: def, seq: r.seq, entry: i}
	case KindTransfer:
		l.transfers++
		for _, p := range l.postsOf(r) {
			k := acctCur{p.acct, p.cur}
			l.balances[k] += p.amount
			byAuthor := l.credits[k]
			if byAuthor == nil {
				byAuthor = map[uint32]*prefix{}
				l.credits[k] = byAuthor
			}
			pf := byAuthor[r.author]
			if pf == nil {
				pf = &prefix{}
				byAuthor[r.author] = pf
			}
			pf.add(r.seq, p.amount)
		}
	}
}

// Status returns an entry's status and, when quarantined, why.
func (l *Ledger) Status(c cid.Cid) (Status, string) {
	if i, ok := l.index(c); ok {
		return l.recs[i].status, l.reasons[i]
	}
	if k, ok := keyOf(c); ok {
		if _, ok := l.pending[k]; ok {
			return StatusPending, ""
		}
	}
	return StatusUnknown, ""
}

// Has reports whether an entry is known, complete or pending.
func (l *Ledger) Has(c cid.Cid) bool {
	st, _ := l.Status(c)
	return st != StatusUnknown
}

// Balance is an account's balance in a currency, in the smallest unit.
func (l *Ledger) Balance(account did.DID, cur CurrencyID) int64 {
	a, ok := l.idIx[account]
	if !ok {
		return 0
	}
	c, ok := l.curIx[cur]
	if !ok {
		return 0
	}
	return l.balances[acctCur{a, c}]
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
			out = append(out, AccountBalance{l.ids[k.acct], l.curs[k.cur], v})
		}
	}
	// Sorted by currency, then account, in their text forms; each text
	// form (base58) is made once, not once per comparison.
	type keyed struct {
		cur, acct string
		b         AccountBalance
	}
	ks := make([]keyed, len(out))
	curText := map[CurrencyID]string{}
	for i, b := range out {
		ct, ok := curText[b.Currency]
		if !ok {
			ct = b.Currency.String()
			curText[b.Currency] = ct
		}
		ks[i] = keyed{ct, b.Account.String(), b}
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].cur != ks[j].cur {
			return ks[i].cur < ks[j].cur
		}
		return ks[i].acct < ks[j].acct
	})
	for i := range ks {
		out[i] = ks[i].b
	}
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
	for cur, cs := range l.currencies {
		out = append(out, Currency{l.curs[cur], cs.def, l.recs[cs.entry].key.cid()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out
}

// LookupCurrency returns the currency with id.
func (l *Ledger) LookupCurrency(id CurrencyID) (Currency, bool) {
	cur, ok := l.curIx[id]
	if !ok {
		return Currency{}, false
	}
	cs, ok := l.currencies[cur]
	if !ok {
		return Currency{}, false
	}
	return Currency{id, cs.def, l.recs[cs.entry].key.cid()}, true
}

// Heads are the accepted entries with no accepted child, sorted.
func (l *Ledger) Heads() []cid.Cid {
	out := make([]cid.Cid, 0, len(l.heads))
	for i := range l.heads {
		out = append(out, l.recs[i].key.cid())
	}
	SortCIDs(out)
	return out
}

// Counts reports how many entries are accepted, quarantined and pending.
func (l *Ledger) Counts() (accepted, quarantined, pending int) {
	return l.accepted, len(l.recs) - l.accepted, len(l.pending)
}

// StateHash is equal on two ledgers exactly when they accepted the same
// entries (and so hold the same balances): sha256 over the sorted CIDs of
// the accepted entries.
func (l *Ledger) StateHash() [32]byte {
	j := l.StateHashJob()
	h := j.Run()
	l.KeepStateHash(j)
	return h
}

// StateHashJob is a state hash still to compute, detached from the ledger:
// the accepted CIDs are copied out, so that sorting and hashing them (a
// third of a second at a million entries) can run after the caller has
// released the lock that guards the ledger. Run computes it; KeepStateHash,
// under that lock again, caches the result unless the ledger changed
// meanwhile.
type StateHashJob struct {
	keys []key
	gen  uint64
	hash [32]byte
	done bool
}

// StateHashJob copies what the state hash needs, or the cached hash.
func (l *Ledger) StateHashJob() *StateHashJob {
	if l.hashValid {
		return &StateHashJob{gen: l.hashGen, hash: l.hash, done: true}
	}
	ks := make([]key, 0, l.accepted)
	for i := range l.recs {
		if l.recs[i].status == StatusAccepted {
			ks = append(ks, l.recs[i].key)
		}
	}
	return &StateHashJob{keys: ks, gen: l.hashGen}
}

// Run computes the hash (once) and returns it. It does not touch the ledger.
func (j *StateHashJob) Run() [32]byte {
	if j.done {
		return j.hash
	}
	slices.SortFunc(j.keys, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, k := range j.keys {
		h.Write(cidPrefix[:])
		h.Write(k[:])
	}
	h.Sum(j.hash[:0])
	j.keys, j.done = nil, true
	return j.hash
}

// KeepStateHash caches the hash of a job that has run, if the accepted set
// is still the one the job copied.
func (l *Ledger) KeepStateHash(j *StateHashJob) {
	if j.done && j.gen == l.hashGen {
		l.hash, l.hashValid = j.hash, true
	}
}

// Holdings is a digest of the set of complete entries, quarantined ones
// included: the XOR of sha256 over their CIDs. Two ledgers with equal state
// hashes can still differ here, when one holds equivocation evidence (a
// losing twin) the other lacks; comparing both tells a node to pull it.
func (l *Ledger) Holdings() [32]byte {
	var d [32]byte
	for _, a := range l.authors {
		for i := range d {
			d[i] ^= a.digest[i]
		}
	}
	return d
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
	for i := range l.recs {
		r := &l.recs[i]
		if r.status == StatusQuarantined {
			out = append(out, Quarantined{r.key.cid(), l.ids[r.author], r.seq, l.reasons[uint32(i)]})
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

func cidLess(a, b cid.Cid) bool { return bytes.Compare(a.Bytes(), b.Bytes()) < 0 }

// Missing lists the CIDs pending entries wait for, sorted.
func (l *Ledger) Missing() []cid.Cid {
	out := make([]cid.Cid, 0, len(l.waiting))
	for k := range l.waiting {
		if _, ok := l.pending[k]; !ok {
			out = append(out, k.cid())
		}
	}
	SortCIDs(out)
	return out
}

// Vector is, per author, the highest seq of a complete entry: what sync
// compares to find what a peer lacks.
func (l *Ledger) Vector() map[did.DID]uint64 {
	out := make(map[did.DID]uint64, len(l.authors))
	for ix, a := range l.authors {
		out[l.ids[ix]] = a.top
	}
	return out
}

// AuthorCIDs returns the complete entries of an author with seq above
// after, in seq order (equivocating entries side by side, by CID).
func (l *Ledger) AuthorCIDs(author did.DID, after uint64) []cid.Cid {
	ix, ok := l.idIx[author]
	if !ok {
		return nil
	}
	a, ok := l.authors[ix]
	if !ok {
		return nil
	}
	var out []cid.Cid
	for _, s := range a.seqs(after) {
		g := a.group(s)
		slices.SortFunc(g, func(x, y uint32) int { return bytes.Compare(l.recs[x].key[:], l.recs[y].key[:]) })
		for _, i := range g {
			out = append(out, l.recs[i].key.cid())
		}
	}
	return out
}

// LastAccepted returns the author's highest accepted seq and its CID.
func (l *Ledger) LastAccepted(author did.DID) (uint64, cid.Cid) {
	ix, ok := l.idIx[author]
	if !ok || l.authors[ix] == nil {
		return 0, cid.Undef
	}
	a := l.authors[ix]
	var best uint64
	var at uint32
	for _, s := range a.seqs(0) {
		for _, i := range a.group(s) {
			if l.recs[i].status == StatusAccepted {
				best, at = s, i
			}
		}
	}
	if best == 0 {
		return 0, cid.Undef
	}
	return best, l.recs[at].key.cid()
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
	// Unknown DIDs and currencies get indexes past the interned ones, which
	// no clock, balance or currency mentions.
	extraIDs, extraCurs := map[did.DID]uint32{}, map[CurrencyID]uint32{}
	id := func(d did.DID) uint32 {
		if i, ok := l.idIx[d]; ok {
			return i
		}
		if _, ok := extraIDs[d]; !ok {
			extraIDs[d] = uint32(len(l.ids) + len(extraIDs))
		}
		return extraIDs[d]
	}
	cur := func(c CurrencyID) uint32 {
		if i, ok := l.curIx[c]; ok {
			return i
		}
		if _, ok := extraCurs[c]; !ok {
			extraCurs[c] = uint32(len(l.curs) + len(extraCurs))
		}
		return extraCurs[c]
	}
	c := candidate{who: e.Author, author: id(e.Author), seq: e.Seq, prev: noIx, kind: e.Kind, def: e.Currency}
	if a, ok := l.authors[c.author]; ok {
		if _, ok := a.first(e.Seq); ok {
			return StatusUnknown, "", ErrEquivocation
		}
	}
	for _, p := range e.Postings {
		c.posts = append(c.posts, post{id(p.Account), cur(p.Currency), p.Amount})
	}
	parents := make([]uint32, 0, len(e.Parents)+1)
	if e.Prev.Defined() {
		c.prev, _ = l.index(e.Prev)
		c.tainted = l.recs[c.prev].flags&(flagLoser|flagTainted) != 0
		parents = append(parents, c.prev)
	}
	for _, p := range e.Parents {
		pi, _ := l.index(p)
		parents = append(parents, pi)
	}
	vc := l.causalPast(parents)
	raw, _ := vc.get(c.author)
	st, reason := l.judge(&c, vc, raw)
	return st, reason, nil
}

// Next returns what an author's next entry must carry: its seq, its prev
// (the winning entry at seq-1) and, as parents, the current heads (at most
// MaxParents of them, prev excluded).
func (l *Ledger) Next(author did.DID) (seq uint64, prev cid.Cid, parents []cid.Cid) {
	if ix, ok := l.idIx[author]; ok {
		if a, ok := l.authors[ix]; ok && a.top > 0 {
			first, _ := a.first(a.top)
			seq, prev = a.top, l.recs[first].key.cid()
		}
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
	st := Stats{Accepted: l.accepted, Quarantined: len(l.recs) - l.accepted, Pending: len(l.pending), Currencies: len(l.currencies)}
	accts := map[uint32]bool{}
	for k, v := range l.balances {
		if v != 0 {
			accts[k.acct] = true
		}
	}
	st.Accounts = len(accts)
	st.Transfers = l.transfers
	return st
}

// Involving lists the complete entries written by account or posting to
// it, with their statuses, in the order they were completed. The ledger
// keeps no entry bodies: read the blocks from wherever they are stored.
func (l *Ledger) Involving(account did.DID) []Decision {
	ix, ok := l.idIx[account]
	if !ok {
		return nil
	}
	var out []Decision
	for i := range l.recs {
		r := &l.recs[i]
		match := r.author == ix
		for _, p := range l.postsOf(r) {
			match = match || p.acct == ix
		}
		if match {
			out = append(out, Decision{r.key.cid(), r.status, l.reasons[uint32(i)]})
		}
	}
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
	for ix, a := range l.authors {
		out[l.ids[ix]] = AuthorSummary{a.top, a.digest}
	}
	return out
}

// MissingCIDs returns the complete entries a ledger with the given summary
// lacks, author by author in seq order, at most limit of them (0 means no
// limit). An author whose digest differs at an equal or higher top is sent
// whole, so equivocations spread.
func (l *Ledger) MissingCIDs(remote map[did.DID]AuthorSummary, limit int) []cid.Cid {
	authors := make([]did.DID, 0, len(l.authors))
	for ix := range l.authors {
		authors = append(authors, l.ids[ix])
	}
	sort.Slice(authors, func(i, j int) bool { return authors[i].String() < authors[j].String() })
	var out []cid.Cid
	for _, d := range authors {
		mine := l.authors[l.idIx[d]]
		theirs, known := remote[d]
		after := uint64(0)
		switch {
		case !known:
		case theirs.Top == mine.top && theirs.Digest == mine.digest:
			continue
		case theirs.Top < mine.top && l.prefixDigest(mine, theirs.Top) == theirs.Digest:
			after = theirs.Top // same prefix: only the tail is missing
		}
		for _, c := range l.AuthorCIDs(d, after) {
			if limit > 0 && len(out) == limit {
				return out
			}
			out = append(out, c)
		}
	}
	return out
}

// prefixDigest is the digest of an author's complete entries with seq <= top.
func (l *Ledger) prefixDigest(a *authorState, top uint64) [32]byte {
	var d [32]byte
	for _, seq := range a.seqs(0) {
		if seq > top {
			break
		}
		for _, i := range a.group(seq) {
			h := sha256.Sum256(l.recs[i].key.cid().Bytes())
			for j := range d {
				d[j] ^= h[j]
			}
		}
	}
	return d
}
