package controlapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// ProgressEvent is one line of a progress stream, the answer of routes that
// run for a while (ledger verify, ledger sync): newline-delimited JSON,
// one flushed line per event. Progress lines carry Done and Total; the last
// line carries the Report, or Error when the work failed after the stream
// had begun. Errors found before any work started are ordinary JSON errors
// with their status code.
type ProgressEvent[R any] struct {
	Done   int    `json:"done"`
	Total  int    `json:"total"`
	Report *R     `json:"report,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ProgressInterval is the least time between two progress lines; the line
// that reaches the total is always sent.
const ProgressInterval = 200 * time.Millisecond

// StreamProgress answers 200 with a progress stream: it calls run, sends its
// progress calls (throttled to one per ProgressInterval), then one line with
// run's report or its error. run must not call progress concurrently.
func StreamProgress[R any](w http.ResponseWriter, run func(progress func(done, total int)) (R, error)) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	var last time.Time
	var done, total int
	rep, err := run(func(d, t int) {
		done, total = d, t
		if time.Since(last) < ProgressInterval && d < t {
			return
		}
		last = time.Now()
		_ = enc.Encode(ProgressEvent[R]{Done: d, Total: t})
		flush()
	})
	if err != nil {
		_ = enc.Encode(ProgressEvent[R]{Error: err.Error()})
		flush()
		return
	}
	_ = enc.Encode(ProgressEvent[R]{Done: done, Total: total, Report: &rep})
	flush()
}

// maxProgressLine bounds one line of a progress stream (a report).
const maxProgressLine = 16 << 20

// streamProgress sends a request to a progress-stream route, calls progress
// for each progress line, and returns the report.
func streamProgress[R any](ctx context.Context, c *Client, route string, body any, progress func(done, total int)) (R, error) {
	var zero R
	resp, err := c.send(ctx, http.MethodPost, route, body)
	if err != nil {
		return zero, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxProgressLine)
	for sc.Scan() {
		var ev ProgressEvent[R]
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return zero, fmt.Errorf("bad line in the answer to %s: %w", route, err)
		}
		switch {
		case ev.Error != "":
			return zero, &Error{Status: http.StatusInternalServerError, Message: ev.Error}
		case ev.Report != nil:
			return *ev.Report, nil
		case progress != nil:
			progress(ev.Done, ev.Total)
		}
	}
	if err := sc.Err(); err != nil {
		return zero, fmt.Errorf("control socket %s: reading the answer to %s: %w", c.socket, route, err)
	}
	return zero, fmt.Errorf("icnd ended its answer to %s without a report", route)
}
