package node

import (
	"context"
	"net/http"

	"github.com/intercooperative/icn/did"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Instrumentation scopes of the node's spans (docs/observability.md).
const (
	tracerName       = "github.com/intercooperative/icn/node"
	gossipTracer     = "github.com/intercooperative/icn/protocols/gossip"
	ledgersyncTracer = "github.com/intercooperative/icn/protocols/ledgersync"
)

// fetchBinding asks p for its DID binding (the identity exchange) in an
// identity.exchange span.
func (n *Node) fetchBinding(ctx context.Context, st *netStack, p peer.ID) (_ did.Binding, err error) {
	ctx, span := n.tracer.Start(ctx, "identity.exchange", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("icn.peer", p.String())))
	defer func() { endSpan(span, err) }()
	b, err := st.idsvc.Fetch(ctx, p)
	if err == nil {
		span.SetAttributes(attribute.String("icn.did", b.DID.String()))
	}
	return b, err
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ingestSpan starts a ledger.ingest span of n blocks when ctx is inside a
// trace (a pushed entry that came with one, a traced sync pull), and
// returns what ends it. Outside a trace it starts nothing: untraced
// ingests are the bulk of catch-up and would each make a trace.
func ingestSpan(ctx context.Context, tr trace.Tracer, n int) (context.Context, func(error)) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, func(error) {}
	}
	ctx, span := tr.Start(ctx, "ledger.ingest", trace.WithAttributes(attribute.Int("icn.ledger.blocks", n)))
	return ctx, func(err error) { endSpan(span, err) }
}

// traceHTTP wraps an HTTP handler so each request is a span named by its
// route ("control POST /v0/ledger/pay"), under the caller's traceparent
// header if it sent one. Without a tracer provider it returns h as is.
//
// The gateway faces members, not the operator: its spans are new traces
// that link to the caller's context instead of joining it, so a client
// cannot make the node sample (and export) what the operator's sampler
// would not.
func (n *Node) traceHTTP(server string, h http.Handler) http.Handler {
	if !n.traced {
		return h
	}
	return otelhttp.NewHandler(h, server,
		otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return server == "gateway" }),
		otelhttp.WithTracerProvider(n.tp),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()), // the node's metrics are Prometheus's
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string {
			if r.Pattern != "" {
				return op + " " + r.Pattern
			}
			return op + " " + r.Method
		}))
}
