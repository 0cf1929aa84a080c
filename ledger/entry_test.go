package ledger

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"
)

func fixture(t *testing.T) (alice, bob member, cur CurrencyID, def *Verified) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	alice, bob = newMember(t, r), newMember(t, r)
	def = sign(t, alice, &Entry{Seq: 1, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 10000}})
	return alice, bob, CurrencyID{"hours", alice.id}, def
}

func TestEntryRoundTrip(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	e := &Entry{Seq: 2, Prev: def.CID, Timestamp: 1_700_000_000_000, Kind: KindTransfer,
		Postings: pay(alice.id, bob.id, cur, 250), Memo: "bread"}
	v := sign(t, alice, e)
	back, err := Decode(v.Block)
	require.NoError(t, err)
	require.Equal(t, e, back)
	require.Equal(t, v.CID, BlockCID(v.Block))
	require.Equal(t, uint64(CodecCBOR), v.CID.Type())
	// Encoding is deterministic.
	again, err := back.Encode()
	require.NoError(t, err)
	require.Equal(t, v.Block, again)
}

func TestVerifyRejects(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	good := func() *Entry {
		return &Entry{Author: alice.id, Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 5)}
	}
	cases := map[string]struct {
		mutate func(e *Entry)
		want   string
	}{
		"zero amount":              {func(e *Entry) { e.Postings = pay(alice.id, bob.id, cur, 0) }, "amount is zero"},
		"negative payment":         {func(e *Entry) { e.Postings = pay(alice.id, bob.id, cur, -5) }, "not the author's account"},
		"spends another's account": {func(e *Entry) { e.Postings = pay(bob.id, alice.id, cur, 5) }, "not the author's account"},
		"not zero-sum":             {func(e *Entry) { e.Postings[1].Amount = 4 }, "sum to"},
		"one posting":              {func(e *Entry) { e.Postings = e.Postings[:1] }, "at least two postings"},
		"duplicate account": {func(e *Entry) {
			e.Postings = []Posting{{alice.id, cur, -2}, {bob.id, cur, 1}, {bob.id, cur, 1}}
		}, "appears twice"},
		"bad symbol":          {func(e *Entry) { e.Postings[0].Currency.Symbol = "Hours!"; e.Postings[1].Currency.Symbol = "Hours!" }, "symbol"},
		"seq zero":            {func(e *Entry) { e.Seq = 0 }, "seq must start at 1"},
		"missing prev":        {func(e *Entry) { e.Prev = cid.Undef }, "prev"},
		"first has prev":      {func(e *Entry) { e.Seq = 1 }, "prev"},
		"parent repeats prev": {func(e *Entry) { e.Parents = []cid.Cid{def.CID} }, "repeats prev"},
		"long memo":           {func(e *Entry) { e.Memo = string(bytes.Repeat([]byte("x"), MaxMemo+1)) }, "memo"},
		"unknown kind":        {func(e *Entry) { e.Kind = 9 }, "unknown entry kind"},
		"negative limit": {func(e *Entry) {
			e.Kind, e.Postings, e.Currency = KindCurrency, nil, &CurrencyDef{Symbol: "x", CreditLimit: -1}
		}, "negative"},
		"too many decimals": {func(e *Entry) {
			e.Kind, e.Postings, e.Currency = KindCurrency, nil, &CurrencyDef{Symbol: "x", Decimals: 19}
		}, "decimals"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := good()
			tc.mutate(e)
			block, c, err := Sign(e, alice.key)
			require.NoError(t, err)
			_, err = Verify(block, c)
			var re *RuleError
			require.True(t, errors.As(err, &re), "want a RuleError, got %v", err)
			require.Contains(t, err.Error(), tc.want)
		})
	}

	// A forged signature: alice's entry signed by bob.
	e := good()
	block, c, err := Sign(e, bob.key)
	require.NoError(t, err)
	_, err = Verify(block, c)
	require.ErrorContains(t, err, "bad signature")

	// Bytes that do not hash to the CID asked for.
	e = good()
	block, _, err = Sign(e, alice.key)
	require.NoError(t, err)
	_, err = Verify(block, def.CID)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, "hashes to")

	// Truncated and garbage blocks.
	for _, b := range [][]byte{block[:len(block)/2], []byte("garbage"), nil, bytes.Repeat([]byte{0xff}, MaxEntrySize+1)} {
		_, err := Verify(b, cid.Undef)
		require.ErrorIs(t, err, ErrMalformed)
	}
}

func TestDecodeRejectsNonCanonical(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	v := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 5)})
	// Re-encode the same map with an indefinite-length or unsorted encoding:
	// decode into a generic map and encode with non-canonical options.
	var m map[int]any
	require.NoError(t, cbor.Unmarshal(v.Block, &m))
	enc, err := cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
	require.NoError(t, err)
	for i := 0; i < 20; i++ { // map iteration order varies: find an unsorted one
		b, err := enc.Marshal(m)
		require.NoError(t, err)
		if !bytes.Equal(b, v.Block) {
			_, err := Decode(b)
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
	}
	t.Skip("could not produce a non-canonical encoding")
}

func FuzzDecodeEntry(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	alice, bob := newMember(f, r), newMember(f, r)
	def := sign(f, alice, &Entry{Seq: 1, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 100}})
	pay := sign(f, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, CurrencyID{"hours", alice.id}, 5), Memo: "m"})
	shown := sign(f, alice, &Entry{Seq: 3, Prev: pay.CID, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "kwh", Display: "kWh", Decimals: 3, CreditLimit: 5}})
	f.Add(def.Block)
	f.Add(pay.Block)
	f.Add(shown.Block)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		again, err := e.Encode()
		require.NoError(t, err)
		require.Equal(t, b, again)
		if v, err := Verify(b, cid.Undef); err == nil {
			New().Add(v) // must not panic
		}
	})
}
