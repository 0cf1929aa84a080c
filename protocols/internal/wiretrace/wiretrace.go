// Package wiretrace owns the one wire form of trace context that ICN
// protocols carry between nodes: an optional extension block after a
// message's signed part (gossip envelopes) or after a request (ledgersync).
//
// An extension block is zero or more extensions, each a kind byte, a
// uvarint length and that many bytes of value, at most MaxBlock bytes in
// all. Kind 1 is a W3C trace context in its binary form (version 0, 16-byte
// trace ID, 8-byte span ID, 1-byte flags: ContextSize bytes). Unknown
// kinds are skipped, so later versions can add some; a malformed block is
// an error. The block is never signed by the message's author and never
// part of a message ID: it says where the work came from, not what it is.
package wiretrace

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"
)

const (
	// KindTraceContext is the extension kind of a trace context.
	KindTraceContext = 1
	// ContextSize is the size of a binary trace context.
	ContextSize = 1 + 16 + 8 + 1
	// MaxBlock bounds an extension block.
	MaxBlock = 256
	// version is the only binary trace-context version understood.
	version = 0
)

// ErrMalformed marks an extension block that does not parse.
var ErrMalformed = errors.New("malformed extension block")

// Append appends the extension block carrying sc to b, or nothing when sc
// is not valid (no trace: no bytes).
func Append(b []byte, sc trace.SpanContext) []byte {
	if !sc.IsValid() {
		return b
	}
	b = append(b, KindTraceContext, ContextSize, version)
	tid, sid := sc.TraceID(), sc.SpanID()
	b = append(b, tid[:]...)
	b = append(b, sid[:]...)
	return append(b, byte(sc.TraceFlags()))
}

// Size is how many bytes Append adds for sc.
func Size(sc trace.SpanContext) int {
	if !sc.IsValid() {
		return 0
	}
	return 2 + ContextSize
}

// Parse reads an extension block (all of b) and returns the trace context
// it carries, marked remote, or an invalid SpanContext when it carries
// none. Errors wrap ErrMalformed.
func Parse(b []byte) (trace.SpanContext, error) {
	var sc trace.SpanContext
	if len(b) > MaxBlock {
		return sc, fmt.Errorf("%w: %d bytes exceed %d", ErrMalformed, len(b), MaxBlock)
	}
	seen := false
	for len(b) > 0 {
		kind := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return trace.SpanContext{}, fmt.Errorf("%w: extension %d has a bad length", ErrMalformed, kind)
		}
		v := b[1+k : 1+k+int(n)]
		b = b[1+k+int(n):]
		if kind != KindTraceContext {
			continue
		}
		if seen {
			return trace.SpanContext{}, fmt.Errorf("%w: two trace contexts", ErrMalformed)
		}
		seen = true
		var err error
		if sc, err = parseContext(v); err != nil {
			return trace.SpanContext{}, err
		}
	}
	return sc, nil
}

func parseContext(v []byte) (trace.SpanContext, error) {
	if len(v) != ContextSize || v[0] != version {
		return trace.SpanContext{}, fmt.Errorf("%w: a trace context is %d bytes of version %d", ErrMalformed, ContextSize, version)
	}
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], v[1:17])
	copy(sid[:], v[17:25])
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid,
		TraceFlags: trace.TraceFlags(v[25]) & trace.FlagsSampled, Remote: true})
	if !sc.IsValid() {
		return trace.SpanContext{}, fmt.Errorf("%w: zero trace or span ID", ErrMalformed)
	}
	return sc, nil
}
