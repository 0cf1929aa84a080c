package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/node/controlapi"
)

// maxPublishInput bounds what publish reads from stdin; icnd enforces the
// real limit (gossip.max_message_size).
const maxPublishInput = 1 << 20

func (a *app) gossipCmd() *cobra.Command {
	cmd := group("gossip", "Topics: list, subscribe, publish")
	cmd.Long = "Gossip topics carry signed messages between nodes. Topic names look like chat:general or ledger:hours;\n" +
		"on the wire they are namespaced by the network id (icn/<network_id>/<topic>). See docs/gossip.md."
	cmd.AddCommand(a.gossipTopicsCmd(), a.gossipSubscribeCmd(), a.gossipPublishCmd(), a.gossipLeaveCmd())
	return cmd
}

func (a *app) gossipTopicsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "topics",
		Short: "List the topics this node has joined, with subscriber and peer counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).GossipTopics)
			if err != nil {
				return err
			}
			return a.output(ts, func(w io.Writer) {
				if len(ts) == 0 {
					fmt.Fprintln(w, "no topics joined (`icnctl gossip subscribe TOPIC` or `publish` joins one)")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tSUBSCRIBERS\tPEERS\tMESH PEERS\tCACHED")
				for _, t := range ts {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", t.Topic, t.Subscribers, t.Peers, t.MeshPeers, t.Cached)
				}
				tw.Flush()
			})
		},
	}
}

func (a *app) gossipSubscribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "subscribe TOPIC",
		Short: "Print the messages published on a topic until interrupted",
		Long: "subscribe prints one line per message: time, author DID, and the data (as text when it is printable\n" +
			"UTF-8, else as base64:…). With --json each message is one JSON object per line. Ctrl-C stops it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.subscribe(cmd.Context(), args[0]) },
	}
}

func (a *app) subscribe(ctx context.Context, topic string) error {
	dir, err := a.dataDir()
	if err != nil {
		return err
	}
	c := controlapi.NewClient(controlapi.SocketPath(dir))
	// The stream lives as long as ctx; only the opening is bounded.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opening := time.AfterFunc(controlapi.DefaultTimeout, cancel)
	stream, err := c.GossipSubscribe(sctx, topic)
	if !opening.Stop() { // the timer fired and cancelled sctx
		if stream != nil {
			stream.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("icnd did not confirm the subscription within %s", controlapi.DefaultTimeout)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer stream.Close()
	fmt.Fprintf(a.stderr, "icnctl: subscribed to %s (%s); Ctrl-C to stop\n", stream.Subscribed.Topic, stream.Subscribed.WireTopic)
	enc := json.NewEncoder(a.stdout)
	for {
		m, err := stream.Next(sctx)
		if err != nil {
			var ended *controlapi.SubscriptionEndedError
			switch {
			case ctx.Err() != nil:
				return nil // interrupted: a normal end
			case errors.As(err, &ended):
				return withHint(err, "subscribe again once icnd is back: icnctl gossip subscribe "+topic)
			case errors.Is(err, controlapi.ErrStreamLost):
				return withHint(err, "check that icnd is running (`icnctl status`) and look at its log")
			}
			return err
		}
		if a.jsonOut {
			if err := enc.Encode(m); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(a.stdout, "%s %s %s\n", m.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), m.Author, displayData(m.Data))
	}
}

// displayData shows data as text if it is printable UTF-8 (ignoring one
// trailing newline), else as base64.
func displayData(b []byte) string {
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

func (a *app) gossipPublishCmd() *cobra.Command {
	var typ string
	cmd := &cobra.Command{
		Use:   "publish TOPIC [DATA|-]",
		Short: "Publish a message on a topic, signed by this node's DID; prints its ID",
		Long: "publish signs DATA (or standard input, with -) as this node's DID and publishes it on TOPIC.\n" +
			"The type defaults to text/plain for UTF-8 data and application/octet-stream otherwise;\n" +
			"--type application/json requires valid JSON. With --json it prints {id, topic, seq, peers}.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return withHint(errors.New("nothing to publish"), "give the data as an argument, or - to read it from standard input")
			}
			data := []byte(args[1])
			if args[1] == "-" {
				var err error
				if data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxPublishInput+1)); err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
				if len(data) > maxPublishInput {
					return withHint(fmt.Errorf("more than %d bytes on standard input", maxPublishInput),
						"gossip messages are small (64 KiB by default); share large data another way")
				}
			}
			p, err := call(a, cmd.Context(), controlapi.DefaultTimeout+5*time.Second,
				func(c *controlapi.Client, ctx context.Context) (controlapi.GossipPublished, error) {
					return c.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: args[0], Type: typ, Data: data})
				})
			if err != nil {
				return err
			}
			if p.Peers == 0 {
				fmt.Fprintf(a.stderr, "icnctl: note: no connected peer is subscribed to %s yet; the message waits in this node's cache and peers that join fetch it\n", p.Topic)
			}
			return a.output(p, func(w io.Writer) { fmt.Fprintln(w, p.ID) })
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "payload type: text/plain, application/json, application/octet-stream (default: by content)")
	return cmd
}

func (a *app) gossipLeaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "leave TOPIC",
		Short: "Stop relaying a topic (ends its subscriptions and forgets its cache)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (struct{}, error) {
				return struct{}{}, c.GossipLeave(ctx, args[0])
			})
			if err != nil {
				return err
			}
			return a.output(map[string]string{"left": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "left %s\n", args[0]) })
		},
	}
}
