package streams

import (
	"errors"
	"io"
)

// Reader reads a stream and remembers whether the transport failed under
// it, so that a protocol can tell a peer's protocol violation from a
// network failure. A read that fails with anything but io.EOF (a deadline,
// a reset, a closed connection) is the transport's failure: an honest peer
// that is slow or goes away causes it. Any other error while parsing what
// was read (a count or length over its limit, bytes that do not decode, the
// stream ending cleanly in the middle of a message) is the data's fault,
// and an honest peer never sends such data.
//
// A Reader is used by one goroutine at a time, like the stream it reads.
type Reader struct {
	r   io.Reader
	err error
}

// NewReader reads r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}

// Failed is the first error the transport returned, if any (io.EOF is none).
func (r *Reader) Failed() error { return r.err }

// Violation reports whether err, returned while parsing what r read, is the
// peer's fault: err is set and the transport never failed. Call it only
// with errors of the parse (not, say, a resource manager's refusal), and
// note that a violation found in data buffered just before the transport
// failed counts as the transport's: the doubt goes to the peer.
func (r *Reader) Violation(err error) bool { return err != nil && r.err == nil }
