package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkSpan is the cost of one span (start and end) on the node's hot
// paths: with tracing off (the no-op provider), with a collector that
// takes everything, and with one that never answers (the queue full, every
// span dropped). The last must cost no more than the second: ending a span
// never waits for the collector. docs/observability.md has the figures.
func BenchmarkSpan(b *testing.B) {
	run := func(b *testing.B, tp trace.TracerProvider) {
		tr := tp.Tracer("bench")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_, s := tr.Start(ctx, "span")
			s.End()
		}
	}
	queued := func(b *testing.B, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
		m, err := newMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		q := newQueue(exp, queueOptions{maxQueue: DefaultMaxQueue, batch: DefaultBatch, delay: DefaultScheduleDelay, timeout: time.Hour}, m, nil)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
		return tp
	}
	b.Run("off", func(b *testing.B) { run(b, noop.NewTracerProvider()) })
	b.Run("collector_up", func(b *testing.B) {
		release := make(chan struct{})
		close(release)
		tp := queued(b, &blockingExporter{release: release})
		run(b, tp)
		b.StopTimer()
		_ = tp.Shutdown(context.Background())
	})
	b.Run("collector_down", func(b *testing.B) {
		exp := &blockingExporter{release: make(chan struct{})}
		tp := queued(b, exp)
		run(b, tp)
		b.StopTimer()
		close(exp.release)
		_ = tp.Shutdown(context.Background())
	})
}
