package ledger

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// Golden vectors of the entry format: fixed entries signed by fixed keys,
// their canonical CBOR blocks and CIDv1s, written out as literal hex.
//
// How they were produced: the entries in goldenEntries were signed with the
// RFC 8032 section 7.1 test keys (TEST 1 is the author, TEST 2 the payee;
// Ed25519 signatures are deterministic) and Sign's block and CID printed.
// The two entries without a display form were produced at commit 754bb89,
// before CurrencyDef had a Display field, so this test also proves that the
// field left every existing entry's bytes and CID as they were; the third,
// with one (key 7.4), when the field was added.
//
// A failure here is a break of the entry format: every stored block, every
// CID in every parent link and backup, and every signature would change
// meaning. Do not update the vectors to make it pass; a deliberate change
// needs a new entry version (entryVersion) and a migration.
const (
	goldenAuthorSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	goldenPayeeSeed  = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
)

type goldenEntry struct {
	name    string
	entry   func(author, payee did.DID, prev goldenEntry) *Entry
	signing string // hex, checked when set
	block   string // hex
	cid     string
}

func goldenKey(t *testing.T, seedHex string) (ed25519.PrivateKey, did.DID) {
	t.Helper()
	seed, err := hex.DecodeString(seedHex)
	require.NoError(t, err)
	key := ed25519.NewKeyFromSeed(seed)
	d, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return key, d
}

var goldenEntries = []goldenEntry{
	{
		name: "currency hours, no display form (seq 1)",
		entry: func(a, _ did.DID, _ goldenEntry) *Entry {
			return &Entry{Author: a, Seq: 1, Timestamp: 1_700_000_000_000, Kind: KindCurrency,
				Currency: &CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 10000}}
		},
		// "icn-ledger-entry-v1\n", then the map without key 10 (6 pairs, 0xa6).
		signing: "69636e2d6c65646765722d656e7472792d76310a" +
			"a60001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0201051b0000018bcfe56800060107a3" +
			"0165686f757273020203192710",
		block: "a70001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0201051b0000018bcfe56800060107a3" +
			"0165686f7572730202031927100a584066bef0ec7c8df9300efbe91050d578ff734988faf400c75e3a67861bbc365b1bd14d9c6187" +
			"0d450710ce0404b59f02443c711ae83e6eeb24c56a0d79cf159e03",
		cid: "bafireiai6qktt4yvzk5gm5y3tu6scbzdcmrq3ammfqi77hlki6lp6meos4",
	},
	{
		name: "transfer of 12.50 hours with a memo (seq 2)",
		entry: func(a, b did.DID, prev goldenEntry) *Entry {
			cur := CurrencyID{Symbol: "hours", Issuer: a}
			return &Entry{Author: a, Seq: 2, Prev: mustCID(prev.cid), Timestamp: 1_700_000_060_000, Kind: KindTransfer, Memo: "bread",
				Postings: []Posting{{Account: a, Currency: cur, Amount: -1250}, {Account: b, Currency: cur, Amount: 1250}}}
		},
		block: "a90001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a02020358240151122008f41539f315" +
			"caba66771b9d3d21072313230d818c2c11ff9d6a4796ff308e97051b0000018bcfe6526006020882a4015820d75a980182b10ab7d5" +
			"4bfed3c964073a0ee172f3daa62325af021a68f707511a0265686f757273035820d75a980182b10ab7d54bfed3c964073a0ee172f3" +
			"daa62325af021a68f707511a043904e1a40158203d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c02" +
			"65686f757273035820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a041904e2096562726561640a" +
			"58401a6f91002a21c3c9a2fc0e2c05d9f9a5ab5570c255c3815a47fbd53ee18357c813e609a901be817df6aa1effa0957b952c3f8f" +
			"1c447bc3a59b3c9a7b1941c402",
		cid: "bafireiaednhx7zngvscrner7a3saq33zaby3eqfudb6krkgyxdyctx3nmy",
	},
	{
		name: "currency kwh shown as kWh (seq 3)",
		entry: func(a, _ did.DID, prev goldenEntry) *Entry {
			return &Entry{Author: a, Seq: 3, Prev: mustCID(prev.cid), Timestamp: 1_700_000_120_000, Kind: KindCurrency,
				Currency: &CurrencyDef{Symbol: "kwh", Display: "kWh", Decimals: 3, CreditLimit: 50000}}
		},
		// The currency map has four pairs (0xa4), the last 04 636b5768: key 4, "kWh".
		block: "a80001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a020303582401511220041b4f7fe5a6" +
			"ac8516923f06e4086f790071b240b4187ca8a8d8b8f029df6d66051b0000018bcfe73cc0060107a401636b776802030319c35004636b" +
			"57680a5840bfe860fdb516d4c7f80241c0135c66d64cf7d68ef2a986a299a060a20fb8c446367d3759fa0d1c5fca3f6cd09bc98911" +
			"315abd171bd75d662515bf95a23bc30d",
		cid: "bafireicfj5kjewrv4o2c2i3yvysqh6k2577q6mwjt7pcut54d4o45mye4a",
	},
}

func mustCID(s string) cid.Cid {
	c, err := cid.Decode(s)
	if err != nil {
		panic(err)
	}
	return c
}

func TestGoldenEntries(t *testing.T) {
	key, author := goldenKey(t, goldenAuthorSeed)
	_, payee := goldenKey(t, goldenPayeeSeed)
	require.Equal(t, "did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z", author.String())
	require.Equal(t, "did:icn:z586Z7H2vpX9qNhN2T4e9Utugie3ogjbxzGaMtM3E6HR5", payee.String())
	l := New()
	var prev goldenEntry
	for _, g := range goldenEntries {
		t.Run(g.name, func(t *testing.T) {
			e := g.entry(author, payee, prev)
			if g.signing != "" {
				msg, err := e.SigningBytes()
				require.NoError(t, err)
				require.Equal(t, g.signing, hex.EncodeToString(msg), "the signing bytes changed: the entry format broke")
			}
			block, c, err := Sign(e, key)
			require.NoError(t, err)
			require.Equal(t, g.block, hex.EncodeToString(block), "the block changed: the entry format broke")
			require.Equal(t, g.cid, c.String(), "the CID changed: the entry format broke")

			// The golden bytes decode to the same entry and verify.
			want, err := hex.DecodeString(g.block)
			require.NoError(t, err)
			v, err := Verify(want, mustCID(g.cid))
			require.NoError(t, err)
			require.Equal(t, e, v.Entry)
			require.Equal(t, StatusAccepted, l.Add(v).Status)
		})
		prev = g
	}
	require.Equal(t, int64(1250), l.Balance(payee, CurrencyID{Symbol: "hours", Issuer: author}))
	kwh, ok := l.LookupCurrency(CurrencyID{Symbol: "kwh", Issuer: author})
	require.True(t, ok)
	require.Equal(t, "kWh", kwh.Def.DisplaySymbol())
	hours, _ := l.LookupCurrency(CurrencyID{Symbol: "hours", Issuer: author})
	require.Equal(t, "HOURS", hours.Def.DisplaySymbol())
}
