package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) blockCmd() *cobra.Command {
	var forFlag, reasonFlag string
	cmd := &cobra.Command{
		Use:   "block PEER_ID|DID",
		Short: "Refuse a peer in both directions and disconnect it now",
		Long: "block refuses every connection to and from a peer, and closes the ones open now.\n" +
			"Unlike `network disconnect`, which redials undo within seconds, a block holds until it\n" +
			"lapses (--for) or `icnctl network unblock`, and survives restarts of icnd.\n\n" +
			"  icnctl network block 12D3KooW… --reason \"floods gossip\"\n" +
			"  icnctl network block did:icn:z… --for 24h --reason \"bad ledger entries\"\n\n" +
			"Blocking a DID refuses every peer ID bound to it, including the keys it rotates to later.\n" +
			"Blocking a peer ID refuses that key only: after the node rotates its key it is back.",
		Args: oneTarget("icnctl network block PEER_ID|DID [--for DURATION] [--reason TEXT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if forFlag != "" {
				d, err := time.ParseDuration(forFlag)
				if err != nil {
					return withHint(fmt.Errorf("--for %q is not a duration", forFlag), blockDurationHint)
				}
				if d <= 0 {
					return withHint(fmt.Errorf("--for %s: a block lasts a positive time", forFlag), blockDurationHint)
				}
			}
			req := controlapi.BlockRequest{Target: args[0], For: forFlag, Reason: reasonFlag}
			res, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.BlockResult, error) {
				return c.Block(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				verb := "blocked"
				if res.Replaced {
					verb = "block replaced for"
				}
				fmt.Fprintf(w, "%s %s %s until %s\n", verb, kindName(res.Blocked.Kind), res.Blocked.Target, untilText(res.Blocked.ExpiresAt))
				if res.Blocked.Kind == "did" && len(res.Blocked.Peers) > 0 {
					fmt.Fprintf(w, "refusing peer IDs: %s\n", strings.Join(res.Blocked.Peers, ", "))
				}
				for _, p := range res.Disconnected {
					fmt.Fprintf(w, "disconnected %s\n", p)
				}
			})
		},
	}
	cmd.Flags().StringVar(&forFlag, "for", "", "how long the block lasts, a `DURATION` such as 30m, 24h or 168h (default: until unblocked)")
	cmd.Flags().StringVar(&reasonFlag, "reason", "", "a `TEXT` for operators, shown by network blocked and in the log")
	return cmd
}

// oneTarget accepts exactly one argument, and names the usage otherwise.
func oneTarget(usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return withHint(fmt.Errorf("expected one PEER_ID or DID, got %d arguments", len(args)),
				"usage: "+usage+"; `icnctl network blocked` lists the blocks, `icnctl network peers` the peers")
		}
		return nil
	}
}

const blockDurationHint = "--for takes a positive duration such as 30m, 24h or 168h; leave it out to block until `icnctl network unblock`"

// kindName is how text output names an entry's kind.
func kindName(kind string) string {
	if kind == "did" {
		return "DID"
	}
	return kind
}

func untilText(t *time.Time) string {
	if t == nil {
		return "unblocked"
	}
	return fmt.Sprintf("%s (in %s)", t.Local().Format(time.RFC3339), time.Until(*t).Round(time.Second))
}

func (a *app) unblockCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unblock PEER_ID|DID",
		Short: "Lift a block: the peer may connect again",
		Args:  oneTarget("icnctl network unblock PEER_ID|DID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.UnblockResult, error) {
				return c.Unblock(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				fmt.Fprintf(w, "unblocked %s %s\n", kindName(res.Unblocked.Kind), res.Unblocked.Target)
			})
		},
	}
}

func (a *app) blockedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "blocked",
		Short: "List the blocks in force: target, kind, reason, when made, when they lapse",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Blocked)
			if err != nil {
				return err
			}
			return a.output(list, func(w io.Writer) {
				if len(list) == 0 {
					fmt.Fprintln(w, "nothing blocked")
					return
				}
				var buf bytes.Buffer
				tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TARGET\tKIND\tCREATED\tEXPIRES\tREASON")
				for _, e := range list {
					expires := "never"
					if e.ExpiresAt != nil {
						expires = e.ExpiresAt.Local().Format(time.RFC3339)
					}
					reason := e.Reason
					if reason == "" {
						reason = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Target, e.Kind, e.CreatedAt.Local().Format(time.RFC3339), expires, reason)
					for _, p := range e.Peers {
						fmt.Fprintf(tw, "  peer %s\t\t\t\t\n", p)
					}
				}
				tw.Flush()
				// The peer rows leave empty cells padded to the column width.
				for _, line := range strings.SplitAfter(buf.String(), "\n") {
					if line != "" {
						fmt.Fprintln(w, strings.TrimRight(line, " \n"))
					}
				}
			})
		},
	}
}
