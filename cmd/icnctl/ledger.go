package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) ledgerCmd() *cobra.Command {
	cmd := group("ledger", "The mutual-credit ledger: currencies, payments, balances")
	currency := group("currency", "Currencies issued by this node's DID")
	currency.AddCommand(a.currencyCreateCmd(), a.currencyListCmd())
	quarantine := group("quarantine", "Entries the ledger holds aside, with the reason")
	quarantine.AddCommand(a.quarantineListCmd())
	cmd.AddCommand(currency, a.payCmd(), a.balanceCmd(), a.historyCmd(), a.headCmd(), a.verifyCmd(), a.syncCmd(), a.backupCmd(), a.restoreCmd(), quarantine)
	return cmd
}

func (a *app) currencyCreateCmd() *cobra.Command {
	var decimals uint8
	var limit string
	cmd := &cobra.Command{
		Use:   "create SYMBOL [--decimals N] [--credit-limit N]",
		Short: "Define a currency issued by this node's DID",
		Long: "create defines a currency issued by this node's DID. SYMBOL is 1-16 letters, digits, '_' or '-', starting\n" +
			"with a letter, in any letter case: HRS, Hrs and hrs are one currency, which entries and the gossip topic\n" +
			"(ledger:hrs) carry in lowercase. It is shown as written here (the symbol in uppercase for currencies defined\n" +
			"without a display form), and every command accepts it in any case.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := controlapi.CurrencyRequest{Symbol: args[0], Decimals: decimals, CreditLimit: limit}
			e, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.Entry, error) {
				return c.CreateCurrency(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) {
				fmt.Fprintf(w, "created currency %s (%d decimals, credit limit %s) issued by %s\nentry %s\n",
					shown(e.Currency.Display, e.Currency.Symbol), e.Currency.Decimals, e.Currency.CreditLimit, e.Author, e.CID)
			})
		},
	}
	cmd.Flags().Uint8Var(&decimals, "decimals", 2, "decimal places of the currency (0-18)")
	cmd.Flags().StringVar(&limit, "credit-limit", "100", "how far below zero any account may go, in the currency's unit (e.g. 100 or 100.00); must be positive, since every payment starts with somebody below zero")
	return cmd
}

func (a *app) currencyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the currencies defined in the ledger",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Currencies)
			if err != nil {
				return err
			}
			return a.output(cs, func(w io.Writer) {
				if len(cs) == 0 {
					fmt.Fprintln(w, "no currencies yet; define one with `icnctl ledger currency create SYMBOL`")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SYMBOL\tDECIMALS\tCREDIT LIMIT\tISSUER")
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", shown(c.Display, c.Symbol), c.Decimals, c.CreditLimit, c.Issuer)
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) payCmd() *cobra.Command {
	var memo string
	cmd := &cobra.Command{
		Use:   "pay DID AMOUNT CURRENCY [--memo TEXT]",
		Short: "Pay another member from this node's account",
		Long: "pay moves AMOUNT (a decimal such as 12.50, never a float) of CURRENCY from this node's DID to DID.\n" +
			"CURRENCY is a symbol in any letter case (HRS or hrs), or SYMBOL@ISSUER-DID when two issuers use one symbol.\n" +
			"It is refused, and nothing is written, if it would take this node's balance below the currency's credit limit.",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := did.Parse(args[0]); err != nil {
				return withHint(err, "the payee is a DID like did:icn:z…; `icnctl id show` on their node prints it")
			}
			req := controlapi.PayRequest{To: args[0], Amount: args[1], Currency: args[2], Memo: memo}
			e, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.Entry, error) {
				return c.Pay(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) {
				cur := args[2]
				for _, p := range e.Postings {
					cur = shown(p.Display, p.Currency)
				}
				fmt.Fprintf(w, "paid %s %s to %s\nentry %s (seq %d)\n", args[1], cur, args[0], e.CID, e.Seq)
			})
		},
	}
	cmd.Flags().StringVar(&memo, "memo", "", "a note stored with the payment (at most 256 bytes)")
	return cmd
}

