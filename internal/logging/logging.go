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
)

// New builds the slog logger for level and format ("json", else text).
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Libp2pHandler wraps h for go-libp2p's internal loggers: they log only at
// warn and above (or at the node's level if that is higher), in the node's
// format and to the node's output, so operators see one log stream.
func Libp2pHandler(h slog.Handler) slog.Handler { return floorHandler{Handler: h, min: slog.LevelWarn} }

type floorHandler struct {
	slog.Handler
	min slog.Level
}

func (f floorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f floorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return floorHandler{Handler: f.Handler.WithAttrs(as), min: f.min}
}

func (f floorHandler) WithGroup(name string) slog.Handler {
	return floorHandler{Handler: f.Handler.WithGroup(name), min: f.min}
}
