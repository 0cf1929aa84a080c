package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/intercooperative/icn/protocols/identity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const typeState = "test/state"

// withState accepts typeState; direct makes it one of DirectTypes. Head
// announcements (one hop too, by their own rule) are kept out of the way.
func withState(direct bool) nodeOpt {
	return func(c *Config, _ *Deps) {
		c.AnnounceInterval = time.Hour
		c.Types = map[string]PayloadCheck{typeState: func([]byte) error { return nil }}
		if direct {
			c.DirectTypes = []string{typeState}
		}
	}
}

// line links a–b–c (a and c are not connected), subscribes each to
// chatTopic and waits until both others are in b's mesh.
func line(t *testing.T, a, b, c *node) (subA, subB, subC *Subscription) {
	t.Helper()
	var err error
	subA, err = a.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	subB, err = b.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	subC, err = c.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	link(t, a, b)
	link(t, b, c)
	waitTopicPeer(t, b.svc.PubSub(), testWire, a.h.ID())
	waitTopicPeer(t, b.svc.PubSub(), testWire, c.h.ID())
	waitTopicPeer(t, a.svc.PubSub(), testWire, b.h.ID())
	waitTopicPeer(t, c.svc.PubSub(), testWire, b.h.ID())
	// b forwards only to its mesh, which the next heartbeats form.
	require.Eventually(t, func() bool { return b.svc.Topics()[0].MeshPeers == 2 }, 10*time.Second, 20*time.Millisecond,
		"b's mesh never took in both neighbours")
	return subA, subB, subC
}

// A direct type reaches the publisher's neighbours and stops at theirs,
// who drop the forwarded copy without blame; an ordinary type on the same
// topic travels on. A node of an older version (without DirectTypes)
// forwards them alike.
func TestDirectTypeTravelsOneHop(t *testing.T) {
	for _, oldMiddle := range []bool{false, true} {
		t.Run(fmt.Sprintf("old_middle=%v", oldMiddle), func(t *testing.T) {
			a, b, c := newNode(t, withState(true)), newNode(t, withState(!oldMiddle)), newNode(t, withState(true))
			_, subB, subC := line(t, a, b, c)
			ctx := context.Background()

			_, err := a.svc.Publish(ctx, chatTopic, TypeText, []byte("before"))
			require.NoError(t, err)
			require.Equal(t, "before", string(recv(t, subB).Payload))
			require.Equal(t, "before", string(recv(t, subC).Payload), "ordinary messages cross b")

			pub, err := a.svc.Publish(ctx, chatTopic, typeState, []byte("state of a"))
			require.NoError(t, err)
			require.Equal(t, 1, pub.Peers)
			m := recv(t, subB)
			require.Equal(t, pub.ID, m.ID)
			require.Equal(t, typeState, m.Type)
			require.Equal(t, a.h.ID(), m.From)
			require.Equal(t, a.h.ID(), m.ReceivedFrom)
			require.Eventually(t, func() bool {
				return testutil.ToFloat64(c.m.dropped.WithLabelValues(DropRelayedAnnounce)) == 1
			}, 10*time.Second, 10*time.Millisecond, "c drops the copy b forwards")
			require.Zero(t, rejected(c.m, ReasonMalformed)+rejected(c.m, ReasonBadSignature)+rejected(c.m, ReasonReplay),
				"forwarding it is not b's fault")
			if !oldMiddle {
				require.Equal(t, 1, b.svc.Topics()[0].Cached, "b keeps the text, not the state, to serve")
			}

			_, err = b.svc.Publish(ctx, chatTopic, typeState, []byte("state of b"))
			require.NoError(t, err)
			require.Equal(t, "state of b", string(recv(t, subC).Payload), "a neighbour's own state is delivered")
			_, err = a.svc.Publish(ctx, chatTopic, TypeText, []byte("after"))
			require.NoError(t, err)
			require.Equal(t, "after", string(recv(t, subC).Payload), "c delivered nothing of a's state")
		})
	}
}

func TestDirectTypesMustBeTypes(t *testing.T) {
	id := testIdentity(t)
	m, err := NewMetrics(prometheus.NewRegistry(), nil, nil)
	require.NoError(t, err)
	_, err = New(Config{NetworkID: testNet, DirectTypes: []string{"test/unknown"}},
		Deps{Host: newHost(t, id.NodeKey), Identity: id, Bindings: identity.NewBook(), Metrics: m})
	require.ErrorContains(t, err, `direct type "test/unknown" is not one of Types`)
}
