package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/identity"
)

const (
	testNet   = "test"
	chatTopic = "chat:general"
)

var testWire = WireTopic(testNet, chatTopic)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newHost(t testing.TB, key crypto.PrivKey) host.Host {
	t.Helper()
	if key == nil {
		var err error
		key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		require.NoError(t, err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.Transport(quic.NewTransport), libp2p.DisableRelay())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}))
}

// node is a Service on its own host, running until the test ends.
type node struct {
	svc  *Service
	h    host.Host
	id   *did.Identity
	book *identity.Book
	m    *Metrics
	reg  *prometheus.Registry
	stop func()
}

type nodeOpt func(*Config, *Deps)

func newNode(t testing.TB, opts ...nodeOpt) *node {
	t.Helper()
	id := testIdentity(t)
	return newNodeWith(t, id, newHost(t, id.NodeKey), identity.NewBook(), nil, opts...)
}

func newNodeWith(t testing.TB, id *did.Identity, h host.Host, book *identity.Book, mem *Memory, opts ...nodeOpt) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, nil, nil)
	require.NoError(t, err)
	cfg := Config{NetworkID: testNet, AnnounceInterval: 200 * time.Millisecond, ScoreInspectInterval: 50 * time.Millisecond}
	deps := Deps{Host: h, Identity: id, Bindings: book, Memory: mem, Metrics: m,
		Log: slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	book.Put(id.Binding)
	svc, err := New(cfg, deps)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
			require.NoError(t, svc.Close())
		})
	}
	t.Cleanup(stop)
	return &node{svc: svc, h: h, id: id, book: book, m: m, reg: reg, stop: stop}
}

// link connects two nodes and tells each the other's binding (what
// /icn/id/1.0.0 does in a real node).
func link(t testing.TB, a, b *node) {
	t.Helper()
	a.book.Put(b.id.Binding)
	b.book.Put(a.id.Binding)
	connect(t, a.h, b.h)
}

// testWriter logs through t until the test's cleanups run: GossipSub's
// process loop may still log its "shutting down" line after the service
// has returned, and t must not be used once the test is over.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func rejected(m *Metrics, reason string) float64 {
	return testutil.ToFloat64(m.rejected.WithLabelValues(reason))
}

// waitTopicPeer waits until a's view of topic includes p.
func waitTopicPeer(t testing.TB, ps *pubsub.PubSub, wire string, p peer.ID) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, q := range ps.ListPeers(wire) {
			if q == p {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "peer %s never subscribed to %s", p, wire)
}

// recv waits for one message on sub.
func recv(t testing.TB, sub *Subscription) *Message {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		require.True(t, ok, "subscription closed: %v", sub.Err())
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func TestPublishSubscribeBetweenTwoNodes(t *testing.T) {
	a, b := newNode(t), newNode(t)
	subB, err := b.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	subA, err := a.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	link(t, a, b)
	waitTopicPeer(t, a.svc.PubSub(), testWire, b.h.ID())

	pub, err := a.svc.Publish(context.Background(), chatTopic, TypeText, []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 1, pub.Peers)
	m := recv(t, subB)
	require.Equal(t, pub.ID, m.ID)
	require.Equal(t, a.id.DID, m.Author)
	require.Equal(t, "hello", string(m.Payload))
	require.Equal(t, TypeText, m.Type)
	require.Equal(t, chatTopic, m.Topic)
	require.Equal(t, a.h.ID(), m.From)
	require.False(t, m.Local)
	own := recv(t, subA)
	require.True(t, own.Local, "the publisher's own subscribers see its message")
	require.Equal(t, pub.ID, own.ID)

	require.Equal(t, 1.0, testutil.ToFloat64(a.m.published))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.received))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.networkReceived))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.entries))
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.subscriptions))

	// Publishing refuses unknown and reserved types, bad payloads and oversize.
	_, err = a.svc.Publish(context.Background(), chatTopic, "video/mp4", nil)
	require.ErrorContains(t, err, "unknown payload type")
	_, err = a.svc.Publish(context.Background(), chatTopic, TypeAnnounce, nil)
	require.Error(t, err)
	_, err = a.svc.Publish(context.Background(), chatTopic, TypeJSON, []byte("{"))
	require.Error(t, err)
	_, err = a.svc.Publish(context.Background(), chatTopic, TypeBinary, make([]byte, DefaultMaxMessageSize))
	var tl *TooLargeError
	require.ErrorAs(t, err, &tl)
	_, err = a.svc.Publish(context.Background(), "bad/topic", TypeText, nil)
	require.Error(t, err)

	infos := b.svc.Topics()
	require.Len(t, infos, 1)
	require.Equal(t, chatTopic, infos[0].Topic)
	require.Equal(t, testWire, infos[0].WireTopic)
	require.Equal(t, 1, infos[0].Subscribers)
	require.Equal(t, 1, infos[0].Peers)
	require.Equal(t, 1, infos[0].Cached)
	require.Eventually(t, func() bool { return b.svc.Topics()[0].MeshPeers == 1 }, 5*time.Second, 20*time.Millisecond)
}

