package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/car"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
)

// Currency symbols are case-insensitive: a currency created as HRS is hrs
// in its entry and topic, is paid and looked up in any letter case, and is
// shown as its issuer wrote it, on the issuer's node and on its peers.
func TestCurrencySymbolsFold(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	harness.Connect(t, a, b)
	ctx := context.Background()
	me, payee := a.Identity.DID.String(), b.Identity.DID.String()

	hrs, err := a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "HRS", Decimals: 2, CreditLimit: "100"})
	require.NoError(t, err)
	require.Equal(t, "hrs", hrs.Currency.Symbol)
	require.Equal(t, "HRS", hrs.Currency.Display)
	kwh, err := a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "kWh", Decimals: 3, CreditLimit: "50"})
	require.NoError(t, err)
	require.Equal(t, "kwh", kwh.Currency.Symbol)
	require.Equal(t, "kWh", kwh.Currency.Display)

	// The same symbol in another case is the same currency.
	for _, again := range []string{"hrs", "Hrs", "HRS"} {
		_, err = a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: again, CreditLimit: "1"})
		require.ErrorContains(t, err, "this node already issues the currency HRS", again)
	}
	_, err = a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "HRS!", CreditLimit: "1"})
	require.ErrorContains(t, err, `currency symbol "HRS!" is not valid: '!' is not allowed`)
	// A zero limit is refused for what it is, not as a payment.
	_, err = a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "gold", CreditLimit: "0.00", Decimals: 2})
	require.ErrorContains(t, err, "a credit limit of 0.00 is refused: in mutual credit every payment starts with somebody going below zero")
	require.NotContains(t, err.Error(), "pay a positive amount")

	// Paid in every case, and as SYMBOL@ISSUER.
	for _, cur := range []string{"hrs", "Hrs", "HRS", "HRS@" + me, "hrs@" + me} {
		e, err := a.Pay(ctx, controlapi.PayRequest{To: payee, Amount: "1.25", Currency: cur})
		require.NoError(t, err, cur)
		require.Equal(t, "accepted", e.Status, cur)
		require.Equal(t, "hrs", e.Postings[0].Currency)
		require.Equal(t, "HRS", e.Postings[0].Display)
	}
	_, err = a.Pay(ctx, controlapi.PayRequest{To: payee, Amount: "1", Currency: "KWH"})
	require.NoError(t, err)
	_, err = a.Pay(ctx, controlapi.PayRequest{To: payee, Amount: "1", Currency: "HRS@did:icn:nope"})
	require.ErrorContains(t, err, "invalid DID")
	_, err = a.Pay(ctx, controlapi.PayRequest{To: payee, Amount: "1", Currency: "GOLD"})
	require.ErrorContains(t, err, `unknown currency "GOLD"`)

	// Balances in any case, shown as written at creation.
	bs, err := a.Balances(payee, "hRs")
	require.NoError(t, err)
	require.Equal(t, []controlapi.Balance{{DID: payee, Currency: "hrs", Display: "HRS", Issuer: me, Balance: "6.25", Units: 625}}, bs)
	cs := currencies(t, a)
	require.Equal(t, []string{"HRS", "kWh"}, cs)

	// The peer learns both on their canonical topics and shows them alike.
	require.Eventually(t, sameState(a, b), 60*time.Second, 100*time.Millisecond, "b never caught up")
	require.Equal(t, cs, currencies(t, b))
	bs, err = b.Balances(payee, "KwH")
	require.NoError(t, err)
	require.Len(t, bs, 1)
	require.Equal(t, "kWh", bs[0].Display)
	require.Equal(t, "1.000", bs[0].Balance)
	topics := func() map[string]bool {
		out := map[string]bool{}
		for _, tp := range b.GossipTopics() {
			out[tp.Topic] = true
		}
		return out
	}
	require.Eventually(t, func() bool { ts := topics(); return ts["ledger:hrs"] && ts["ledger:kwh"] },
		30*time.Second, 50*time.Millisecond, "b never joined the currencies' topics: %v", topics())
	require.Len(t, topics(), 4, "ledger:*, ledger:hrs, ledger:kwh and trust:attestations, and no topic in another case")
	require.True(t, topics()[node.TrustTopic])

	// On the wire: HRS is the default display (uppercase), so its entry
	// carries no display form; kWh carries one.
	blocks := backupBlocks(t, a)
	for c, want := range map[string]string{hrs.CID: "", kwh.CID: "kWh"} {
		e, err := ledger.Decode(blocks[c])
		require.NoError(t, err)
		require.Equal(t, want, e.Currency.Display, c)
		require.True(t, ledger.ValidSymbol(e.Currency.Symbol))
	}
}

func TestLedgerTopicFolds(t *testing.T) {
	require.Equal(t, "ledger:hrs", node.LedgerTopic("HRS"))
	require.Equal(t, "ledger:hours", node.LedgerTopic("hours"))
	for in, want := range map[string]string{
		"ledger:HRS": "ledger:hrs", "ledger:Hours": "ledger:hours", "ledger:hours": "ledger:hours",
		"ledger:*": "ledger:*", "chat:General": "chat:General", "ledger:bad!": "ledger:bad!",
	} {
		require.Equal(t, want, node.CanonicalTopic(in), in)
	}
}

func currencies(t *testing.T, n *harness.Node) []string {
	t.Helper()
	cs, err := n.Client.Currencies(context.Background())
	require.NoError(t, err)
	var out []string
	for _, c := range cs {
		out = append(out, c.Display)
	}
	return out
}

// backupBlocks reads a node's blocks through `ledger backup`, by CID.
func backupBlocks(t *testing.T, n *harness.Node) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := n.Client.Backup(context.Background(), &buf, nil)
	require.NoError(t, err)
	r, err := car.NewReader(&buf)
	require.NoError(t, err)
	out := map[string][]byte{}
	for {
		c, b, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out[c.String()] = b
	}
}

// Two issuers of one symbol: a bare symbol is refused as ambiguous, in any
// letter case, and every SYMBOL@ISSUER the hint offers is accepted.
func TestAmbiguousSymbolHintOffersWorkingNames(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	harness.Connect(t, a, b)
	ctx := context.Background()
	_, err := a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "HRS", CreditLimit: "10"})
	require.NoError(t, err)
	_, err = b.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "Hrs", CreditLimit: "10"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(currencies(t, a)) == 2 }, 60*time.Second, 100*time.Millisecond)

	_, err = a.Client.Pay(ctx, controlapi.PayRequest{To: b.Identity.DID.String(), Amount: "1", Currency: "hRS"})
	var ce *controlapi.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, `several currencies are called "hRS"`, ce.Message)
	_, opts, found := strings.Cut(ce.Hint, "name one as SYMBOL@ISSUER: ")
	require.True(t, found, ce.Hint)
	names := strings.Split(opts, ", ")
	require.ElementsMatch(t, []string{"HRS@" + a.Identity.DID.String(), "Hrs@" + b.Identity.DID.String()}, names)
	for _, name := range names {
		_, err := a.Client.Pay(ctx, controlapi.PayRequest{To: b.Identity.DID.String(), Amount: "1", Currency: name})
		require.NoError(t, err, name)
	}
}
