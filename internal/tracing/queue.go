package tracing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Why spans are dropped (icn_tracing_spans_dropped_total{reason}).
const (
	DropQueueFull    = "queue_full"
	DropExportFailed = "export_failed"
)

// Metrics are the queue's counters.
type Metrics struct {
	exported prometheus.Counter
	dropped  *prometheus.CounterVec
	queued   prometheus.GaugeFunc
	queueLen func() int
}

func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		exported: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_tracing_spans_exported_total",
			Help: "Spans handed to the OTLP collector and acknowledged."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_tracing_spans_dropped_total",
			Help: "Spans lost: queue_full (the export queue was full, the collector is slow or unreachable), export_failed (the collector refused or did not answer)."},
			[]string{"reason"}),
	}
	m.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icn_tracing_queue_spans",
		Help: "Finished spans waiting in the export queue now."}, func() float64 {
		if m.queueLen == nil {
			return 0
		}
		return float64(m.queueLen())
	})
	for _, r := range []string{DropQueueFull, DropExportFailed} {
		m.dropped.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.exported, m.dropped, m.queued} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type queueOptions struct {
	maxQueue, batch int
	delay, timeout  time.Duration
}

// queue is the span processor: a bounded queue that OnEnd never blocks on
// (a full queue drops the span and counts it) and one goroutine that
// exports batches. The SDK's BatchSpanProcessor does the same but keeps
// its drop count to itself; operators need it on /metrics.
type queue struct {
	exp   sdktrace.SpanExporter
	opts  queueOptions
	m     *Metrics
	log   *slog.Logger
	spans chan sdktrace.ReadOnlySpan
	flush chan chan struct{}
	quit  chan context.Context
	done  chan struct{}

	stopOnce sync.Once
	mu       sync.RWMutex // held for reading while enqueuing; stopped under write
	stopped  bool

	lastWarn time.Time // the export goroutine's only
	failed   int
}

func newQueue(exp sdktrace.SpanExporter, opts queueOptions, m *Metrics, log *slog.Logger) *queue {
	q := &queue{exp: exp, opts: opts, m: m, log: log,
		spans: make(chan sdktrace.ReadOnlySpan, opts.maxQueue),
		flush: make(chan chan struct{}),
		quit:  make(chan context.Context, 1),
		done:  make(chan struct{})}
	m.queueLen = func() int { return len(q.spans) }
	go q.run()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.stopped {
		return
	}
	select {
	case q.spans <- s:
	default:
		q.m.dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

func (q *queue) run() {
	defer close(q.done)
	t := time.NewTimer(q.opts.delay)
	defer t.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, q.opts.batch)
	export := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, q.opts.timeout)
		err := q.exp.ExportSpans(ctx, batch)
		cancel()
		if err != nil {
			q.m.dropped.WithLabelValues(DropExportFailed).Add(float64(len(batch)))
			q.warn(err, len(batch))
		} else {
			q.m.exported.Add(float64(len(batch)))
		}
		clear(batch)
		batch = batch[:0]
	}
	drain := func(ctx context.Context) {
		for {
			select {
			case s := <-q.spans:
				batch = append(batch, s)
				if len(batch) >= q.opts.batch {
					export(ctx)
				}
			default:
				export(ctx)
				return
			}
		}
	}
	for {
		select {
		case s := <-q.spans:
			batch = append(batch, s)
			if len(batch) >= q.opts.batch {
				export(context.Background())
			}
		case <-t.C:
			export(context.Background())
			t.Reset(q.opts.delay)
		case ack := <-q.flush:
			drain(context.Background())
			close(ack)
		case ctx := <-q.quit:
			drain(ctx)
			return
		}
	}
}

// warn logs export failures at most once a minute.
func (q *queue) warn(err error, n int) {
	q.failed += n
	if now := time.Now(); now.Sub(q.lastWarn) >= time.Minute {
		q.log.Warn("tracing: spans could not be exported to the OTLP collector and were dropped; check OTEL_EXPORTER_OTLP_ENDPOINT and that the collector runs",
			"spans", q.failed, "err", err)
		q.lastWarn, q.failed = now, 0
	}
}

func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, until ctx ends, then shuts the exporter
// down. Spans that end later are not exported.
func (q *queue) Shutdown(ctx context.Context) error {
	var err error
	q.stopOnce.Do(func() {
		q.mu.Lock()
		q.stopped = true
		q.mu.Unlock()
		q.quit <- ctx
		select {
		case <-q.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		err = errors.Join(err, q.exp.Shutdown(ctx))
	})
	return err
}