// The close contract: a subscription's channel closes on Cancel, on Leave
// and when the service stops, and Err says which; nothing hangs.
func TestSubscriptionCloseContract(t *testing.T) {
	n := newNode(t)
	s1, err := n.svc.Subscribe(chatTopic, 1)
	require.NoError(t, err)
	s2, err := n.svc.Subscribe(chatTopic, 1)
	require.NoError(t, err)
	s3, err := n.svc.Subscribe("chat:other", 1)
	require.NoError(t, err)
	require.NoError(t, s1.Err())

	s1.Cancel()
	s1.Cancel() // idempotent
	_, ok := <-s1.Messages()
	require.False(t, ok)
	require.ErrorIs(t, s1.Err(), ErrCancelled)

	require.NoError(t, n.svc.Leave(chatTopic))
	_, ok = <-s2.Messages()
	require.False(t, ok)
	require.ErrorIs(t, s2.Err(), ErrLeft)
	require.Error(t, n.svc.Leave(chatTopic), "not joined any more")

	// A full subscriber never blocks delivery.
	for i := range 5 {
		_, err := n.svc.Publish(context.Background(), "chat:other", TypeText, []byte{byte('a' + i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(n.m.dropped.WithLabelValues(DropSlowSubscriber)) >= 4
	}, 5*time.Second, 10*time.Millisecond)

	n.stop()
	drained := 0
	for range s3.Messages() {
		drained++
	}
	require.Equal(t, 1, drained)
	require.ErrorIs(t, s3.Err(), ErrStopped)
	_, err = n.svc.Subscribe(chatTopic, 0)
	require.ErrorIs(t, err, ErrStopped)
	require.Equal(t, 0.0, testutil.ToFloat64(n.m.subscriptions))
}

// A key rotation replaces the service; the memory carries the joined topics over.
func TestMemoryRejoinsTopics(t *testing.T) {
	id := testIdentity(t)
	book := identity.NewBook()
	mem := NewMemory(Config{NetworkID: testNet})
	n1 := newNodeWith(t, id, newHost(t, id.NodeKey), book, mem)
	require.NoError(t, n1.svc.Join("ledger:hours"))
	_, err := n1.svc.Publish(context.Background(), chatTopic, TypeText, []byte("x"))
	require.NoError(t, err)
	// The publisher's own copy reaches the cache through its subscription,
	// just after Publish returns.
	require.Eventually(t, func() bool {
		for _, ti := range n1.svc.Topics() {
			if ti.Topic == chatTopic && ti.Cached == 1 {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	n1.stop()
	require.NoError(t, id.Rotate(time.Now()))
	n2 := newNodeWith(t, id, newHost(t, id.NodeKey), book, mem)
	var names []string
	for _, ti := range n2.svc.Topics() {
		names = append(names, ti.Topic)
	}
	require.Equal(t, []string{chatTopic, "ledger:hours"}, names)
	require.Equal(t, 1, n2.svc.Topics()[0].Cached, "the cache outlives the service")
}

// A node that missed a message (here: it was not connected when it was
// published) fetches it after the next announce, and delivers it once.
func TestAnnounceAndRequestFillGaps(t *testing.T) {
	a, b := newNode(t), newNode(t)
	subB, err := b.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	pub, err := a.svc.Publish(context.Background(), chatTopic, TypeText, []byte("while you were away"))
	require.NoError(t, err)
	require.Equal(t, 0, pub.Peers)

	link(t, a, b)
	m := recv(t, subB)
	require.Equal(t, pub.ID, m.ID)
	require.True(t, m.Fetched)
	require.Equal(t, a.id.DID, m.Author)
	require.GreaterOrEqual(t, testutil.ToFloat64(b.m.announcesRecv), 1.0)
	require.GreaterOrEqual(t, testutil.ToFloat64(a.m.requests), 1.0)
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.fetched))
	// Later announces do not deliver it again.
	announces := testutil.ToFloat64(b.m.announcesRecv)
	require.Eventually(t, func() bool { return testutil.ToFloat64(b.m.announcesRecv) >= announces+2 }, 5*time.Second, 20*time.Millisecond)
	select {
	case m := <-subB.Messages():
		t.Fatalf("delivered twice: %v", m.ID)
	default:
	}
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.entries))
}

// attacker is a raw libp2p host with a bare GossipSub (no validators),
// publishing whatever bytes the test gives it on the wire topic.
type attacker struct {
	h     host.Host
	topic *pubsub.Topic
}

func newAttacker(t testing.TB, key crypto.PrivKey, victim *node) *attacker {
	t.Helper()
	h := newHost(t, key)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h)
	require.NoError(t, err)
	tp, err := ps.Join(testWire)
	require.NoError(t, err)
	connect(t, h, victim.h)
	waitTopicPeer(t, ps, testWire, victim.h.ID())
	return &attacker{h: h, topic: tp}
}

func (a *attacker) send(t testing.TB, data []byte) {
	t.Helper()
	require.NoError(t, a.topic.Publish(context.Background(), append([]byte{}, data...)))
}

// envelopeBy builds an envelope for testWire, signed by signer but claiming author.
func envelopeBy(t testing.TB, author did.DID, signer *did.Identity, seq uint64, ts time.Time, typ string, payload []byte) []byte {
	t.Helper()
	e := &Envelope{Author: author, Seq: seq, Timestamp: uint64(ts.UnixMilli()), Type: typ, Payload: payload}
	e.Sign(testWire, signer.Sign)
	raw, err := e.Marshal()
	require.NoError(t, err)
	return raw
}

func libp2pKey(t testing.TB, id *did.Identity) crypto.PrivKey {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(id.DIDKey)
	require.NoError(t, err)
	return k
}

// Each attack is rejected, counted under its reason, never delivered, and
// (for the rejections) lowers the attacker's peer score on the victim.
func TestValidatorRejectsAttacks(t *testing.T) {
	type attack struct {
		reason   string
		penalise bool
		// run sends the attack from a fresh attacker to victim v; it returns
		// the attacking peer (the one whose score must drop).
		run func(t *testing.T, v *node, clk *clock) (peer.ID, *node)
	}
	honestDID := testIdentity(t)
	attacks := map[string]attack{
		"forged author signature": {ReasonBadSignature, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, honestDID.DID, mallory, 1, clk.Now(), TypeText, []byte("I am honest")))
			return a.h.ID(), v
		}},
		"garbage bytes": {ReasonMalformed, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			a := newAttacker(t, nil, v)
			junk := make([]byte, 300)
			_, _ = rand.Read(junk)
			a.send(t, junk)
			return a.h.ID(), v
		}},
		"oversize message": {ReasonOversize, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 1, clk.Now(), TypeBinary, make([]byte, DefaultMaxMessageSize+1000)))
			return a.h.ID(), v
		}},
		"unknown payload type": {ReasonUnknownType, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 1, clk.Now(), "video/mp4", []byte("x")))
			return a.h.ID(), v
		}},
		"replayed sequence number": {ReasonReplay, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 7, clk.Now(), TypeText, []byte("pay 5")))
			require.Eventually(t, func() bool { return testutil.ToFloat64(v.m.entries) == 1 }, 5*time.Second, 10*time.Millisecond)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 7, clk.Now(), TypeText, []byte("pay 500")))
			return a.h.ID(), v
		}},
		// GossipSub's seen cache drops a verbatim copy for two minutes; the
		// replay window covers the rest of the max age, and outlives the
		// host (here: the victim re-keys, as after icnctl id rotate).
		"replayed message": {ReasonReplay, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			author := testIdentity(t)
			a := newAttacker(t, nil, v)
			captured := envelopeBy(t, author.DID, author, 9, clk.Now(), TypeText, []byte("once"))
			a.send(t, captured)
			require.Eventually(t, func() bool { return testutil.ToFloat64(v.m.entries) == 1 }, 5*time.Second, 10*time.Millisecond)
			v.stop()
			require.NoError(t, v.id.Rotate(clk.Now()))
			v2 := newNodeWith(t, v.id, newHost(t, v.id.NodeKey), v.book, v.svc.mem, func(c *Config, _ *Deps) { c.Now = clk.Now })
			clk.Advance(3 * time.Minute)
			a2 := newAttacker(t, nil, v2)
			a2.send(t, captured)
			return a2.h.ID(), v2
		}},
		"author's rotated-away node key": {ReasonBindingMismatch, true, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			x := testIdentity(t)
			oldKey := libp2pKey(t, x) // the node key before rotation is the DID key
			require.NoError(t, x.Rotate(clk.Now()))
			v.book.Put(x.Binding) // the victim knows X moved to a new node key
			a := newAttacker(t, oldKey, v)
			a.send(t, envelopeBy(t, x.DID, x, 1, clk.Now(), TypeText, []byte("still me")))
			return a.h.ID(), v
		}},
		"stale timestamp": {ReasonStale, false, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 1, clk.Now().Add(-11*time.Minute), TypeText, []byte("old")))
			return a.h.ID(), v
		}},
		"future timestamp": {ReasonFuture, false, func(t *testing.T, v *node, clk *clock) (peer.ID, *node) {
			mallory := testIdentity(t)
			a := newAttacker(t, mallory.NodeKey, v)
			a.send(t, envelopeBy(t, mallory.DID, mallory, 1, clk.Now().Add(5*time.Minute), TypeText, []byte("soon")))
			return a.h.ID(), v
		}},
	}
	for name, at := range attacks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			v := newNode(t, func(c *Config, _ *Deps) { c.Now = clk.Now })
			_, err := v.svc.Subscribe(chatTopic, 0)
			require.NoError(t, err)
			attackerID, victim := at.run(t, v, clk)
			sub, err := victim.svc.Subscribe("chat:canary", 0)
			require.NoError(t, err)
			defer sub.Cancel()
			before := testutil.ToFloat64(victim.m.entries)
			require.Eventually(t, func() bool { return rejected(victim.m, at.reason) == 1 }, 10*time.Second, 10*time.Millisecond,
				"never counted as %s", at.reason)
			require.Equal(t, before, testutil.ToFloat64(victim.m.entries), "delivered")
			if at.penalise {
				require.Eventually(t, func() bool {
					s, ok := victim.svc.PeerScore(attackerID)
					return ok && s < 0
				}, 10*time.Second, 20*time.Millisecond, "attacker's score never dropped")
			} else {
				s, _ := victim.svc.PeerScore(attackerID)
				require.GreaterOrEqual(t, s, 0.0, "clock differences are not held against the sender")
			}
			var others float64
			for _, r := range []string{ReasonBadSignature, ReasonMalformed, ReasonOversize, ReasonUnknownType, ReasonReplay,
				ReasonBindingMismatch, ReasonStale, ReasonFuture, ReasonBadPayload} {
				if r != at.reason {
					others += rejected(victim.m, r)
				}
			}
			require.Zero(t, others, "counted under another reason too")
		})
	}
}

