package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gateway/client"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// nextMessage reads events until a message event, within d.
func nextMessage(t *testing.T, s *client.Stream, d time.Duration) client.Event {
	t.Helper()
	type res struct {
		ev  client.Event
		err error
	}
	ch := make(chan res, 1)
	go func() {
		for {
			ev, err := s.Next()
			if err != nil || ev.Name == gatewayapi.EventMessage {
				ch <- res{ev, err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.ev
	case <-time.After(d):
		s.Close() // unblocks the reader
		t.Fatalf("no message event within %s", d)
		return client.Event{}
	}
}

// A member's event stream on one node carries a message published on
// another; an envelope the member signs and publishes through the gateway
// reaches the other node; a reconnect with Last-Event-ID gets exactly what
// it missed.
func TestEventsAcrossNodes(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	harness.Connect(t, a, b)
	g := startGateway(t, a)
	alice := newMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(g.url, nil)
	_, err := c.Login(ctx, alice.DID, alice.Key)
	require.NoError(t, err)

	stream, err := c.Events(ctx, "chat", "")
	require.NoError(t, err)
	defer stream.Close()
	// b joins the topic and publishes until the mesh carries it to a.
	bsub, err := b.GossipSubscribe("chat")
	require.NoError(t, err)
	defer bsub.Cancel()
	got := make(chan client.Event, 1)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			if ev.Name == gatewayapi.EventMessage && ev.Message.Author == b.DID().String() {
				got <- ev
				return
			}
		}
	}()
	var first client.Event
	require.Eventually(t, func() bool {
		_, err := b.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: "chat", Data: []byte("hello from b")})
		require.NoError(t, err)
		select {
		case first = <-got:
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, "hello from b", first.Message.Text)
	require.NotEmpty(t, first.ID)

	// alice publishes with her own key through a's gateway; b receives it
	// as alice's.
	p, err := c.Publish(ctx, "chat", alice.DID, alice.Key, gossip.TypeText, []byte("hello from alice"))
	require.NoError(t, err)
	require.Equal(t, "chat", p.Topic)
	require.Eventually(t, func() bool {
		select {
		case m := <-bsub.Messages():
			return m.Author == alice.DID && string(m.Payload) == "hello from alice"
		default:
			return false
		}
	}, 20*time.Second, 10*time.Millisecond)
	// The very same envelope again is a replay: 409, not published twice.
	env := envelope(t, a, alice, "chat", 1)
	g.do(http.MethodPost, "/v1/gossip/chat", c.Token(), gatewayapi.GossipPublishRequest{Envelope: env}, http.StatusCreated, nil)
	resp, data := g.request(http.MethodPost, "/v1/gossip/chat", c.Token(), gatewayapi.GossipPublishRequest{Envelope: env})
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%s", data)

	// Reconnect after the first event: the stream resumes after it.
	stream.Close()
	resumed, err := c.Events(ctx, "chat", first.ID)
	require.NoError(t, err)
	defer resumed.Close()
	ev := nextMessage(t, resumed, 10*time.Second)
	require.NotEqual(t, first.ID, ev.ID, "the event already seen is not sent again")
	// An id from another epoch says reset, then streams from now.
	again, err := c.Events(ctx, "chat", "zzz-1")
	require.NoError(t, err)
	defer again.Close()
	r, err := again.Next()
	require.NoError(t, err)
	require.Equal(t, gatewayapi.EventReset, r.Name)
	require.Contains(t, string(r.Data), "restarted")
}

// One token may hold at most max_streams_per_token streams; the next gets
// 429 until one closes.
func TestEventStreamsPerToken(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n, func(o *gateway.Options) { o.Config.MaxStreamsPerToken = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(g.url, nil)
	c.SetToken(g.token(newMember(t).DID, auth.ScopeGossipRead))
	s1, err := c.Events(ctx, "chat", "")
	require.NoError(t, err)
	s2, err := c.Events(ctx, "news", "")
	require.NoError(t, err)
	defer s2.Close()
	_, err = c.Events(ctx, "chat", "")
	var ge *client.Error
	require.True(t, errors.As(err, &ge), "%v", err)
	require.Equal(t, http.StatusTooManyRequests, ge.Status)
	require.Equal(t, 5*time.Second, ge.RetryAfter)
	s1.Close()
	require.Eventually(t, func() bool {
		s, err := c.Events(ctx, "chat", "")
		if err != nil {
			return false
		}
		s.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond)
}

// A client that stops reading is dropped once its buffer fills, counted
// by reason; the others keep streaming.
func TestSlowEventClientIsDropped(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client.New(g.url, nil)
	c.SetToken(g.token(newMember(t).DID, auth.ScopeGossipRead))
	slow, err := c.Events(ctx, "chat", "")
	require.NoError(t, err)
	defer slow.Close()
	// The slow client never reads; the node publishes large messages until
	// the socket buffers and the client's queue are full.
	payload := make([]byte, 32<<10)
	for i := range payload {
		payload[i] = 'x'
	}
	require.Eventually(t, func() bool {
		for i := range 64 {
			_, err := n.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: "chat", Data: append([]byte(fmt.Sprint(i)), payload...)})
			require.NoError(t, err)
		}
		return testutil.MetricSum(t, g.reg, "icn_gateway_sse_dropped_total", map[string]string{"reason": "slow"}) >= 1
	}, time.Minute, time.Millisecond)
	require.Contains(t, g.log.String(), "gateway dropped a slow event stream")
}
