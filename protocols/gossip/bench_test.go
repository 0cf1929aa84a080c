package gossip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/identity"
)

// BenchmarkGossip compares this layer with bare GossipSub on the same
// topology: three nodes in a line A-B-C on loopback QUIC, A publishes
// 256-byte payloads, B relays, C receives. Both use StrictSign and the same
// queue sizes; the bare side has no validator and the default message IDs.
// Our rate limiter is set out of the way (it is policy, not cost).
//
//	throughput: up to 128 messages in flight; msgs/s is what C receives.
//	latency:    one message at a time; p50/p99 are publish-to-delivery.
//
// Run: go test -run='^$' -bench=Gossip -benchtime=5000x ./protocols/gossip/
func BenchmarkGossip(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark")
	}
	for _, mode := range []struct {
		name   string
		window int
	}{{"throughput", 128}, {"latency", 1}} {
		for _, layer := range []struct {
			name  string
			setup func(b *testing.B) (publish func([]byte) error, recv <-chan []byte)
		}{{"bare", setupBare}, {"icn", setupICN}} {
			b.Run(fmt.Sprintf("mode=%s/layer=%s", mode.name, layer.name), func(b *testing.B) {
				publish, recv := layer.setup(b)
				runDelivery(b, publish, recv, mode.window)
			})
		}
	}
}

const benchPayload = 256

// payload: 8 bytes of send time (unix ns), a warm-up flag, random filler.
func benchMessage(warm bool) []byte {
	p := make([]byte, benchPayload) // fresh per message: GossipSub keeps it
	_, _ = rand.Read(p[9:])
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	if warm {
		p[8] = 1
	}
	return p
}

func runDelivery(b *testing.B, publish func([]byte) error, recv <-chan []byte, window int) {
	warmUp(b, publish, recv)
	b.ResetTimer()
	elapsed, lat := deliver(b, publish, recv, window, b.N)
	b.StopTimer()
	reportDelivery(b, "", elapsed, b.N, lat)
	b.ReportMetric(0, "ns/op")
}

// warmUp publishes until the mesh carries messages from A to C.
func warmUp(b *testing.B, publish func([]byte) error, recv <-chan []byte) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		require.NoError(b, publish(benchMessage(true)))
		select {
		case <-recv:
			return
		case <-time.After(100 * time.Millisecond):
			require.True(b, time.Now().Before(deadline), "the mesh never formed")
		}
	}
}

// deliver publishes n messages with at most window in flight and returns
// the time until C received them all and each one's latency.
func deliver(b *testing.B, publish func([]byte) error, recv <-chan []byte, window, n int) (time.Duration, []time.Duration) {
	lat := make([]time.Duration, 0, n)
	inflight := make(chan struct{}, window)
	done := make(chan error, 1)
	go func() {
		for len(lat) < n {
			select {
			case p := <-recv:
				if p[8] == 1 {
					continue // a late warm-up message
				}
				lat = append(lat, time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(p)))))
				<-inflight
			case <-time.After(30 * time.Second):
				done <- fmt.Errorf("stalled after %d of %d messages", len(lat), n)
				return
			}
		}
		done <- nil
	}()
	start := time.Now()
	for range n {
		inflight <- struct{}{}
		require.NoError(b, publish(benchMessage(false)))
	}
	require.NoError(b, <-done)
	return time.Since(start), lat
}

// nonzeroCounters lists the counters of reg above zero, for a failure
// message.
func nonzeroCounters(b *testing.B, reg *prometheus.Registry) string {
	mfs, err := reg.Gather()
	require.NoError(b, err)
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out = append(out, fmt.Sprintf("%s{%s}=%v", mf.GetName(), strings.Join(labels, ","), v))
			}
		}
	}
	return strings.Join(out, " ")
}

// reportDelivery reports throughput and latency percentiles, their units
// suffixed by suffix.
func reportDelivery(b *testing.B, suffix string, elapsed time.Duration, n int, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s"+suffix)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs"+suffix)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs"+suffix)
}

func lineOfThree(b *testing.B) [3]host.Host {
	var hs [3]host.Host
	for i := range hs {
		hs[i] = newHost(b, nil)
	}
	connect(b, hs[0], hs[1])
	connect(b, hs[1], hs[2])
	return hs
}

func setupBare(b *testing.B) (func([]byte) error, <-chan []byte) {
	hs := lineOfThree(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	var tops [3]*pubsub.Topic
	for i, h := range hs {
		ps, err := pubsub.NewGossipSub(ctx, h,
			pubsub.WithPeerOutboundQueueSize(PeerOutboundQueueSize), pubsub.WithValidateQueueSize(ValidateQueueSize))
		require.NoError(b, err)
		tops[i], err = ps.Join(testWire)
		require.NoError(b, err)
	}
	_, err := tops[1].Relay()
	require.NoError(b, err)
	sub, err := tops[2].Subscribe(pubsub.WithBufferSize(4096))
	require.NoError(b, err)
	out := make(chan []byte, 4096)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			out <- m.Data
		}
	}()
	return func(p []byte) error { return tops[0].Publish(ctx, p) }, out
}

func setupICN(b *testing.B) (func([]byte) error, <-chan []byte) {
	return setupICNWith(b, nil)
}

// setupICNWith is setupICN; hooks, when set, adds Deps to node i.
func setupICNWith(b *testing.B, hooks func(i int, ids [3]*did.Identity, d *Deps)) (func([]byte) error, <-chan []byte) {
	var ids [3]*did.Identity
	for i := range ids {
		ids[i] = testIdentity(b)
	}
	var ns [3]*node
	for i := range ns {
		ns[i] = newNodeWith(b, ids[i], newHost(b, ids[i].NodeKey), identity.NewBook(), nil, func(c *Config, d *Deps) {
			c.RateLimit, c.RateBurst = 1e9, 1<<20
			c.AnnounceInterval = DefaultAnnounceInterval
			if hooks != nil {
				hooks(i, ids, d)
			}
		})
	}
	link(b, ns[0], ns[1])
	link(b, ns[1], ns[2])
	b.Cleanup(func() {
		if b.Failed() {
			for i, n := range ns {
				b.Logf("node %c: %s", 'A'+i, nonzeroCounters(b, n.reg))
			}
		}
	})
	require.NoError(b, ns[1].svc.Join(chatTopic))
	sub, err := ns[2].svc.Subscribe(chatTopic, 4096)
	require.NoError(b, err)
	out := make(chan []byte, 4096)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range sub.Messages() {
			out <- m.Payload
		}
	}()
	b.Cleanup(func() { sub.Cancel(); wg.Wait() })
	ctx := context.Background()
	return func(p []byte) error {
		_, err := ns[0].svc.Publish(ctx, chatTopic, TypeBinary, p)
		return err
	}, out
}
