package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// hintCommands are the icnctl commands a hint suggests, in backquotes.
var hintCommands = regexp.MustCompile("`(icnctl [^`]*)`")

// runHints runs every command that r's hint suggests and requires each to
// be accepted: no hint may send the user to a command that is refused.
func runHints(t *testing.T, dir string, r result) int {
	t.Helper()
	_, hint, found := strings.Cut(r.stderr, "icnctl: hint: ")
	if !found {
		return 0
	}
	n := 0
	for _, m := range hintCommands.FindAllStringSubmatch(hint, -1) {
		args := strings.Fields(m[1])[1:]
		out := ctl(t, dir, args...)
		require.Equal(t, 0, out.code, "the hint %q suggests `%s`, which is refused:\n%s", strings.TrimSpace(hint), m[1], out.stderr)
		n++
	}
	return n
}

// Currency symbols on the real binaries: typed in any letter case, shown as
// written at creation, and every hint on the way suggests only commands
// that are then accepted (issue 10, defect 5: `unknown currency "HRS"`
// used to hint `create HRS`, which was refused).
func TestCurrencySymbolHints(t *testing.T) {
	dir, other := tempDir(t), tempDir(t)
	me := initID(t, dir)
	payee := initID(t, other)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)

	// The reported case: paying in a currency not yet created hints its
	// creation, and the hinted command works.
	r := fail(t, dir, "ledger", "pay", payee.DID, "5", "HRS")
	require.Contains(t, r.stderr, `unknown currency "HRS"`)
	require.Contains(t, r.stderr, "`icnctl ledger currency create HRS`")
	require.Equal(t, 1, runHints(t, dir, r))
	out := ok(t, dir, "ledger", "pay", payee.DID, "5", "hrs")
	require.Contains(t, out, "paid 5 HRS to "+payee.DID)

	// Every other refusal in the currency paths: each hint's commands run.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger", "currency", "create", "Hrs"}, "this node already issues the currency HRS"},
		{[]string{"ledger", "currency", "create", "HRS!"}, `currency symbol "HRS!" is not valid: '!' is not allowed`},
		{[]string{"ledger", "currency", "create", "9lives"}, "must start with a letter"},
		{[]string{"ledger", "currency", "create", "gold", "--credit-limit", "0"}, "every payment starts with somebody going below zero"},
		{[]string{"ledger", "pay", payee.DID, "1", "EURO"}, `unknown currency "EURO"`},
		{[]string{"ledger", "pay", payee.DID, "1", "hrs@" + payee.DID}, "unknown currency"},
		{[]string{"ledger", "pay", payee.DID, "1", "hrs@did:icn:nope"}, "invalid DID"},
		{[]string{"ledger", "pay", payee.DID, "1", "HRS!"}, "not valid"},
		{[]string{"ledger", "balance", "--currency", "Coop"}, `unknown currency "Coop"`},
		{[]string{"ledger", "balance", "--currency", "x y"}, "not valid"},
		{[]string{"ledger", "pay", payee.DID, "500", "Hrs"}, "over the credit limit"},
	} {
		r := fail(t, dir, c.args...)
		require.Contains(t, r.stderr, c.want, "%v", c.args)
		require.NotContains(t, r.stderr, "pay a positive amount", "%v", c.args)
		runHints(t, dir, r)
	}
	// The hinted creations ran: EURO, typed in the default case, has no
	// display form of its own; Coop keeps the case it was written in.
	cs := decode[[]controlapi.CurrencyInfo](t, ok(t, dir, "ledger", "currency", "list", "--json"))
	var shown []string
	for _, c := range cs {
		shown = append(shown, c.Symbol+"="+c.Display)
	}
	require.Equal(t, []string{"coop=Coop", "euro=EURO", "hrs=HRS"}, shown)

	// The zero limit's hint names the flag value to give instead.
	ok(t, dir, "ledger", "currency", "create", "gold", "--credit-limit", "100")

	// Shown as written, accepted in any case, in text and JSON.
	list := ok(t, dir, "ledger", "currency", "list")
	require.Regexp(t, `(?m)^HRS\s+2\s+100\.00\s+`+me.DID, list)
	require.Regexp(t, `(?m)^gold\s+2\s+100\.00\s+`, list)
	bal := ok(t, dir, "ledger", "balance", payee.DID, "--currency", "Hrs")
	require.Regexp(t, payee.DID+`\s+HRS\s+5\.00`, bal)
	bs := decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", payee.DID, "--currency", "HRS@"+me.DID, "--json"))
	require.Equal(t, []controlapi.Balance{{DID: payee.DID, Currency: "hrs", Display: "HRS", Issuer: me.DID, Balance: "5.00", Units: 500}}, bs)
	hist := ok(t, dir, "ledger", "history")
	require.Contains(t, hist, "define HRS (2 decimals, limit 100.00)")
	require.Contains(t, hist, "pay 5.00 HRS to ")
	require.Contains(t, hist, "define gold (2 decimals, limit 100.00)")

	// The topic is the canonical one, and is named in any case.
	topics := decode[[]controlapi.GossipTopic](t, ok(t, dir, "gossip", "topics", "--json"))
	var names []string
	for _, tp := range topics {
		names = append(names, tp.Topic)
	}
	require.Contains(t, names, "ledger:hrs")
	require.NotContains(t, names, "ledger:HRS")
	r = fail(t, dir, "gossip", "leave", "ledger:HRS")
	require.Contains(t, r.stderr, "carries the ledger")
	d.stop()
}
