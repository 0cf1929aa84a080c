// Package ledger is the pure core of ICN's mutual-credit ledger: entry types,
// their canonical encoding and content addresses, static and causal
// validation, equivocation handling and balances. It does no I/O: no network,
// no disk, no clock. Every node that holds the same set of entries computes
// the same state with it, whatever order the entries arrived in.
package ledger

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"filippo.io/edwards25519"
	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger/internal/edverify"
)

// Limits on one entry.
const (
	MaxEntrySize = 16 << 10
	MaxParents   = 32
	MaxPostings  = 64
	MaxMemo      = 256
	MaxDecimals  = 18
	// CodecCBOR is the multicodec of an entry block: plain CBOR (0x51).
	CodecCBOR = 0x51
	// entryVersion is the only encoding version understood.
	entryVersion = 1
	signDomain   = "icn-ledger-entry-v1\n"
)

// Kind says what an entry does.
type Kind uint8

// Entry kinds.
const (
	// KindCurrency defines a currency issued by the author.
	KindCurrency Kind = 1
	// KindTransfer moves amounts between accounts.
	KindTransfer Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindCurrency:
		return "currency"
	case KindTransfer:
		return "transfer"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// CurrencyID names a currency: a symbol is unique per issuer, so only the
// issuer can define (symbol, issuer), and its own chain orders its
// definitions. Nobody else can shadow a currency by reusing its symbol.
type CurrencyID struct {
	Symbol string
	Issuer did.DID
}

func (c CurrencyID) String() string { return c.Symbol + "@" + c.Issuer.String() }

// CurrencyDef is the body of a KindCurrency entry; the issuer is the author.
type CurrencyDef struct {
	// Symbol is in canonical form (lowercase; see CanonicalSymbol).
	Symbol string
	// Display is how the issuer wrote the symbol (Hrs for hrs), shown by
	// DisplaySymbol. Empty means the default, the symbol in uppercase, and
	// leaves the field out of the entry, so definitions without it encode
	// and hash exactly as before the field existed.
	Display  string
	Decimals uint8
	// CreditLimit is how far below zero, in the smallest unit, any account's
	// balance may go.
	CreditLimit int64
}

// Posting changes one account's balance in one currency.
type Posting struct {
	Account  did.DID
	Currency CurrencyID
	Amount   int64
}

// Entry is one signed ledger entry.
type Entry struct {
	Author did.DID
	// Seq numbers the author's entries from 1 with no gaps.
	Seq uint64
	// Prev is the author's entry with Seq-1 (cid.Undef when Seq is 1).
	Prev cid.Cid
	// Parents are the other heads the author knew, sorted by CID bytes.
	Parents []cid.Cid
	// Timestamp is the author's clock in unix milliseconds (informational:
	// validity never depends on a clock).
	Timestamp int64
	Kind      Kind
	Currency  *CurrencyDef
	Postings  []Posting
	Memo      string
	Signature []byte
}

// Wire form: CBOR maps with small integer keys, core deterministic encoding.
type wireEntry struct {
	V         uint8         `cbor:"0,keyasint"`
	Author    []byte        `cbor:"1,keyasint"`
	Seq       uint64        `cbor:"2,keyasint"`
	Prev      []byte        `cbor:"3,keyasint,omitempty"`
	Parents   [][]byte      `cbor:"4,keyasint,omitempty"`
	Timestamp int64         `cbor:"5,keyasint"`
	Kind      uint8         `cbor:"6,keyasint"`
	Currency  *wireCurrency `cbor:"7,keyasint,omitempty"`
	Postings  []wirePosting `cbor:"8,keyasint,omitempty"`
	Memo      string        `cbor:"9,keyasint,omitempty"`
	Signature []byte        `cbor:"10,keyasint,omitempty"`
}

type wireCurrency struct {
	Symbol      string `cbor:"1,keyasint"`
	Decimals    uint8  `cbor:"2,keyasint"`
	CreditLimit int64  `cbor:"3,keyasint"`
	Display     string `cbor:"4,keyasint,omitempty"`
}

type wirePosting struct {
	Account []byte `cbor:"1,keyasint"`
	Symbol  string `cbor:"2,keyasint"`
	Issuer  []byte `cbor:"3,keyasint"`
	Amount  int64  `cbor:"4,keyasint"`
}

// codec holds the CBOR modes; immutable after construction.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCodec() codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxArrayElements:  MaxPostings * 4,
		MaxMapPairs:       16,
		MaxNestedLevels:   8,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return codec{enc: enc, dec: dec}
}

