package ledger

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonicalSymbol(t *testing.T) {
	for in, want := range map[string]string{
		"hours": "hours", "HRS": "hrs", "Hrs": "hrs", "kWh": "kwh", "USD": "usd",
		"a": "a", "A-b_9": "a-b_9", "ABCDEFGHIJKLMNOP": "abcdefghijklmnop",
	} {
		got, err := CanonicalSymbol(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
		require.True(t, ValidSymbol(got), in)
	}
	for in, why := range map[string]string{
		"":                  "empty",
		"Hours!":            `'!' is not allowed`,
		"1hrs":              "start with a letter",
		"_x":                "start with a letter",
		"ABCDEFGHIJKLMNOPQ": "17 bytes, at most 16",
		"café":              `'é' is not allowed`,
		"\u212arw":          "start with a letter", // KELVIN SIGN folds to k under Unicode rules, not here
		"two words":         `' ' is not allowed`,
	} {
		_, err := CanonicalSymbol(in)
		var se *SymbolError
		require.True(t, errors.As(err, &se), "%q: %v", in, err)
		require.Equal(t, in, se.Symbol)
		require.ErrorContains(t, err, why, in)
	}
	// Only canonical symbols are valid in entries.
	require.False(t, ValidSymbol("HRS"))
	require.False(t, ValidSymbol("Hrs"))
}

func TestDisplayForms(t *testing.T) {
	for typed, want := range map[string]string{"HRS": "", "USD": "", "hours": "hours", "Hrs": "Hrs", "kWh": "kWh", "A1": ""} {
		require.Equal(t, want, DisplayFor(typed), typed)
	}
	require.Equal(t, "HRS", CurrencyDef{Symbol: "hrs"}.DisplaySymbol())
	require.Equal(t, "Hrs", CurrencyDef{Symbol: "hrs", Display: "Hrs"}.DisplaySymbol())
	require.Equal(t, "hours", CurrencyDef{Symbol: "hours", Display: "hours"}.DisplaySymbol())
}

// The ledger core refuses entries whose symbols are not canonical, so no
// node can tell HRS@x and hrs@x apart: every honest node derives the same
// currency from the same entry.
func TestVerifyRefusesNonCanonicalSymbols(t *testing.T) {
	alice, bob, cur, def := fixture(t)
	cases := map[string]struct {
		e    *Entry
		want string
	}{
		"uppercase definition": {&Entry{Seq: 2, Prev: def.CID, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "HRS", CreditLimit: 1}},
			`currency symbol "HRS" is not in canonical form: an entry carries it lowercase, "hrs"`},
		"mixed-case posting": {&Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer,
			Postings: pay(alice.id, bob.id, CurrencyID{Symbol: "Hours", Issuer: cur.Issuer}, 5)},
			`posting 0: currency symbol "Hours" is not in canonical form`},
		"display of another symbol": {&Entry{Seq: 2, Prev: def.CID, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "hrs", Display: "Hours", CreditLimit: 1}},
			`display form "Hours" is not the symbol in another letter case`},
		"display that is the default": {&Entry{Seq: 2, Prev: def.CID, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "hrs", Display: "HRS", CreditLimit: 1}},
			"is the default"},
		"display with a Unicode fold": {&Entry{Seq: 2, Prev: def.CID, Kind: KindCurrency, Currency: &CurrencyDef{Symbol: "kw", Display: "\u212aw", CreditLimit: 1}},
			"not the symbol in another letter case"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.e.Author = alice.id
			block, c, err := Sign(tc.e, alice.key)
			require.NoError(t, err)
			_, err = Verify(block, c)
			var re *RuleError
			require.True(t, errors.As(err, &re), "want a RuleError, got %v", err)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// A display form survives encoding, decoding, a ledger and a snapshot of
// it, and shows in the refusal of a payment over the limit.
func TestDisplayRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alice, bob := newMember(t, r), newMember(t, r)
	d := &CurrencyDef{Symbol: "hrs", Display: "Hrs", Decimals: 1, CreditLimit: 100}
	def := sign(t, alice, &Entry{Seq: 1, Kind: KindCurrency, Currency: d})
	back, err := Decode(def.Block)
	require.NoError(t, err)
	require.Equal(t, *d, *back.Currency)

	l := New()
	require.Equal(t, StatusAccepted, l.Add(def).Status)
	cur := CurrencyID{Symbol: "hrs", Issuer: alice.id}
	c, ok := l.LookupCurrency(cur)
	require.True(t, ok)
	require.Equal(t, "Hrs", c.Def.DisplaySymbol())

	over := sign(t, alice, &Entry{Seq: 2, Prev: def.CID, Kind: KindTransfer, Postings: pay(alice.id, bob.id, cur, 101)})
	out := l.Add(over)
	require.Equal(t, StatusQuarantined, out.Status)
	require.Contains(t, out.Reason, "to -10.1 Hrs, below the limit of -10.0")

	snap, err := l.MarshalBinary()
	require.NoError(t, err)
	l2, err := Restore(snap)
	require.NoError(t, err)
	require.Equal(t, l.Currencies(), l2.Currencies())
}
