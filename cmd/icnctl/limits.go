package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) limitsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "limits",
		Short: "Show connections, streams, memory and file descriptors in use against the node's resource limits",
		Long: "limits shows what the node's libp2p resource manager holds now against each limit: for the whole\n" +
			"node, for connections and streams still being set up, and for the peers using the most streams.\n" +
			"A limit more than 80% used is listed with the [limits] config key that raises it\n" +
			"(see docs/configuration.md#limits).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Limits)
			if err != nil {
				return err
			}
			return a.output(l, func(w io.Writer) { printLimits(w, l) })
		},
	}
}

func printLimits(w io.Writer, l controlapi.Limits) {
	printLimitScopes(w, []limitScope{
		{"whole node (system scope)", l.System},
		{"being set up: handshakes and unnegotiated streams (transient scope)", l.Transient},
	})
	fmt.Fprintln(w)

	pl := l.Peers.Limits
	fmt.Fprintf(w, "peers: %d holding resources; each may hold %s connections, %s streams (%s inbound), %s of memory\n",
		l.Peers.Count, limitCount(pl.Connections), limitCount(pl.Streams), limitCount(pl.StreamsInbound), limitBytesValue(pl.MemoryBytes))
	if len(l.Peers.Top) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PEER ID\tDID\tCONNECTIONS\tSTREAMS\tIN / OUT\tMEMORY")
		for _, p := range l.Peers.Top {
			d := p.DID
			if d == "" {
				d = "(unknown)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d / %d\t%s\n", p.PeerID, d,
				limitFraction(p.Connections.Total), limitFraction(p.Streams.Total),
				p.Streams.Inbound.Used, p.Streams.Outbound.Used, limitBytes(p.MemoryBytes))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "per IP address: at most %d connections (loopback is exempt; IPv6 counts per /56 network)\n", l.PerIP.Connections)
	cm := l.ConnManager
	fmt.Fprintf(w, "connection manager: once more than %d connections are open, closes the least useful down to %d (sparing those younger than %s)\n",
		cm.HighWater, cm.LowWater, cm.GracePeriod)
	fmt.Fprintln(w)

	if len(l.NearlyFull) == 0 {
		fmt.Fprintln(w, "no limit is more than 80% used")
	} else {
		fmt.Fprintln(w, "nearly full (more than 80% used):")
		for _, a := range l.NearlyFull {
			fmt.Fprintf(w, "  %s\n", a.Message)
		}
	}
	for _, s := range l.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}

type limitScope struct {
	title string
	use   controlapi.ScopeUsage
}

// printLimitScopes prints each scope's resources in columns aligned across
// all the scopes.
func printLimitScopes(w io.Writer, scopes []limitScope) {
	rows := make([][][4]string, len(scopes))
	var width [4]int
	for i, s := range scopes {
		u := s.use
		rows[i] = [][4]string{
			{"connections", limitPct(u.Connections.Total), "inbound " + limitPct(u.Connections.Inbound), "outbound " + limitPct(u.Connections.Outbound)},
			{"streams", limitPct(u.Streams.Total), "inbound " + limitPct(u.Streams.Inbound), "outbound " + limitPct(u.Streams.Outbound)},
			{"memory", limitBytes(u.MemoryBytes)},
			{"file descriptors", limitPct(u.FDs)},
		}
		for _, r := range rows[i] {
			for c, cell := range r {
				width[c] = max(width[c], len(cell))
			}
		}
	}
	for i, s := range scopes {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, s.title)
		for _, r := range rows[i] {
			line := fmt.Sprintf("  %-*s  %-*s  %-*s  %s", width[0], r[0], width[1], r[1], width[2], r[2], r[3])
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
}

// limitPct prints "12 / 504 (2%)".
func limitPct(u controlapi.Usage) string {
	return limitFraction(u) + limitPercent(u)
}

func limitFraction(u controlapi.Usage) string {
	return fmt.Sprintf("%d / %s", u.Used, limitCount(u.Limit))
}

func limitBytes(u controlapi.Usage) string {
	return formatByteSize(u.Used) + " / " + limitBytesValue(u.Limit) + limitPercent(u)
}

func limitPercent(u controlapi.Usage) string {
	if u.Limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%d%%)", u.Used*100/u.Limit)
}

func limitCount(limit int64) string {
	if limit < 0 {
		return "unlimited"
	}
	return fmt.Sprint(limit)
}

func limitBytesValue(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return formatByteSize(n)
}

// formatByteSize prints a byte count in binary units: 512 B, 1.5 KiB, 3.1 GiB.
func formatByteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return strings.TrimSpace(fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp]))
}
