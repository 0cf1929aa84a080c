package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) trustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Attest trust in other members and see the trust graph",
		Long: "A trust attestation says how much this node's DID trusts another DID, from 0 to 1. Attestations are\n" +
			"signed, stored, and gossiped on trust:attestations; every node scores every DID from its own view\n" +
			"and puts it in a class: isolated (< 0.1), known, partner (>= 0.4) or federated (>= 0.7).\n" +
			"In [trust] mode = \"trusted\" the classes decide who may connect, write to the ledger and gossip\n" +
			"(docs/trust.md).",
	}
	cmd.AddCommand(a.trustAddCmd(), a.trustRemoveCmd(), a.trustListCmd(), a.trustShowCmd(), a.trustGraphCmd())
	return cmd
}

// scoreHint is what icnd says about a bad score too.
const scoreHint = "a trust score is a number from 0 (none) to 1 (full), e.g. 0.8; classes start at 0.1 (known), 0.4 (partner) and 0.7 (federated)"

// negativeScore turns pflag's reading of a negative score as a flag
// ("unknown shorthand flag: '0' in -0.2") into a score error.
func negativeScore(c *cobra.Command, err error) error {
	if _, arg, ok := strings.Cut(err.Error(), "unknown shorthand flag: "); ok {
		if _, v, ok := strings.Cut(arg, " in "); ok {
			if _, perr := strconv.ParseFloat(v, 64); perr == nil {
				return withHint(fmt.Errorf("score %s is not from 0 to 1", v), scoreHint)
			}
		}
	}
	return withHint(err, fmt.Sprintf("see `%s --help`", c.CommandPath()))
}

func (a *app) trustAddCmd() *cobra.Command {
	var labels []string
	var expires string
	cmd := &cobra.Command{
		Use:   "add DID SCORE",
		Short: "Attest that this node trusts DID with SCORE (0 to 1)",
		Long: "add signs an attestation with this node's DID key, stores it and gossips it. A later add for the\n" +
			"same DID replaces the earlier one everywhere.\n\n" +
			"  icnctl trust add did:icn:z… 0.8 --label coop:bakery\n" +
			"  icnctl trust add did:icn:z… 0.5 --expires 720h",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return withHint(fmt.Errorf("expected DID and SCORE, got %d arguments", len(args)), "usage: icnctl trust add DID SCORE [--label L]... [--expires DURATION]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			score, err := strconv.ParseFloat(args[1], 64)
			if err != nil || math.IsNaN(score) || math.IsInf(score, 0) {
				return withHint(fmt.Errorf("score %q is not a number", args[1]), scoreHint)
			}
			if expires != "" {
				if d, err := time.ParseDuration(expires); err != nil || d <= 0 {
					return withHint(fmt.Errorf("--expires %q is not a positive duration", expires), "give a duration such as 720h, or leave --expires out for an attestation that never lapses")
				}
			}
			req := controlapi.TrustAddRequest{DID: args[0], Score: score, Labels: labels, Expires: expires}
			e, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.TrustEdge, error) {
				return c.TrustAdd(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) {
				fmt.Fprintf(w, "trusting %s at %s%s (seq %d)\n", e.Subject, fmtScore(e.Score), labelText(e.Labels), e.Seq)
				if e.ExpiresAt != nil {
					fmt.Fprintf(w, "expires %s\n", e.ExpiresAt.Format(time.RFC3339))
				}
			})
		},
	}
	cmd.SetFlagErrorFunc(negativeScore)
	cmd.Flags().StringArrayVar(&labels, "label", nil, "a `LABEL` for the attestation (repeatable; 1-32 characters of a-z 0-9 : _ . -)")
	cmd.Flags().StringVar(&expires, "expires", "", "the attestation lapses after this `DURATION` (e.g. 720h; default never)")
	return cmd
}

func (a *app) trustRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove DID",
		Short: "Revoke this node's attestation about DID",
		Long:  "remove signs a revocation (an attestation with score 0) that supersedes the earlier one on every node.",
		Args:  exactlyOneDID("icnctl trust remove DID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.TrustEdge, error) {
				return c.TrustRemove(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(e, func(w io.Writer) { fmt.Fprintf(w, "no longer trusting %s (seq %d)\n", e.Subject, e.Seq) })
		},
	}
}

func exactlyOneDID(usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return withHint(fmt.Errorf("expected one DID, got %d arguments", len(args)), "usage: "+usage)
		}
		return nil
	}
}

func (a *app) trustListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List this node's own attestations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) ([]controlapi.TrustEdge, error) {
				return c.TrustList(ctx)
			})
			if err != nil {
				return err
			}
			return a.output(es, func(w io.Writer) {
				if len(es) == 0 {
					fmt.Fprintln(w, "this node attests no trust yet (icnctl trust add DID SCORE)")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SUBJECT\tSCORE\tLABELS\tEXPIRES")
				for _, e := range es {
					exp := "never"
					if e.ExpiresAt != nil {
						exp = e.ExpiresAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Subject, fmtScore(e.Score), strings.Join(e.Labels, ","), exp)
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) trustShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show DID",
		Short: "Show this node's view of DID: direct attestation, score, class and the paths that gave it",
		Args:  exactlyOneDID("icnctl trust show DID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.TrustView, error) {
				return c.TrustShow(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(v, func(w io.Writer) {
				fmt.Fprintf(w, "%s\nscore %s, class %s (mode %s: connect %s, ledger %s, gossip %s)\n", v.DID, fmtScore(v.Score), v.Class, v.Mode,
					yesNo(v.MayConnect), yesNo(v.MayLedger), yesNo(v.MayGossip))
				if v.Direct != nil {
					fmt.Fprintf(w, "direct: this node attests %s%s\n", fmtScore(v.Direct.Score), labelText(v.Direct.Labels))
				}
				for _, p := range v.Paths {
					fmt.Fprintf(w, "path %s: %s\n", fmtScore(p.Score), strings.Join(p.Via, " -> "))
				}
			})
		},
	}
}

func (a *app) trustGraphCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "graph",
		Short: "Print every edge this node holds and every DID's score",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.TrustGraph, error) {
				return c.TrustGraph(ctx)
			})
			if err != nil {
				return err
			}
			return a.output(g, func(w io.Writer) {
				fmt.Fprintf(w, "%d edges, %d scored DIDs (--json lists the edges)\n", len(g.Edges), len(g.Scores))
				if len(g.Scores) == 0 {
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SCORE\tCLASS\tDID")
				for _, s := range g.Scores {
					self := ""
					if s.DID == g.Self {
						self = "  (this node)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s%s\n", fmtScore(s.Score), s.Class, s.DID, self)
				}
				tw.Flush()
			})
		},
	}
}

// fmtScore prints a score to 6 significant digits: a computed score
// carries float noise (0.36000000000000004); --json keeps it exact.
func fmtScore(s float64) string { return strconv.FormatFloat(s, 'g', 6, 64) }

func labelText(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return " [" + strings.Join(ls, ", ") + "]"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
