package node

import (
	"context"
	"io"
	"log/slog"

	"github.com/intercooperative/icn/node/config"
)

// NewLogger builds the slog logger for the configured level and format
// ("text" or "json"). The config has already validated both.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch config.Level(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
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
