package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/protocols/internal/wiretrace"
)

func withTracer(tp trace.TracerProvider) nodeOpt {
	return func(_ *Config, d *Deps) { d.Tracer = tp.Tracer("gossip-test") }
}

func spanNamed(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// A message published inside a trace carries the publish span's context:
// the receiver validates and delivers it in spans of the same trace, and
// hands the context to its subscribers.
func TestTraceContextTravelsWithTheMessage(t *testing.T) {
	recA, recB := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recA))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recB))
	a, b := newNode(t, withTracer(tpA)), newNode(t, withTracer(tpB))
	subB, err := b.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	_, err = a.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	link(t, a, b)
	waitTopicPeer(t, a.svc.PubSub(), testWire, b.h.ID())

	ctx, root := tpA.Tracer("test").Start(context.Background(), "payment")
	pub, err := a.svc.Publish(ctx, chatTopic, TypeText, []byte("traced"))
	require.NoError(t, err)
	root.End()
	m := recv(t, subB)
	require.Equal(t, pub.ID, m.ID)
	require.True(t, m.Trace.IsValid())
	require.Equal(t, root.SpanContext().TraceID(), m.Trace.TraceID())

	publish := spanNamed(recA.Ended(), "gossip.publish")
	require.NotNil(t, publish)
	require.Equal(t, root.SpanContext().SpanID(), publish.Parent().SpanID())
	require.Eventually(t, func() bool { return spanNamed(recB.Ended(), "gossip.deliver") != nil }, 5*time.Second, 10*time.Millisecond)
	for _, name := range []string{"gossip.validate", "gossip.deliver"} {
		s := spanNamed(recB.Ended(), name)
		require.NotNil(t, s, name)
		require.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), name)
		require.Equal(t, publish.SpanContext().SpanID(), s.Parent().SpanID(), name)
		require.True(t, s.Parent().IsRemote(), name)
	}
	require.Equal(t, m.Trace.SpanID(), spanNamed(recB.Ended(), "gossip.deliver").SpanContext().SpanID())

	// Untraced messages make no spans on the receiver.
	before := len(recB.Ended())
	_, err = a.svc.Publish(context.Background(), chatTopic, TypeText, []byte("plain"))
	require.NoError(t, err)
	m = recv(t, subB)
	require.False(t, m.Trace.IsValid())
	require.Equal(t, before, len(recB.Ended()))
}

// The extension block is outside the message ID and the author's
// signature: the same envelope with another trace context (or none) is the
// same message, and a malformed block is rejected.
func TestExtensionBlockIsOutsideTheMessage(t *testing.T) {
	victim := newNode(t)
	sub, err := victim.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	author := testIdentity(t)
	victim.book.Put(author.Binding)
	att := newAttacker(t, libp2pKey(t, author), victim)
	victim.book.Put(author.Binding)

	raw := envelopeBy(t, author.DID, author, 1, time.Now(), TypeText, []byte("x"))
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	att.send(t, wiretrace.Append(append([]byte{}, raw...), sc))
	m := recv(t, sub)
	require.Equal(t, IDOf(raw), m.ID, "the ID is the envelope's alone")
	got, err := Decode(raw, DefaultMaxMessageSize)
	require.NoError(t, err)
	require.Equal(t, got.Signature, m.Signature)

	// The same envelope again, with another context: a duplicate.
	sc2 := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4}})
	att.send(t, wiretrace.Append(append([]byte{}, raw...), sc2))
	// A malformed block after a fresh envelope: rejected as malformed.
	raw2 := envelopeBy(t, author.DID, author, 2, time.Now(), TypeText, []byte("y"))
	att.send(t, append(append([]byte{}, raw2...), wiretrace.KindTraceContext, 3, 0, 0, 0))
	require.Eventually(t, func() bool { return rejected(victim.m, ReasonMalformed) == 1 }, 5*time.Second, 10*time.Millisecond)
	select {
	case m := <-sub.Messages():
		t.Fatalf("delivered %x", m.Payload)
	default:
	}
}