// The CBOR modes are pure values built from constant options.
var wire = newCodec()

func (e *Entry) toWire(withSig bool) wireEntry {
	w := wireEntry{V: entryVersion, Author: e.Author.PublicKey(), Seq: e.Seq, Timestamp: e.Timestamp, Kind: uint8(e.Kind), Memo: e.Memo}
	if e.Prev.Defined() {
		w.Prev = e.Prev.Bytes()
	}
	for _, p := range e.Parents {
		w.Parents = append(w.Parents, p.Bytes())
	}
	if e.Currency != nil {
		w.Currency = &wireCurrency{Symbol: e.Currency.Symbol, Decimals: e.Currency.Decimals, CreditLimit: e.Currency.CreditLimit, Display: e.Currency.Display}
	}
	for _, p := range e.Postings {
		w.Postings = append(w.Postings, wirePosting{Account: p.Account.PublicKey(), Symbol: p.Currency.Symbol, Issuer: p.Currency.Issuer.PublicKey(), Amount: p.Amount})
	}
	if withSig {
		w.Signature = e.Signature
	}
	return w
}

// SigningBytes is what the author signs: a domain prefix and the canonical
// encoding of the entry without its signature.
func (e *Entry) SigningBytes() ([]byte, error) {
	b, err := wire.enc.Marshal(e.toWire(false))
	if err != nil {
		return nil, err
	}
	return append([]byte(signDomain), b...), nil
}

// signingBytesOf returns e's signing bytes, cut from its canonical block
// rather than encoded again: the signature (key 10, a 64-byte string) is
// the block's last map pair, so the signing bytes are the block with that
// pair removed and the map header counting one pair less.
func signingBytesOf(block []byte, e *Entry) ([]byte, error) {
	const sigPair = 3 + ed25519.SignatureSize // 0x0a 0x58 0x40 and the signature
	n := len(block)
	if n > sigPair && block[0] > 0xa0 && block[0] <= 0xb7 &&
		bytes.Equal(block[n-sigPair:n-ed25519.SignatureSize], []byte{0x0a, 0x58, 0x40}) {
		msg := make([]byte, 0, len(signDomain)+n-sigPair)
		msg = append(msg, signDomain...)
		msg = append(msg, block[0]-1)
		return append(msg, block[1:n-sigPair]...), nil
	}
	return e.SigningBytes()
}

// Encode returns the canonical encoding of the signed entry: the block.
func (e *Entry) Encode() ([]byte, error) {
	return wire.enc.Marshal(e.toWire(true))
}

// BlockCID is the content address of a block: CIDv1, CBOR codec, sha2-256.
func BlockCID(block []byte) cid.Cid {
	h, err := mh.Sum(block, mh.SHA2_256, -1)
	if err != nil {
		panic(err) // sha2-256 is always available
	}
	return cid.NewCidV1(CodecCBOR, h)
}