func (a *app) balanceCmd() *cobra.Command {
	var currency string
	cmd := &cobra.Command{
		Use:   "balance [DID] [--currency C]",
		Short: "Show balances (all accounts, or one DID)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := optionalDID(args)
			if err != nil {
				return err
			}
			bs, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) ([]controlapi.Balance, error) {
				return c.Balances(ctx, who, currency)
			})
			if err != nil {
				return err
			}
			return a.output(bs, func(w io.Writer) {
				if len(bs) == 0 {
					fmt.Fprintln(w, "no balances yet")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "DID\tCURRENCY\tBALANCE\t")
				for _, b := range bs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t\n", b.DID, shown(b.Display, b.Currency), b.Balance)
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&currency, "currency", "", "only this currency (SYMBOL or SYMBOL@ISSUER, any letter case)")
	return cmd
}

func (a *app) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history [DID]",
		Short: "List the entries written by or paying a DID (default: this node)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := optionalDID(args)
			if err != nil {
				return err
			}
			es, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) ([]controlapi.Entry, error) {
				return c.History(ctx, who)
			})
			if err != nil {
				return err
			}
			return a.output(es, func(w io.Writer) {
				if len(es) == 0 {
					fmt.Fprintln(w, "no entries")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tAUTHOR\tSEQ\tWHAT\tSTATUS")
				for _, e := range es {
					when := time.UnixMilli(e.Timestamp).UTC().Format("2006-01-02 15:04:05")
					status := e.Status
					if e.Reason != "" {
						status += " (" + e.Reason + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", when, short(e.Author), e.Seq, describe(e), status)
				}
				tw.Flush()
			})
		},
	}
}

// optionalDID checks the optional DID argument; "" when absent.
func optionalDID(args []string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	if _, err := did.Parse(args[0]); err != nil {
		return "", withHint(err, "give a DID like did:icn:z…")
	}
	return args[0], nil
}

// shown is how a currency is displayed: its display form, or the symbol
// when the daemon sent none (one older than display forms).
func shown(display, symbol string) string {
	if display != "" {
		return display
	}
	return symbol
}

func short(d string) string {
	if len(d) > 20 {
		return d[:16] + "…"
	}
	return d
}

func describe(e controlapi.Entry) string {
	if e.Currency != nil {
		return fmt.Sprintf("define %s (%d decimals, limit %s)", shown(e.Currency.Display, e.Currency.Symbol), e.Currency.Decimals, e.Currency.CreditLimit)
	}
	var parts []string
	for _, p := range e.Postings {
		if p.Units > 0 {
			parts = append(parts, fmt.Sprintf("%s %s to %s", p.Amount, shown(p.Display, p.Currency), short(p.DID)))
		}
	}
	s := "pay " + strings.Join(parts, ", ")
	if e.Memo != "" {
		s += fmt.Sprintf(" %q", e.Memo)
	}
	return s
}

func (a *app) headCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "head",
		Short: "Show the ledger's heads, entry count and state hash (equal on nodes with equal state)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Head)
			if err != nil {
				return err
			}
			return a.output(h, func(w io.Writer) {
				fmt.Fprintf(w, "state_hash:  %s\nentries:     %d (%d accepted, %d quarantined; %d pending)\n", h.StateHash, h.Entries, h.Accepted, h.Quarantined, h.Pending)
				for i, c := range h.Heads {
					label := "heads:"
					if i > 0 {
						label = ""
					}
					fmt.Fprintf(w, "%-12s %s\n", label, c)
				}
			})
		},
	}
}

func (a *app) verifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-check every stored entry: hashes, signatures, rules, balances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			progress := a.progress("verifying")
			rep, err := call(a, cmd.Context(), time.Hour, func(c *controlapi.Client, ctx context.Context) (controlapi.VerifyReport, error) {
				return c.Verify(ctx, progress)
			})
			a.progressDone()
			if err != nil {
				return err
			}
			if err := a.output(rep, func(w io.Writer) {
				fmt.Fprintf(w, "checked %d entries: %d accepted, %d quarantined, %d pending\nstate_hash: %s\n", rep.Blocks, rep.Accepted, rep.Quarantined, rep.Pending, rep.StateHash)
				if rep.OK {
					fmt.Fprintln(w, "ok: every hash, signature and balance checks out")
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "problem: %s\n", p)
				}
			}); err != nil {
				return err
			}
			if !rep.OK {
				return fmt.Errorf("the ledger has %d problems", len(rep.Problems))
			}
			return nil
		},
	}
}

