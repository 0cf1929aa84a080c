package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running node: DID, peer ID, listen addresses, peers, version, uptime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Status)
			if err != nil {
				return err
			}
			return a.output(s, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "did:\t%s\n", s.DID)
				fmt.Fprintf(tw, "peer_id:\t%s\n", s.PeerID)
				fmt.Fprintf(tw, "listen_addrs:\t%s\n", strings.Join(s.ListenAddrs, "\n\t"))
				if !slices.Equal(s.AnnounceAddrs, s.ListenAddrs) {
					fmt.Fprintf(tw, "announce_addrs:\t%s\n", strings.Join(s.AnnounceAddrs, "\n\t"))
				}
				fmt.Fprintf(tw, "peers:\t%d\n", s.Peers)
				fmt.Fprintf(tw, "dht_routing_table:\t%d\n", s.DHTRoutingTable)
				fmt.Fprintf(tw, "version:\t%s\n", s.Version)
				fmt.Fprintf(tw, "uptime:\t%s\n", (time.Duration(s.UptimeSeconds) * time.Second).String())
				fmt.Fprintf(tw, "ready:\t%t\n", s.Ready)
				if s.Problem != "" {
					fmt.Fprintf(tw, "problem:\t%s\n", s.Problem)
				}
				fmt.Fprintf(tw, "data_dir:\t%s\n", s.DataDir)
				tw.Flush()
			})
		},
	}
}

func (a *app) networkCmd() *cobra.Command {
	cmd := group("network", "Peers and connections")
	cmd.AddCommand(a.peersCmd(), a.dialCmd(), a.disconnectCmd(), a.bootstrapCmd(), a.resolveCmd(), a.limitsCmd(),
		a.blockCmd(), a.unblockCmd(), a.blockedCmd())
	return cmd
}