// Sign signs e with the author's DID key and returns the block and its CID.
func Sign(e *Entry, key ed25519.PrivateKey) ([]byte, cid.Cid, error) {
	msg, err := e.SigningBytes()
	if err != nil {
		return nil, cid.Undef, err
	}
	e.Signature = ed25519.Sign(key, msg)
	b, err := e.Encode()
	if err != nil {
		return nil, cid.Undef, err
	}
	return b, BlockCID(b), nil
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed entry")

// Decode parses a block strictly: canonical CBOR only (re-encoding must give
// the same bytes), known fields only, sizes bounded. It does not check the
// signature or any ledger rule; Verify does.
func Decode(block []byte) (*Entry, error) { return decode(block, nil) }

func decode(block []byte, keys *KeyCache) (*Entry, error) {
	if len(block) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(block), MaxEntrySize)
	}
	var w wireEntry
	if err := wire.dec.Unmarshal(block, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.V != entryVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, w.V, entryVersion)
	}
	e := &Entry{Seq: w.Seq, Timestamp: w.Timestamp, Kind: Kind(w.Kind), Memo: w.Memo, Signature: w.Signature}
	var err error
	if e.Author, err = keys.did(w.Author); err != nil {
		return nil, fmt.Errorf("%w: author: %v", ErrMalformed, err)
	}
	if w.Prev != nil {
		if e.Prev, err = cidFromBytes(w.Prev); err != nil {
			return nil, fmt.Errorf("%w: prev: %v", ErrMalformed, err)
		}
	}
	if len(w.Parents) > MaxParents {
		return nil, fmt.Errorf("%w: %d parents exceeds %d", ErrMalformed, len(w.Parents), MaxParents)
	}
	for i, p := range w.Parents {
		c, err := cidFromBytes(p)
		if err != nil {
			return nil, fmt.Errorf("%w: parent %d: %v", ErrMalformed, i, err)
		}
		e.Parents = append(e.Parents, c)
	}
	if w.Currency != nil {
		e.Currency = &CurrencyDef{Symbol: w.Currency.Symbol, Display: w.Currency.Display, Decimals: w.Currency.Decimals, CreditLimit: w.Currency.CreditLimit}
	}
	if len(w.Postings) > MaxPostings {
		return nil, fmt.Errorf("%w: %d postings exceeds %d", ErrMalformed, len(w.Postings), MaxPostings)
	}
	for i, p := range w.Postings {
		acct, err := keys.did(p.Account)
		if err != nil {
			return nil, fmt.Errorf("%w: posting %d account: %v", ErrMalformed, i, err)
		}
		iss, err := keys.did(p.Issuer)
		if err != nil {
			return nil, fmt.Errorf("%w: posting %d issuer: %v", ErrMalformed, i, err)
		}
		e.Postings = append(e.Postings, Posting{Account: acct, Currency: CurrencyID{Symbol: p.Symbol, Issuer: iss}, Amount: p.Amount})
	}
	again, err := e.Encode()
	if err != nil || !bytes.Equal(again, block) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return e, nil
}

// KeyCache remembers public keys already checked to be valid DIDs, with
// their decompressed curve points, so a ledger where the same few hundred
// members appear in every entry neither checks nor decompresses the same
// keys again and again. The keys that sign more than once also get
// precomputed tables that check their signatures about 2.5 times faster
// (package edverify). It is safe for concurrent use; the zero value is
// ready, and a nil *KeyCache caches nothing.
type KeyCache struct {
	m sync.Map // [32]byte -> *cachedKey
	n atomic.Int64

	verifierOnce sync.Once
	verifier     *edverify.Verifier // the basepoint's tables, built on first use

	prepMu   sync.Mutex
	prepared []*cachedKey // the keys with tables, at most maxPreparedKeys
}

type cachedKey struct {
	did    did.DID
	minusA *edwards25519.Point // the negated public key point
	uses   atomic.Int32        // signatures checked
	tables atomic.Pointer[edverify.Key]
}

const (
	// maxCachedKeys bounds a KeyCache; past it, keys are checked every time.
	maxCachedKeys = 1 << 16
	// maxPreparedKeys bounds the keys with tables (about 7.5 KiB each).
	// Once it is reached, a key without tables takes the place of the
	// least used key with tables when, every evictEvery signatures, it is
	// found to have signed more: members who keep signing keep their
	// tables, and a flood of keys that each sign a couple of times cannot
	// hold the places.
	maxPreparedKeys = 512
	evictEvery      = 64
	// prepareAfter is how many signatures a key must have before it gets
	// tables, which cost about five signature checks to build: members
	// who sign once are not worth it.
	prepareAfter = 2
)

func (k *KeyCache) did(b []byte) (did.DID, error) {
	ck, err := k.lookup(b)
	if err != nil {
		return did.DID{}, err
	}
	return ck.did, nil
}

func (k *KeyCache) lookup(b []byte) (*cachedKey, error) {
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	key := [ed25519.PublicKeySize]byte(b)
	if k != nil {
		if ck, ok := k.m.Load(key); ok {
			return ck.(*cachedKey), nil
		}
	}
	d, err := did.FromPublicKey(ed25519.PublicKey(b))
	if err != nil {
		return nil, err
	}
	a, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, err // a valid DID is a valid point: unreachable
	}
	ck := &cachedKey{did: d, minusA: new(edwards25519.Point).Negate(a)}
	if k != nil && k.n.Load() < maxCachedKeys {
		if prev, loaded := k.m.LoadOrStore(key, ck); loaded {
			return prev.(*cachedKey), nil
		}
		k.n.Add(1)
	}
	return ck, nil
}

