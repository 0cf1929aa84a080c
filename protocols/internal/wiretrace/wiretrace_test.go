package wiretrace

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

func testContext(t *testing.T, sampled bool) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	require.NoError(t, err)
	var f trace.TraceFlags
	if sampled {
		f = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: f})
}

// The vector is the W3C example traceparent
// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 in binary, as
// kind 1 with length 26.
func TestVector(t *testing.T) {
	sc := testContext(t, true)
	b := Append(nil, sc)
	require.Equal(t, "011a"+"00"+"4bf92f3577b34da6a3ce929d0e0e4736"+"00f067aa0ba902b7"+"01", hex.EncodeToString(b))
	require.Equal(t, len(b), Size(sc))
	got, err := Parse(b)
	require.NoError(t, err)
	require.True(t, got.IsRemote())
	require.Equal(t, sc.TraceID(), got.TraceID())
	require.Equal(t, sc.SpanID(), got.SpanID())
	require.True(t, got.IsSampled())
}

func TestNoContextNoBytes(t *testing.T) {
	require.Empty(t, Append(nil, trace.SpanContext{}))
	require.Zero(t, Size(trace.SpanContext{}))
	sc, err := Parse(nil)
	require.NoError(t, err)
	require.False(t, sc.IsValid())
}

func TestUnknownKindsAreSkipped(t *testing.T) {
	sc := testContext(t, false)
	b := append([]byte{7, 3, 'a', 'b', 'c'}, Append(nil, sc)...)
	b = append(b, 9, 0)
	got, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, sc.TraceID(), got.TraceID())
	require.False(t, got.IsSampled())
}

func TestMalformed(t *testing.T) {
	good := Append(nil, testContext(t, true))
	zero := append([]byte{}, good...)
	for i := 3; i < 19; i++ {
		zero[i] = 0
	}
	for name, b := range map[string][]byte{
		"truncated":       good[:len(good)-1],
		"length too long": {KindTraceContext, 40, 0},
		"bad varint":      {5, 0x80},
		"wrong size":      {KindTraceContext, 2, 0, 1},
		"wrong version":   append([]byte{KindTraceContext, ContextSize, 1}, good[3:]...),
		"zero trace ID":   zero,
		"twice":           append(append([]byte{}, good...), good...),
		"oversize":        append([]byte{5, 0x81, 0x02}, make([]byte, 257)...),
	} {
		_, err := Parse(b)
		require.Error(t, err, name)
		require.True(t, errors.Is(err, ErrMalformed), name)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add(Append(nil, trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})))
	f.Add([]byte{7, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := Parse(b)
		if err != nil {
			return
		}
		if !sc.IsValid() {
			return
		}
		// What parses re-encodes to a block that parses to the same context.
		again, err := Parse(Append(nil, sc))
		if err != nil || again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("round trip of %x: %v", b, err)
		}
	})
}
