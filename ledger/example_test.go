package ledger_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
)

// member is a DID and its key; fixed seeds keep the examples' output
// stable (Ed25519 signatures are deterministic).
type member struct {
	id  did.DID
	key ed25519.PrivateKey
}

func newMember(seedHex string) member {
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		log.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	id, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		log.Fatal(err)
	}
	return member{id, key}
}

// The RFC 8032 test keys.
func alice() member {
	return newMember("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
}
func bob() member {
	return newMember("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
}

// Build an entry, sign it, and check it as a receiving node does: Verify
// decodes the block strictly, checks the signature and the static rules,
// and that the bytes hash to the CID the block was announced under.
func ExampleSign() {
	alice := alice()
	e := &ledger.Entry{Author: alice.id, Seq: 1, Timestamp: 1_700_000_000_000, Kind: ledger.KindCurrency,
		Currency: &ledger.CurrencyDef{Symbol: "hours", Decimals: 2, CreditLimit: 10000}}
	block, c, err := ledger.Sign(e, alice.key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c, len(block), "bytes")

	v, err := ledger.Verify(block, c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Entry.Kind, v.Entry.Currency.Symbol, "by", v.Entry.Author)

	block[len(block)-1] ^= 1 // one bit of the signature
	_, err = ledger.Verify(block, cid.Undef)
	fmt.Println(err)
	// Output:
	// bafireiai6qktt4yvzk5gm5y3tu6scbzdcmrq3ammfqi77hlki6lp6meos4 134 bytes
	// currency hours by did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z
	// bad signature: the entry is not signed by its author did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z
}

// Amounts are exact decimals in the currency's smallest unit, never floats.
func ExampleParseAmount() {
	units, err := ledger.ParseAmount("12.5", 2)
	fmt.Println(units, err)
	_, err = ledger.ParseAmount("0.001", 2)
	fmt.Println(err)
	_, err = ledger.ParseAmount("1e3", 2)
	fmt.Println(err)
	// Output:
	// 1250 <nil>
	// amount "0.001" has 3 decimal places; this currency has 2
	// amount "1e3" is not a decimal number like 12 or 12.50
}

func ExampleFormatAmount() {
	fmt.Println(ledger.FormatAmount(-1250, 2))
	fmt.Println(ledger.FormatAmount(5, 3))
	fmt.Println(ledger.FormatAmount(42, 0))
	// Output:
	// -12.50
	// 0.005
	// 42
}

// Symbols are case-insensitive; entries carry the canonical form.
func ExampleCanonicalSymbol() {
	for _, s := range []string{"HRS", "kWh", "hours", "HRS!"} {
		sym, err := ledger.CanonicalSymbol(s)
		fmt.Printf("%q %v\n", sym, err)
	}
	fmt.Println(ledger.CurrencyDef{Symbol: "hrs"}.DisplaySymbol(), ledger.CurrencyDef{Symbol: "kwh", Display: "kWh"}.DisplaySymbol())
	// Output:
	// "hrs" <nil>
	// "kwh" <nil>
	// "hours" <nil>
	// "" currency symbol "HRS!" is not valid: '!' is not allowed (letters, digits, '_' and '-' are)
	// HRS kWh
}

// A Ledger is the state a set of entries makes, whatever order they arrive
// in: define a currency, pay, read the balances, and see a payment beyond
// the credit limit quarantined.
func ExampleLedger() {
	alice, bob := alice(), bob()
	l := ledger.New()
	add := func(m member, fill func(e *ledger.Entry)) ledger.Outcome {
		seq, prev, parents := l.Next(m.id)
		e := &ledger.Entry{Author: m.id, Seq: seq, Prev: prev, Parents: parents, Timestamp: 1_700_000_000_000}
		fill(e)
		block, c, err := ledger.Sign(e, m.key)
		if err != nil {
			log.Fatal(err)
		}
		v, err := ledger.Verify(block, c)
		if err != nil {
			log.Fatal(err)
		}
		return l.Add(v)
	}
	hours := ledger.CurrencyID{Symbol: "hours", Issuer: alice.id}
	pay := func(from, to member, units int64) func(e *ledger.Entry) {
		return func(e *ledger.Entry) {
			e.Kind = ledger.KindTransfer
			e.Postings = []ledger.Posting{{Account: from.id, Currency: hours, Amount: -units}, {Account: to.id, Currency: hours, Amount: units}}
		}
	}

	fmt.Println(add(alice, func(e *ledger.Entry) {
		e.Kind, e.Currency = ledger.KindCurrency, &ledger.CurrencyDef{Symbol: "hours", Display: "Hours", Decimals: 2, CreditLimit: 10000}
	}).Status)
	fmt.Println(add(alice, pay(alice, bob, 1250)).Status)
	fmt.Println(add(bob, pay(bob, alice, 250)).Status)
	over := add(alice, pay(alice, bob, 9500))
	fmt.Println(over.Status, "-", over.Reason[:len("over the credit limit")])

	cur, _ := l.LookupCurrency(hours)
	for _, b := range l.Balances() { // sorted by currency, then DID

		who := "alice"
		if b.Account == bob.id {
			who = "bob"
		}
		fmt.Println(who, ledger.FormatAmount(b.Units, cur.Def.Decimals), cur.Def.DisplaySymbol())
	}
	// Output:
	// accepted
	// accepted
	// accepted
	// quarantined - over the credit limit
	// bob 10.00 Hours
	// alice -10.00 Hours
}