// tables returns the key's tables, building them once it has signed
// prepareAfter times (see maxPreparedKeys for when all places are taken),
// or nil.
func (k *KeyCache) tables(ck *cachedKey, pub []byte) *edverify.Key {
	if k == nil {
		return nil
	}
	uses := ck.uses.Add(1)
	if t := ck.tables.Load(); t != nil || uses < prepareAfter {
		return t
	}
	k.prepMu.Lock()
	full := len(k.prepared) >= maxPreparedKeys
	worthIt := !full || (uses%evictEvery == 0 && k.leastUsed(uses) >= 0)
	k.prepMu.Unlock()
	if !worthIt {
		return nil
	}
	k.verifierOnce.Do(func() { k.verifier = edverify.NewVerifier() })
	t, err := k.verifier.Prepare(pub)
	if err != nil {
		return nil // a valid DID is a valid point: unreachable
	}
	k.prepMu.Lock()
	defer k.prepMu.Unlock()
	if cur := ck.tables.Load(); cur != nil {
		return cur // built meanwhile by another check
	}
	if len(k.prepared) < maxPreparedKeys {
		k.prepared = append(k.prepared, ck)
	} else {
		i := k.leastUsed(uses)
		if i < 0 {
			return nil
		}
		k.prepared[i].tables.Store(nil)
		k.prepared[i] = ck
	}
	ck.tables.Store(t)
	return t
}

// leastUsed is the index of the key with tables that has signed the
// least, if that is fewer than uses; -1 otherwise. k.prepMu is held.
func (k *KeyCache) leastUsed(uses int32) int {
	best, bestUses := -1, uses
	for i, p := range k.prepared {
		if u := p.uses.Load(); u < bestUses {
			best, bestUses = i, u
		}
	}
	return best
}

// verifySignature is ed25519.Verify (RFC 8032 pure Ed25519, with the same
// checks as crypto/ed25519: signature length, S canonical, the cofactorless
// equation [S]B = R + [k]A, R compared by encoding) with the author's point
// decompressed once per key instead of once per signature, and with the
// key's tables (package edverify) once it has them.
func (k *KeyCache) verifySignature(author did.DID, msg, sig []byte) bool {
	pub := author.PublicKey()
	ck, err := k.lookup(pub)
	if err != nil {
		return false
	}
	if t := k.tables(ck, pub); t != nil {
		return k.verifier.Verify(t, msg, sig)
	}
	return edverify.VerifyPoint(ck.minusA, pub, msg, sig)
}

func cidFromBytes(b []byte) (cid.Cid, error) {
	n, c, err := cid.CidFromBytes(b)
	if err != nil {
		return cid.Undef, err
	}
	if n != len(b) {
		return cid.Undef, errors.New("trailing bytes after CID")
	}
	if c.Version() != 1 || c.Type() != CodecCBOR || c.Prefix().MhType != mh.SHA2_256 {
		return cid.Undef, fmt.Errorf("CID %s is not CIDv1/cbor/sha2-256", c)
	}
	return c, nil
}

// Verified is a block that passed every check that depends on nothing but
// its own bytes: decoding, signature and the static rules. Verify is safe to
// run in parallel; Ledger.Add accepts only Verified blocks.
type Verified struct {
	Entry *Entry
	CID   cid.Cid
	Block []byte
}

// RuleError is a static rule an entry breaks, in words.
type RuleError struct{ Reason string }

func (e *RuleError) Error() string { return e.Reason }

func ruleErr(format string, args ...any) error {
	return &RuleError{Reason: fmt.Sprintf(format, args...)}
}

// Verify decodes a block and checks its signature and static rules. want,
// when defined, is the CID the block was requested or announced under: a
// block whose bytes hash to something else is refused.
func Verify(block []byte, want cid.Cid) (*Verified, error) { return verify(block, want, nil) }

// Decode is Decode with the cache's already-checked keys.
func (k *KeyCache) Decode(block []byte) (*Entry, error) { return decode(block, k) }

// Verify is Verify with the cache's already-checked keys.
func (k *KeyCache) Verify(block []byte, want cid.Cid) (*Verified, error) {
	return verify(block, want, k)
}

