package ledgersync

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func ended(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// A pull kicked for a trace's work is a span of that trace; the request
// carries its context, so the responder's span is its child. A pull that
// no trace asked for makes no span.
func TestPullIsPartOfTheTraceThatKickedIt(t *testing.T) {
	recA, recB := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recA))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recB))
	full := history(t, 50)
	ha, hb := newHost(t), newHost(t)
	serve(t, New(ha, full, quiet, Options{Tracer: tpA.Tracer("a")}))
	empty := newMemLedger()
	s, _ := runSchedulerWith(t, SchedulerConfig{Host: hb, Ledger: empty, Tracer: tpB.Tracer("b")})
	connect(t, hb, ha)
	// The connection starts an untraced pull, which fetches everything.
	want := full.l.StateHash()
	require.Eventually(t, func() bool {
		empty.mu.Lock()
		defer empty.mu.Unlock()
		return empty.l.StateHash() == want
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.running) == 0
	}, 10*time.Second, 10*time.Millisecond)
	require.Empty(t, ended(recB, "ledgersync.pull"))
	require.Empty(t, ended(recA, "ledgersync.serve"))

	_, why := tpB.Tracer("test").Start(context.Background(), "gossip.deliver")
	why.End()
	s.Kick(ha.ID(), why.SpanContext())
	require.Eventually(t, func() bool { return len(ended(recB, "ledgersync.pull")) == 1 }, 10*time.Second, 10*time.Millisecond)
	pull := ended(recB, "ledgersync.pull")[0]
	require.Equal(t, why.SpanContext().TraceID(), pull.SpanContext().TraceID())
	require.Equal(t, why.SpanContext().SpanID(), pull.Parent().SpanID())
	require.Eventually(t, func() bool { return len(ended(recA, "ledgersync.serve")) == 1 }, 10*time.Second, 10*time.Millisecond)
	srv := ended(recA, "ledgersync.serve")[0]
	require.Equal(t, pull.SpanContext().TraceID(), srv.SpanContext().TraceID())
	require.Equal(t, pull.SpanContext().SpanID(), srv.Parent().SpanID())
	require.True(t, srv.Parent().IsRemote())
	require.Equal(t, trace.SpanKindServer, srv.SpanKind())
}