// A valid envelope relayed by a node that is not its author is fine, and
// the validator's positive path works for raw publishers too.
func TestRelayedEnvelopeAccepted(t *testing.T) {
	clk := newClock()
	v := newNode(t, func(c *Config, _ *Deps) { c.Now = clk.Now })
	sub, err := v.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	author := testIdentity(t)
	a := newAttacker(t, nil, v)
	raw := envelopeBy(t, author.DID, author, 3, clk.Now(), TypeJSON, []byte(`{"ok":true}`))
	a.send(t, raw)
	m := recv(t, sub)
	require.Equal(t, author.DID, m.Author)
	require.Equal(t, IDOf(raw), m.ID)
	require.True(t, bytes.Equal([]byte(`{"ok":true}`), m.Payload))
}

// recordingState is a registered State that records what it is given.
type recordingState struct {
	mu   sync.Mutex
	adds []MessageID
}

func (r *recordingState) Heads() [][]byte                 { return nil }
func (r *recordingState) Want([][]byte) [][]byte          { return nil }
func (r *recordingState) Get([][]byte, int, int) [][]byte { return nil }
func (r *recordingState) Add(m *Message, _ []byte) {
	r.mu.Lock()
	r.adds = append(r.adds, m.ID)
	r.mu.Unlock()
}
func (r *recordingState) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.adds) }

