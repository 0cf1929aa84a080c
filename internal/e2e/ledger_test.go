package e2e

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

func TestLedgerCommands(t *testing.T) {
	dir, other := tempDir(t), tempDir(t)
	me := initID(t, dir)
	payee := initID(t, other)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)

	def := decode[controlapi.Entry](t, ok(t, dir, "ledger", "currency", "create", "hours", "--decimals", "2", "--credit-limit", "100", "--json"))
	require.Equal(t, "currency", def.Kind)
	require.Equal(t, "100.00", def.Currency.CreditLimit)
	pay := decode[controlapi.Entry](t, ok(t, dir, "ledger", "pay", payee.DID, "12.50", "hours", "--memo", "bread", "--json"))
	require.Equal(t, "accepted", pay.Status)
	require.Equal(t, "bread", pay.Memo)

	bs := decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", "--json"))
	require.ElementsMatch(t, []controlapi.Balance{
		{DID: me.DID, Currency: "hours", Display: "hours", Issuer: me.DID, Balance: "-12.50", Units: -1250},
		{DID: payee.DID, Currency: "hours", Display: "hours", Issuer: me.DID, Balance: "12.50", Units: 1250},
	}, bs)
	one := decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", payee.DID, "--currency", "hours", "--json"))
	require.Len(t, one, 1)
	require.Equal(t, "12.50", one[0].Balance)

	// Refusals: over the limit, too many decimals, unknown currency, a bad DID,
	// a float-looking amount. Each says why; nothing is stored.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger", "pay", payee.DID, "90", "hours"}, "over the credit limit"},
		{[]string{"ledger", "pay", payee.DID, "1.234", "hours"}, "3 decimal places"},
		{[]string{"ledger", "pay", payee.DID, "1e3", "hours"}, "not a decimal number"},
		{[]string{"ledger", "pay", "--", payee.DID, "-5", "hours"}, "not a decimal number"},
		{[]string{"ledger", "pay", payee.DID, "0", "hours"}, "zero"},
		{[]string{"ledger", "pay", payee.DID, "1", "gold"}, "unknown currency"},
		{[]string{"ledger", "pay", "did:icn:nope", "1", "hours"}, "invalid DID"},
		{[]string{"ledger", "pay", me.DID, "1", "hours"}, "yourself"},
		{[]string{"ledger", "currency", "create", "Hours!"}, "not valid"},
		{[]string{"ledger", "currency", "create", "hours"}, "already issues"},
		{[]string{"ledger", "currency", "create", "gold", "--credit-limit", "0"}, "zero"},
		{[]string{"gossip", "leave", "ledger:hours"}, "carries the ledger"},
	} {
		r := fail(t, dir, c.args...)
		require.Contains(t, r.stderr, c.want, "%v", c.args)
	}

	cs := decode[[]controlapi.CurrencyInfo](t, ok(t, dir, "ledger", "currency", "list", "--json"))
	require.Equal(t, []controlapi.CurrencyInfo{{Symbol: "hours", Display: "hours", Issuer: me.DID, Decimals: 2, CreditLimit: "100.00"}}, cs)

	head := decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json"))
	require.Equal(t, 2, head.Entries)
	require.Len(t, head.Heads, 1)
	require.Equal(t, pay.CID, head.Heads[0])
	require.Len(t, head.StateHash, 64)
	hist := decode[[]controlapi.Entry](t, ok(t, dir, "ledger", "history", "--json"))
	require.Len(t, hist, 2)
	require.Empty(t, decode[[]controlapi.Quarantined](t, ok(t, dir, "ledger", "quarantine", "list", "--json")))
	rep := decode[controlapi.VerifyReport](t, ok(t, dir, "ledger", "verify", "--json"))
	require.True(t, rep.OK, "%v", rep.Problems)
	require.Equal(t, head.StateHash, rep.StateHash)

	_, metrics := d.get("/metrics")
	requireMetric(t, metrics, "icn_ledger_transactions_total 1")
	requireMetric(t, metrics, "icn_ledger_currencies_total 1")
	requireMetric(t, metrics, "icn_ledger_accounts_total 2")

	// The state survives a restart.
	d.stop()
	d = startDaemon(t, dir, cfg, p)
	require.Equal(t, head, decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json")))
	d.stop()
}

// Chaos, kill -9 during payments: a daemon killed with SIGKILL at a random
// moment of a stream of payments, round after round (ICN_CHAOS_ROUNDS,
// default 5; `make bench` runs 50), comes back each time with every
// payment it acknowledged, a clean verify, and balances that sum to zero.
func TestChaosKill9DuringPayments(t *testing.T) {
	rounds := chaosRounds(t, 5)
	n := startLedgerNode(t)
	dir, cfg, p, d := n.dir, n.cfg, n.ports, n.d
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked []string
	began := time.Now()
	var restart time.Duration
	for round := 0; round < rounds; round++ {
		// Pay from several goroutines until the daemon dies under them.
		pay := startPaying(t, dir, n.payee, fmt.Sprintf("r%d", round), 3)
		// Let some payments through, then kill at a random moment.
		want := 20 + r.IntN(40)
		require.Eventually(t, func() bool { return pay.count() >= want }, 60*time.Second, 5*time.Millisecond)
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
		d.wait(10 * time.Second)
		pay.stop()
		acked = append(acked, pay.acked...)

		t0 := time.Now()
		d = startDaemon(t, dir, cfg, p)
		restart += time.Since(t0)
		head := checkLedger(t, dir, acked, fmt.Sprintf("round %d", round))
		require.GreaterOrEqual(t, head.Entries, len(acked)+1, "round %d: the currency and every acknowledged payment", round)
	}
	require.Greater(t, len(acked), rounds*20)
	per := time.Since(began) / time.Duration(rounds)
	t.Logf("chaos kill -9: %d rounds, %d payments acknowledged, 0 lost; %s per round (restart to ready %s on average)",
		rounds, len(acked), per.Round(time.Millisecond), (restart / time.Duration(rounds)).Round(time.Millisecond))
	d.stop()
}
