package logging

import (
	"context"
	"log/slog"
	"slices"
	"sort"

	"go.uber.org/zap/zapcore"
)

// GoLogCore is a zap core that hands the records of go-log loggers (Badger
// through go-ds-badger4, the Kademlia DHT) to h, so they reach the node's
// one log stream, in its format, instead of zap's own lines on stderr.
// go-log still filters by its per-subsystem levels (errors only, unless
// GOLOG_LOG_LEVEL says otherwise).
func GoLogCore(h slog.Handler) zapcore.Core { return zapSlogCore{h: h} }

type zapSlogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (c zapSlogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c zapSlogCore) With(fs []zapcore.Field) zapcore.Core {
	return zapSlogCore{h: c.h, attrs: append(slices.Clip(c.attrs), fieldAttrs(fs)...)}
}

func (c zapSlogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapSlogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("component", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fs)...)
	return c.h.Handle(context.Background(), r)
}

func (c zapSlogCore) Sync() error { return nil }

func fieldAttrs(fs []zapcore.Field) []slog.Attr {
	if len(fs) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