// syncTimeout bounds `ledger sync`; icnd bounds each pull to 10 minutes.
const syncTimeout = 15 * time.Minute

func (a *app) syncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync [PEER]",
		Short: "Pull missing ledger entries now, from every connected peer or from PEER (a DID or peer ID)",
		Long: "sync asks icnd to pull, now, the entries its peers hold and it lacks (icnd also does this by itself\n" +
			"when a peer connects, when a peer announces a different state, and every 30 s). A pull already running\n" +
			"from a peer is joined, not repeated. On a terminal it draws a progress line on stderr; at the end it\n" +
			"prints, per peer, the entries received, new and rejected. Exit status 1 if no peer could be pulled from\n" +
			"or a pull failed.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req controlapi.SyncRequest
			if len(args) == 1 {
				req.Peer = args[0]
			}
			progress := a.progress("syncing")
			rep, err := call(a, cmd.Context(), syncTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.SyncReport, error) {
				return c.Sync(ctx, req, progress)
			})
			a.progressDone()
			if err != nil {
				return err
			}
			if err := a.output(rep, func(w io.Writer) { printSyncReport(w, rep) }); err != nil {
				return err
			}
			if rep.Failed > 0 {
				return withHint(fmt.Errorf("the pull failed from %d of %d peers", rep.Failed, len(rep.Peers)),
					"the error of each is above; `icnctl network peers` shows who is still connected")
			}
			return nil
		},
	}
}

func printSyncReport(w io.Writer, rep controlapi.SyncReport) {
	notes := make([]string, len(rep.Peers))
	anyNote := false
	for i, p := range rep.Peers {
		switch {
		case p.Error != "":
			notes[i] = "error: " + p.Error
		case p.Joined:
			notes[i] = "joined a pull already running"
		}
		anyNote = anyNote || notes[i] != ""
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...any) {
		format := "%s\t%s\t%d\t%d\t%d\n"
		if anyNote {
			format = "%s\t%s\t%d\t%d\t%d\t%s\n"
		} else {
			cells = cells[:5]
		}
		fmt.Fprintf(tw, format, cells...)
	}
	if anyNote {
		fmt.Fprintln(tw, "PEER ID\tDID\tRECEIVED\tNEW\tREJECTED\tNOTE")
	} else {
		fmt.Fprintln(tw, "PEER ID\tDID\tRECEIVED\tNEW\tREJECTED")
	}
	for i, p := range rep.Peers {
		d := p.DID
		if d == "" {
			d = "(unknown)"
		}
		row(p.PeerID, short(d), p.Received, p.New, p.Rejected, notes[i])
	}
	peers := "peers"
	if len(rep.Peers) == 1 {
		peers = "peer"
	}
	row(fmt.Sprintf("total (%d %s)", len(rep.Peers), peers), "", rep.Received, rep.New, rep.Rejected, "")
	tw.Flush()
	if rep.Rejected > 0 {
		fmt.Fprintf(w, "%d entries were rejected (malformed, badly signed or breaking a rule): the peers that sent them lose gossip score; icnd logs each one\n", rep.Rejected)
	}
}

// progress returns a callback that draws a progress line on stderr when
// stderr is a terminal, and does nothing otherwise (scripts, --json).
func (a *app) progress(what string) func(done, total int) {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(done, total int) {
		pct := 100
		if total > 0 {
			pct = done * 100 / total
		}
		fmt.Fprintf(a.stderr, "\r%s: %d / %d entries (%d%%)", what, done, total, pct)
		a.drewProgress = true
	}
}

func (a *app) progressDone() {
	if a.drewProgress {
		fmt.Fprintln(a.stderr)
		a.drewProgress = false
	}
}

func (a *app) quarantineListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List quarantined entries and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			qs, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).QuarantineList)
			if err != nil {
				return err
			}
			return a.output(qs, func(w io.Writer) {
				if len(qs) == 0 {
					fmt.Fprintln(w, "the quarantine is empty")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "AUTHOR\tSEQ\tCID\tREASON")
				for _, q := range qs {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", short(q.Author), q.Seq, q.CID, q.Reason)
				}
				tw.Flush()
			})
		},
	}
}
