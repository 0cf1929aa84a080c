// Package logging owns icnd's one log stream: the slog logger built from the
// configured level and format, and the adapters that bring go-libp2p's slog
// loggers (gologshim) and go-log's zap loggers (Badger, the Kademlia DHT)
// into that stream, in its format. It is process-global plumbing, so only
// cmd/icnd installs it; node and the test harness just take a *slog.Logger.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// New builds the slog logger for level and format ("json" in any case,
// else text). Durations are written as strings ("1.5s") in both formats:
// slog's JSON handler would otherwise write them as integer nanoseconds.
//
// A line logged with a context that holds a span (slog's *Context
// methods) carries trace_id and span_id, so the log of one payment can be
// found from its trace and back.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsStrings}
	if strings.EqualFold(format, "json") {
		return slog.New(TraceIDs(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(TraceIDs(slog.NewTextHandler(w, opts)))
}

// TraceIDs wraps h so that records logged with a context holding a valid
// span context get trace_id and span_id attributes (hex, as OTLP and
// Jaeger show them).
func TraceIDs(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (t traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return t.Handler.Handle(ctx, r)
}

func (t traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{t.Handler.WithAttrs(as)}
}

func (t traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{t.Handler.WithGroup(name)}
}

// durationsAsStrings is a slog ReplaceAttr: a time.Duration value becomes
// its String() form.
func durationsAsStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// Libp2pHandler wraps h for go-libp2p's internal loggers: they log only at
// warn and above (or at the node's level if that is higher), in the node's
// format and to the node's output, so operators see one log stream.
//
// It drops the records that only repeat an error libp2p.New also returns
// (icnd prints that error once, as "icnd: error: …"): everything of the fx
// dependency-injection logger (go-libp2p tags it system=fx; a transport
// that fails to start makes it log three ERROR lines), and the swarm's
// "listening failed" warning, which with the node's one listen address
// always comes with "failed to listen on any addresses" as the error.
func Libp2pHandler(h slog.Handler) slog.Handler { return floorHandler{Handler: h, min: slog.LevelWarn} }

type floorHandler struct {
	slog.Handler
	min slog.Level
	// drop is a message this logger writes only when it also returns the
	// error to libp2p.New ("" drops nothing).
	drop string
}

func (f floorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f floorHandler) Handle(ctx context.Context, r slog.Record) error {
	if f.drop != "" && r.Message == f.drop {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f floorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	drop := f.drop
	for _, a := range as {
		switch {
		case isString(a, "system", "fx"):
			return discard{}
		case isString(a, "logger", "swarm2"):
			drop = "listening failed"
		}
	}
	return floorHandler{Handler: f.Handler.WithAttrs(as), min: f.min, drop: drop}
}

func (f floorHandler) WithGroup(name string) slog.Handler {
	return floorHandler{Handler: f.Handler.WithGroup(name), min: f.min, drop: f.drop}
}

func isString(a slog.Attr, key, value string) bool {
	return a.Key == key && a.Value.Kind() == slog.KindString && a.Value.String() == value
}

// discard is a slog.Handler that writes nothing.
type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
