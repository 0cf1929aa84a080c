package gatewayapi_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

func key(t testing.TB, seed byte) (did.DID, ed25519.PrivateKey) {
	t.Helper()
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	d, err := did.FromPublicKey(k.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return d, k
}

// sampleBlocks are signed entries of both kinds, with and without the
// optional fields.
func sampleBlocks(t testing.TB) [][]byte {
	t.Helper()
	alice, ak := key(t, 1)
	bob, _ := key(t, 2)
	cur := &ledger.Entry{Author: alice, Seq: 1, Timestamp: 1700000000000, Kind: ledger.KindCurrency,
		Currency: &ledger.CurrencyDef{Symbol: "hrs", Display: "Hrs", Decimals: 2, CreditLimit: 10000}}
	b1, c1, err := ledger.Sign(cur, ak)
	require.NoError(t, err)
	id := ledger.CurrencyID{Symbol: "hrs", Issuer: alice}
	pay := &ledger.Entry{Author: alice, Seq: 2, Prev: c1, Parents: []cid.Cid{ledger.BlockCID([]byte("other head"))}, Timestamp: 1700000000001,
		Kind: ledger.KindTransfer, Memo: "bread", Postings: []ledger.Posting{{Account: alice, Currency: id, Amount: -1250}, {Account: bob, Currency: id, Amount: 1250}}}
	b2, _, err := ledger.Sign(pay, ak)
	require.NoError(t, err)
	return [][]byte{b1, b2}
}

// The JSON form is the entry: CBOR → JSON → CBOR gives the same bytes (and
// so the same CID and a signature that still verifies).
func TestEntryFormsRoundTrip(t *testing.T) {
	for _, block := range sampleBlocks(t) {
		v, err := ledger.Verify(block, cid.Undef)
		require.NoError(t, err)
		j := gatewayapi.EntryOf(v.Entry)
		data, err := json.Marshal(j)
		require.NoError(t, err)
		var back gatewayapi.Entry
		require.NoError(t, json.Unmarshal(data, &back))
		again, err := back.Block()
		require.NoError(t, err)
		require.Equal(t, block, again)
	}
}

// Bad fields are named.
func TestEntryFieldErrors(t *testing.T) {
	v, err := ledger.Verify(sampleBlocks(t)[1], cid.Undef)
	require.NoError(t, err)
	for field, mutate := range map[string]func(*gatewayapi.Entry){
		"author":              func(e *gatewayapi.Entry) { e.Author = "did:icn:nope" },
		"prev":                func(e *gatewayapi.Entry) { e.Prev = "not a cid" },
		"parents[0]":          func(e *gatewayapi.Entry) { e.Parents[0] = "x" },
		"kind":                func(e *gatewayapi.Entry) { e.Kind = "gift" },
		"postings[1].account": func(e *gatewayapi.Entry) { e.Postings[1].Account = "" },
		"postings[0].issuer":  func(e *gatewayapi.Entry) { e.Postings[0].Issuer = "bob" },
		"signature":           func(e *gatewayapi.Entry) { e.Signature = nil },
	} {
		j := gatewayapi.EntryOf(v.Entry)
		mutate(&j)
		_, err := j.Block()
		var fe *gatewayapi.FieldError
		require.ErrorAs(t, err, &fe, field)
		require.Equal(t, field, fe.Field)
	}
}

func TestEnvelopeFormsRoundTrip(t *testing.T) {
	alice, ak := key(t, 1)
	e := &gossip.Envelope{Author: alice, Seq: 7, Timestamp: 1700000000000, Type: gossip.TypeText, Payload: []byte("hi")}
	e.Sign("icn/test/chat", func(b []byte) []byte { return ed25519.Sign(ak, b) })
	raw, err := e.Marshal()
	require.NoError(t, err)
	j := gatewayapi.EnvelopeOf(e)
	data, err := json.Marshal(j)
	require.NoError(t, err)
	var back gatewayapi.Envelope
	require.NoError(t, json.Unmarshal(data, &back))
	again, err := back.Wire()
	require.NoError(t, err)
	require.Equal(t, raw, again)
	g, err := back.Gossip()
	require.NoError(t, err)
	require.NoError(t, g.Verify("icn/test/chat"))
}

// Whatever JSON a client sends, converting it never panics, and what
// converts to a block that decodes is the same entry in both forms.
func FuzzEntryJSON(f *testing.F) {
	for _, b := range sampleBlocks(f) {
		e, err := ledger.Decode(b)
		require.NoError(f, err)
		data, err := json.Marshal(gatewayapi.EntryOf(e))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"author":"did:icn:z","kind":"transfer","postings":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j gatewayapi.Entry
		if json.Unmarshal(data, &j) != nil {
			return
		}
		block, err := j.Block()
		if err != nil {
			return
		}
		e, err := ledger.Decode(block)
		if err != nil {
			return // not canonical (e.g. an empty parents list): refused later
		}
		again, err := gatewayapi.EntryOf(e).Block()
		require.NoError(t, err)
		require.Equal(t, block, again)
	})
}

// Whatever bytes a client sends as a CBOR entry, decoding never panics,
// and a block that decodes has a JSON form that gives it back exactly.
func FuzzEntryCBOR(f *testing.F) {
	for _, b := range sampleBlocks(f) {
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, block []byte) {
		e, err := ledger.Decode(block)
		if err != nil {
			return
		}
		again, err := gatewayapi.EntryOf(e).Block()
		if len(e.Signature) == 0 {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, block, again)
	})
}
