package tracing

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestOffWithoutEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := Setup(context.Background(), Config{Getenv: envOf(), Registerer: reg})
	require.NoError(t, err)
	require.False(t, p.Enabled())
	require.Contains(t, p.String(), "off")
	_, span := p.Tracer("t").Start(context.Background(), "x")
	require.False(t, span.SpanContext().IsValid(), "the no-op provider makes no spans")
	span.End()
	require.NoError(t, p.Shutdown(context.Background()))
	// The metrics exist at zero either way, so dashboards and alerts work.
	require.Equal(t, 0.0, testutil.ToFloat64(mustCounter(t, reg, "icn_tracing_spans_exported_total")))
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "x"}, func() float64 {
				return mf.GetMetric()[0].GetCounter().GetValue()
			})
		}
	}
	t.Fatalf("%s not registered", name)
	return nil
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // describe(), or the error's text
		bad  bool
	}{
		{"off", Config{}, "tracing: off (no OTEL_EXPORTER_OTLP_ENDPOINT", false},
		{"disabled", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_SDK_DISABLED", "true")}, "off (OTEL_SDK_DISABLED=true)", false},
		{"exporter none", Config{Getenv: envOf("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_TRACES_EXPORTER", "none")}, "off (OTEL_TRACES_EXPORTER=none)", false},
		{"config", Config{Endpoint: "http://c:4318"}, "tracing: on, OTLP http/protobuf to http://c:4318", false},
		{"env wins", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_EXPORTER_OTLP_ENDPOINT", "http://d:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")},
			"tracing: on, OTLP grpc to the endpoint in OTEL_EXPORTER_OTLP_ENDPOINT", false},
		{"traces endpoint", Config{Getenv: envOf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://d/v1/traces")}, "in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false},
		{"bad url", Config{Getenv: envOf("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")}, `OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318" is not valid: want a URL`, true},
		{"bad config url", Config{Endpoint: "ftp://x"}, "observability.otlp_endpoint", true},
		{"json", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")}, "http/json is not supported", true},
		{"sampler", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_TRACES_SAMPLER", "sometimes")}, `OTEL_TRACES_SAMPLER="sometimes" is not valid`, true},
		{"ratio", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "1.5")}, "a ratio from 0 to 1", true},
		{"queue", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_BSP_MAX_QUEUE_SIZE", "-1")}, "OTEL_BSP_MAX_QUEUE_SIZE", true},
		{"delay", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_BSP_SCHEDULE_DELAY", "5s")}, "milliseconds", true},
		{"exporter", Config{Endpoint: "http://c:4318", Getenv: envOf("OTEL_TRACES_EXPORTER", "zipkin")}, `"otlp" or "none"`, true},
	} {
		got, err := Check(tc.cfg)
		if tc.bad {
			require.Error(t, err, tc.name)
			require.Contains(t, err.Error(), tc.want, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Contains(t, got, tc.want, tc.name)
	}
}

// blockingExporter holds every export until released, or fails it.
type blockingExporter struct {
	release chan struct{}
	fail    error
	mu      sync.Mutex
	got     int
}

func (e *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if e.fail != nil {
		return e.fail
	}
	e.mu.Lock()
	e.got += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *blockingExporter) Shutdown(context.Context) error { return nil }

func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// A collector that does not answer never blocks span ends: the queue fills,
// and what does not fit is dropped and counted.
func TestQueueNeverBlocksAndCountsDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	require.NoError(t, err)
	exp := &blockingExporter{release: make(chan struct{})}
	q := newQueue(exp, queueOptions{maxQueue: 8, batch: 4, delay: time.Hour, timeout: time.Hour}, m, nil)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tr := tp.Tracer("t")
	end := func(n int) {
		for i := 0; i < n; i++ {
			_, s := tr.Start(context.Background(), "s")
			s.End()
		}
	}
	// The first batch of 4 is taken by the exporter, which hangs.
	end(4)
	require.Eventually(t, func() bool { return counterValue(t, reg, "icn_tracing_queue_spans", "") == 0 }, 10*time.Second, 10*time.Millisecond)
	// 8 more fill the queue; the other 88 are dropped, and End returns at once.
	end(96)
	require.Equal(t, 88.0, counterValue(t, reg, "icn_tracing_spans_dropped_total", DropQueueFull))
	require.Equal(t, 8.0, counterValue(t, reg, "icn_tracing_queue_spans", ""))
	close(exp.release)
	require.NoError(t, tp.ForceFlush(context.Background()))
	exported := counterValue(t, reg, "icn_tracing_spans_exported_total", "")
	dropped := counterValue(t, reg, "icn_tracing_spans_dropped_total", DropQueueFull)
	require.Equal(t, 100.0, exported+dropped, "every span is exported or counted as dropped")
	require.Equal(t, float64(exp.got), exported)
	require.NoError(t, tp.Shutdown(context.Background()))
}

func TestQueueCountsFailedExports(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	require.NoError(t, err)
	release := make(chan struct{})
	close(release)
	var logged strings.Builder
	log := slogTo(&logged)
	q := newQueue(&blockingExporter{release: release, fail: errors.New("connection refused")},
		queueOptions{maxQueue: 64, batch: 10, delay: time.Hour, timeout: time.Second}, m, log)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	for i := 0; i < 25; i++ {
		_, s := tp.Tracer("t").Start(context.Background(), "s")
		s.End()
	}
	require.NoError(t, tp.ForceFlush(context.Background()))
	require.Equal(t, 25.0, counterValue(t, reg, "icn_tracing_spans_dropped_total", DropExportFailed))
	require.Equal(t, 0.0, counterValue(t, reg, "icn_tracing_spans_exported_total", ""))
	require.NoError(t, tp.Shutdown(context.Background()))
	// One warning for the first failure, not one per batch.
	require.Equal(t, 1, strings.Count(logged.String(), "could not be exported"), logged.String())
	require.Contains(t, logged.String(), "connection refused")
}

// Shutdown exports what is still queued.
func TestShutdownFlushes(t *testing.T) {
	release := make(chan struct{})
	close(release)
	exp := &blockingExporter{release: release}
	m, err := newMetrics(nil)
	require.NoError(t, err)
	q := newQueue(exp, queueOptions{maxQueue: 64, batch: 10, delay: time.Hour, timeout: time.Second}, m, nil)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	for i := 0; i < 3; i++ {
		_, s := tp.Tracer("t").Start(context.Background(), "s")
		s.End()
	}
	require.NoError(t, tp.Shutdown(context.Background()))
	require.Equal(t, 3, exp.got)
	_, s := tp.Tracer("t").Start(context.Background(), "late")
	s.End()
	require.Equal(t, 3, exp.got)
}

func slogTo(b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(&syncWriter{b: b}, nil))
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