func (a *app) peersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List connected peers with their DIDs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			peers, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Peers)
			if err != nil {
				return err
			}
			return a.output(peers, func(w io.Writer) {
				if len(peers) == 0 {
					fmt.Fprintln(w, "no peers connected")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PEER ID\tDID\tDIRECTION\tLATENCY\tSCORE\tPENALTY\tADDRS")
				for _, p := range peers {
					d := p.DID
					if d == "" {
						d = "(unknown)"
					}
					lat := "-"
					if p.LatencyMS > 0 {
						lat = fmt.Sprintf("%.1fms", p.LatencyMS)
					}
					score := "-"
					if p.GossipScore != nil {
						score = strconv.FormatFloat(*p.GossipScore, 'f', -1, 64)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.PeerID, d, p.Direction, lat, score,
						strconv.FormatFloat(p.Penalty, 'f', -1, 64), strings.Join(p.Addrs, ","))
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) dialCmd() *cobra.Command {
	var addrFlag string
	cmd := &cobra.Command{
		Use:   "dial MULTIADDR | DID [ADDR]",
		Short: "Connect to a peer by multiaddr, or by DID at an address",
		Long: "dial connects to a peer.\n\n" +
			"  icnctl network dial /ip4/192.168.1.10/udp/7777/quic-v1/p2p/12D3Koo…\n" +
			"  icnctl network dial did:icn:z… 192.168.1.10:7777\n" +
			"  icnctl network dial did:icn:z… --addr /ip4/192.168.1.10/udp/7777/quic-v1\n\n" +
			"With a DID the peer must prove it with a binding signed by the DID's key, even if it rotated its node key.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := dialRequest(args, addrFlag)
			if err != nil {
				return err
			}
			p, err := call(a, cmd.Context(), time.Minute, func(c *controlapi.Client, ctx context.Context) (controlapi.Peer, error) {
				return c.Dial(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(p, func(w io.Writer) {
				d := p.DID
				if d == "" {
					d = "DID unknown"
				}
				fmt.Fprintf(w, "connected to %s (%s)\n", p.PeerID, d)
			})
		},
	}
	cmd.Flags().StringVar(&addrFlag, "addr", "", "address of the peer when dialling a DID (host:port or multiaddr)")
	return cmd
}

// dialRequest checks the arguments locally so typos get a precise message
// without a round trip.
func dialRequest(args []string, addrFlag string) (controlapi.DialRequest, error) {
	first := args[0]
	if strings.HasPrefix(first, "did:") {
		if _, err := did.Parse(first); err != nil {
			return controlapi.DialRequest{}, withHint(err, "a DID looks like did:icn:z…; `icnctl id show` on the other host prints it")
		}
		addr := addrFlag
		if len(args) == 2 {
			if addrFlag != "" && addrFlag != args[1] {
				return controlapi.DialRequest{}, withHint(fmt.Errorf("two different addresses: %q and --addr %q", args[1], addrFlag), "give the address once")
			}
			addr = args[1]
		}
		return controlapi.DialRequest{DID: first, Addr: addr}, nil
	}
	if len(args) == 2 || addrFlag != "" {
		return controlapi.DialRequest{}, withHint(fmt.Errorf("%q is not a DID, so no separate address is expected", first),
			"dial a multiaddr alone, or a DID with an address")
	}
	if !strings.HasPrefix(first, "/") {
		return controlapi.DialRequest{}, withHint(fmt.Errorf("%q is neither a multiaddr nor a DID", first),
			"use /ip4/HOST/udp/PORT/quic-v1/p2p/PEER_ID, or did:icn:… HOST:PORT")
	}
	if _, err := ma.NewMultiaddr(first); err != nil {
		return controlapi.DialRequest{}, withHint(fmt.Errorf("%q is not a valid multiaddr: %v", first, err),
			"a multiaddr looks like /ip4/192.168.1.10/udp/7777/quic-v1/p2p/12D3Koo…")
	}
	return controlapi.DialRequest{Addr: first}, nil
}

func (a *app) disconnectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect PEER_ID|DID",
		Short: "Close every connection to a peer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.DisconnectResponse, error) {
				return c.Disconnect(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				for _, p := range res.Disconnected {
					fmt.Fprintf(w, "disconnected %s\n", p)
				}
			})
		},
	}
}

func (a *app) bootstrapCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bootstrap",
		Short: "Re-dial remembered and bootstrap peers now and refresh the DHT routing table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := call(a, cmd.Context(), 2*time.Minute, (*controlapi.Client).Bootstrap)
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				fmt.Fprintf(w, "dialled %d peers; connected to %d; routing table holds %d peers\n", res.Attempted, res.Connected, res.RoutingTable)
				for _, e := range res.Errors {
					fmt.Fprintf(w, "  failed: %s\n", e)
				}
				if res.Attempted == 0 && res.Connected == 0 {
					fmt.Fprintln(w, "no peers to dial: set network.bootstrap_peers in the config, or dial one with `icnctl network dial`")
				}
			})
		},
	}
}

func (a *app) resolveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resolve DID",
		Short: "Show which peer ID and addresses a DID resolves to, and where each came from",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := did.Parse(args[0]); err != nil {
				return withHint(err, "a DID looks like did:icn:z…; `icnctl id show` on the other host prints it")
			}
			res, err := call(a, cmd.Context(), time.Minute, func(c *controlapi.Client, ctx context.Context) (controlapi.Resolution, error) {
				return c.Resolve(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "did:\t%s\n", res.DID)
				seq := ""
				if res.Seq > 0 {
					seq = fmt.Sprintf(", binding seq %d", res.Seq)
				}
				fmt.Fprintf(tw, "peer_id:\t%s (from %s%s)\n", res.PeerID, res.Source, seq)
				fmt.Fprintf(tw, "dht:\t%s\n", res.DHT)
				if len(res.Addrs) == 0 {
					fmt.Fprintf(tw, "addrs:\tnone found\n")
				} else {
					fmt.Fprintf(tw, "addrs:\t%s (from %s)\n", strings.Join(res.Addrs, "\n\t"), res.AddrSource)
				}
				fmt.Fprintf(tw, "connected:\t%t\n", res.Connected)
				tw.Flush()
			})
		},
	}
}