// When the publishing node's key is the author's DID key, GossipSub's
// signature proves the author and the envelope's own signature is checked
// only when the envelope leaves the node: a broken one is never served to
// a peer nor handed to a registered State. VerifyEnvelopes checks it on
// arrival instead.
func TestEnvelopeSignatureCheckedBeforeLeaving(t *testing.T) {
	x, mallory := testIdentity(t), testIdentity(t)
	clk := newClock()
	broken := envelopeBy(t, x.DID, mallory, 1, clk.Now(), TypeText, []byte("sent by x's own node"))

	v := newNode(t, func(c *Config, _ *Deps) { c.Now = clk.Now })
	sub, err := v.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	newAttacker(t, libp2pKey(t, x), v).send(t, broken)
	m := recv(t, sub)
	require.Equal(t, x.DID, m.Author)
	require.Equal(t, 1, v.svc.Topics()[0].Cached)
	asker := newNode(t)
	link(t, asker, v)
	envs, err := asker.svc.request(context.Background(), v.h.ID(), testWire, [][]byte{m.ID[:]})
	require.NoError(t, err)
	require.Empty(t, envs, "served an envelope whose signature does not verify")
	require.Equal(t, 0, v.svc.Topics()[0].Cached, "dropped from the cache")

	// A registered State never sees it.
	mem := NewMemory(Config{NetworkID: testNet})
	rec := &recordingState{}
	require.NoError(t, mem.RegisterState(chatTopic, rec))
	xid := testIdentity(t)
	v2 := newNodeWith(t, xid, newHost(t, xid.NodeKey), identity.NewBook(), mem, func(c *Config, _ *Deps) { c.Now = clk.Now })
	require.True(t, v2.svc.Topics()[0].Stateful)
	newAttacker(t, libp2pKey(t, x), v2).send(t, broken)
	require.Eventually(t, func() bool { return rejected(v2.m, ReasonBadSignature) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, rec.count())

	// VerifyEnvelopes rejects it on arrival (and the sender's score drops).
	v3 := newNode(t, func(c *Config, _ *Deps) { c.Now = clk.Now; c.VerifyEnvelopes = true })
	_, err = v3.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	a3 := newAttacker(t, libp2pKey(t, x), v3)
	a3.send(t, broken)
	require.Eventually(t, func() bool { return rejected(v3.m, ReasonBadSignature) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, testutil.ToFloat64(v3.m.entries))
	require.Eventually(t, func() bool { s, ok := v3.svc.PeerScore(a3.h.ID()); return ok && s < 0 }, 10*time.Second, 20*time.Millisecond)
}

// New builds and starts nothing: no GossipSub, no request protocol, no
// goroutine. Subscriptions taken before Run work once it runs; Close is
// idempotent, ends Run, and a closed service does not run again.
func TestLifecycle(t *testing.T) {
	id := testIdentity(t)
	h := newHost(t, id.NodeKey)
	book := identity.NewBook()
	book.Put(id.Binding)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, nil, nil)
	require.NoError(t, err)
	cfg := Config{NetworkID: testNet, AnnounceInterval: 200 * time.Millisecond, ScoreInspectInterval: 50 * time.Millisecond}
	svc, err := New(cfg, Deps{Host: h, Identity: id, Bindings: book, Metrics: m})
	require.NoError(t, err)
	require.NotContains(t, h.Mux().Protocols(), ID, "New registered the request protocol")
	for _, p := range h.Mux().Protocols() {
		require.NotContains(t, string(p), "meshsub", "New started GossipSub")
	}
	require.Nil(t, svc.PubSub())
	sub, err := svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	require.Len(t, svc.Topics(), 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	pub, err := svc.Publish(ctx, chatTopic, TypeText, []byte("after Run"))
	require.NoError(t, err, "Publish waits for Run")
	require.Equal(t, pub.ID, recv(t, sub).ID, "a subscription taken before Run gets messages")
	require.Contains(t, h.Mux().Protocols(), ID)
	require.ErrorIs(t, svc.Run(ctx), ErrRunning)

	require.NoError(t, svc.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end Run")
	}
	require.NoError(t, svc.Close())
	require.NotContains(t, h.Mux().Protocols(), ID)
	_, ok := <-sub.Messages()
	require.False(t, ok)
	require.ErrorIs(t, sub.Err(), ErrStopped)
	require.Zero(t, testutil.ToFloat64(m.topics))

	// Never run: Close alone is enough, and Run afterwards refuses.
	svc2, err := New(cfg, Deps{Host: h, Identity: id, Bindings: book, Metrics: m})
	require.NoError(t, err)
	require.NoError(t, svc2.Close())
	require.NoError(t, svc2.Close())
	require.ErrorIs(t, svc2.Run(ctx), ErrStopped)
	_, err = svc2.Publish(ctx, chatTopic, TypeText, []byte("x"))
	require.ErrorIs(t, err, ErrStopped)
}