func verify(block []byte, want cid.Cid, keys *KeyCache) (*Verified, error) {
	c := BlockCID(block)
	if want.Defined() && !want.Equals(c) {
		return nil, fmt.Errorf("%w: block hashes to %s, not %s", ErrMalformed, c, want)
	}
	e, err := decode(block, keys)
	if err != nil {
		return nil, err
	}
	if err := e.checkStatic(); err != nil {
		return nil, err
	}
	msg, err := signingBytesOf(block, e)
	if err != nil {
		return nil, err
	}
	if !keys.verifySignature(e.Author, msg, e.Signature) {
		return nil, ruleErr("bad signature: the entry is not signed by its author %s", e.Author)
	}
	return &Verified{Entry: e, CID: c, Block: block}, nil
}

// checkStatic checks the rules that need no other entry.
func (e *Entry) checkStatic() error {
	if e.Seq == 0 {
		return ruleErr("seq must start at 1")
	}
	if (e.Seq == 1) == e.Prev.Defined() {
		return ruleErr("seq %d with prev %v: only the first entry of an author has no prev", e.Seq, e.Prev.Defined())
	}
	for i, p := range e.Parents {
		if e.Prev.Defined() && p.Equals(e.Prev) {
			return ruleErr("parent %d repeats prev", i)
		}
		if i > 0 && bytes.Compare(e.Parents[i-1].Bytes(), p.Bytes()) >= 0 {
			return ruleErr("parents must be sorted and distinct")
		}
	}
	if len(e.Memo) > MaxMemo {
		return ruleErr("memo is %d bytes, at most %d", len(e.Memo), MaxMemo)
	}
	if len(e.Signature) != ed25519.SignatureSize {
		return ruleErr("signature is %d bytes, want %d", len(e.Signature), ed25519.SignatureSize)
	}
	switch e.Kind {
	case KindCurrency:
		if len(e.Postings) > 0 || e.Currency == nil {
			return ruleErr("a currency entry carries a currency definition and no postings")
		}
		c := e.Currency
		if err := checkSymbol(c.Symbol); err != nil {
			return err
		}
		if err := c.checkDisplay(); err != nil {
			return err
		}
		if c.Decimals > MaxDecimals {
			return ruleErr("currency %s: %d decimals, at most %d", c.Symbol, c.Decimals, MaxDecimals)
		}
		if c.CreditLimit < 0 {
			return ruleErr("currency %s: credit limit %d is negative", c.Symbol, c.CreditLimit)
		}
	case KindTransfer:
		if e.Currency != nil || len(e.Postings) < 2 {
			return ruleErr("a transfer carries at least two postings and no currency definition")
		}
		return checkPostings(e.Author, e.Postings)
	default:
		return ruleErr("unknown entry kind %d", e.Kind)
	}
	return nil
}

// checkPostings: every amount non-zero, one posting per (account, currency),
// only the author's accounts decrease, and per currency the amounts sum to
// zero without overflow.
func checkPostings(author did.DID, ps []Posting) error {
	type key struct {
		acct did.DID
		cur  CurrencyID
	}
	seen := map[key]bool{}
	sums := map[CurrencyID]int64{}
	for i, p := range ps {
		if err := checkSymbol(p.Currency.Symbol); err != nil {
			return ruleErr("posting %d: %v", i, err)
		}
		switch {
		case p.Amount == 0:
			return ruleErr("posting %d: the amount is zero", i)
		case p.Amount < 0 && p.Account != author:
			return ruleErr("posting %d: decreases %s, which is not the author's account", i, p.Account)
		}
		k := key{p.Account, p.Currency}
		if seen[k] {
			return ruleErr("posting %d: %s appears twice in %s", i, p.Account, p.Currency.Symbol)
		}
		seen[k] = true
		s, ok := addInt64(sums[p.Currency], p.Amount)
		if !ok {
			return ruleErr("posting %d: the amounts overflow", i)
		}
		sums[p.Currency] = s
	}
	for c, s := range sums {
		if s != 0 {
			return ruleErr("the postings in %s sum to %d, not zero", c.Symbol, s)
		}
	}
	return nil
}

func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// SortCIDs sorts CIDs by their bytes, the order Parents must be in.
func SortCIDs(cs []cid.Cid) {
	slices.SortFunc(cs, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
}
