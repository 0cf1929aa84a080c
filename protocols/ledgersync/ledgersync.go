// Package ledgersync implements /icn/ledgersync/1.0.0, the pull half of
// ledger replication. The requester sends, per author, the highest seq it
// holds and a digest of those entries; the responder streams back, in the
// same round trip, every block the requester lacks. Sizes are bounded, both
// sides run under deadlines and resource-manager scopes, and a stream that
// breaks the rules is reset.
package ledgersync

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
)

// ID is the protocol ID.
const ID protocol.ID = "/icn/ledgersync/1.0.0"

// ServiceName is the resource-manager service scope.
const ServiceName = "icn.ledgersync"

// Limits.
const (
	// MaxAuthors bounds one request's summary.
	MaxAuthors = 1 << 16
	// MaxEntriesPerResponse bounds one response; a requester that is further
	// behind asks again.
	MaxEntriesPerResponse = 200_000
	// RequestTimeout bounds reading a request; ResponseTimeout a whole response.
	RequestTimeout  = 30 * time.Second
	ResponseTimeout = 10 * time.Minute
	// BatchSize is how many blocks are ingested at a time.
	BatchSize = 512
	// ingesters run concurrently, so verification overlaps commits.
	ingesters = 2
	// summaryRecord is one author in a request: key, top, digest.
	summaryRecord = ed25519.PublicKeySize + 8 + 32
	// streamBuffer is reserved with the resource manager per stream.
	streamBuffer = 1 << 20
)

// Ledger is what the protocol needs from the node's ledger.
type Ledger interface {
	// Summary is the local summary per author.
	Summary() map[did.DID]ledger.AuthorSummary
	// MissingFrom returns the blocks a peer with this summary lacks.
	MissingFrom(ctx context.Context, remote map[did.DID]ledger.AuthorSummary, limit int) ([][]byte, error)
	// Ingest verifies and stores blocks received from a peer.
	Ingest(ctx context.Context, blocks [][]byte) (Stats, error)
}

// Stats counts what one ingest or one sync did.
type Stats struct {
	Received int // blocks received
	New      int // blocks not known before
	Rejected int // blocks refused (malformed, bad signature, static rules)
}

func (s *Stats) add(o Stats) { s.Received += o.Received; s.New += o.New; s.Rejected += o.Rejected }

// Service serves the protocol on a host and pulls from peers.
type Service struct {
	h   host.Host
	led Ledger
	log *slog.Logger
	// OnServe is called with the number of blocks sent per request served.
	onServe func(int)
}

// Options are optional hooks.
type Options struct {
	OnServe func(sent int)
}

// New registers the stream handler.
func New(h host.Host, led Ledger, log *slog.Logger, opts Options) *Service {
	s := &Service{h: h, led: led, log: log, onServe: opts.OnServe}
	h.SetStreamHandler(ID, s.handle)
	return s
}

// Close removes the handler. It is idempotent.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ID)
	return nil
}

func (s *Service) handle(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("ledgersync: resource manager refused the stream", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	if err := st.Scope().ReserveMemory(streamBuffer, network.ReservationPriorityMedium); err != nil {
		s.log.Debug("ledgersync: no memory for the stream", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(streamBuffer)
	_ = st.SetReadDeadline(time.Now().Add(RequestTimeout))
	remote, err := readSummary(bufio.NewReader(st))
	if err != nil {
		s.log.Info("ledgersync: bad request", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	_ = st.SetWriteDeadline(time.Now().Add(ResponseTimeout))
	blocks, err := s.led.MissingFrom(context.Background(), remote, MaxEntriesPerResponse)
	if err != nil {
		s.log.Warn("ledgersync: cannot read the blocks a peer lacks", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	w := bufio.NewWriterSize(st, 64<<10)
	for _, b := range blocks {
		if err := writeFrame(w, b); err != nil {
			st.Reset()
			return
		}
	}
	if err := writeFrame(w, nil); err != nil || w.Flush() != nil {
		st.Reset()
		return
	}
	st.Close()
	if s.onServe != nil {
		s.onServe(len(blocks))
	}
}

// Sync pulls from p everything the local ledger lacks, ingesting as blocks
// arrive, and reports what it got. progress, if set, is called after each
// ingested batch with the running total.
func (s *Service) Sync(ctx context.Context, p peer.ID, progress func(received int)) (Stats, error) {
	var total Stats
	ctx, cancel := context.WithTimeout(ctx, ResponseTimeout)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ID)
	if err != nil {
		return total, fmt.Errorf("open %s to %s: %w", ID, p, err)
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return total, err
	}
	if err := st.Scope().ReserveMemory(streamBuffer, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return total, err
	}
	defer st.Scope().ReleaseMemory(streamBuffer)
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	w := bufio.NewWriter(st)
	if err := writeSummary(w, s.led.Summary()); err != nil || w.Flush() != nil {
		st.Reset()
		return total, fmt.Errorf("send summary to %s: %w", p, err)
	}
	_ = st.CloseWrite()
	r := bufio.NewReaderSize(st, 64<<10)

	// Two ingesters: one verifies a batch while the other applies and
	// commits the previous one.
	batches := make(chan [][]byte, 2)
	var mu sync.Mutex
	var ingestErr error
	var wg sync.WaitGroup
	for w := 0; w < ingesters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				got, err := s.led.Ingest(ctx, b)
				mu.Lock()
				total.add(got)
				if err != nil && ingestErr == nil {
					ingestErr = err
				}
				if progress != nil {
					progress(total.Received) // under mu: never concurrently
				}
				mu.Unlock()
			}
		}()
	}
	finish := func(err error) (Stats, error) {
		close(batches)
		wg.Wait()
		if err == nil {
			err = ingestErr
		}
		return total, err
	}
	var batch [][]byte
	for n := 0; ; n++ {
		b, err := readFrame(r, ledger.MaxEntrySize)
		if err != nil {
			st.Reset()
			return finish(fmt.Errorf("read from %s after %d blocks: %w", p, n, err))
		}
		if b == nil {
			break
		}
		if n >= MaxEntriesPerResponse {
			st.Reset()
			return finish(fmt.Errorf("%s sent more than %d blocks", p, MaxEntriesPerResponse))
		}
		batch = append(batch, b)
		if len(batch) == BatchSize {
			batches <- batch
			batch = nil
		}
	}
	st.Close()
	if len(batch) > 0 {
		batches <- batch
	}
	return finish(nil)
}

// writeSummary: uvarint count, then per author key(32) top(8) digest(32).
func writeSummary(w io.Writer, sum map[did.DID]ledger.AuthorSummary) error {
	if len(sum) > MaxAuthors {
		return fmt.Errorf("%d authors exceeds %d", len(sum), MaxAuthors)
	}
	buf := binary.AppendUvarint(nil, uint64(len(sum)))
	for d, a := range sum {
		buf = append(buf, d.PublicKey()...)
		buf = binary.BigEndian.AppendUint64(buf, a.Top)
		buf = append(buf, a.Digest[:]...)
	}
	_, err := w.Write(buf)
	return err
}

func readSummary(r *bufio.Reader) (map[did.DID]ledger.AuthorSummary, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxAuthors {
		return nil, fmt.Errorf("%d authors exceeds %d", n, MaxAuthors)
	}
	out := make(map[did.DID]ledger.AuthorSummary, n)
	var rec [summaryRecord]byte
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return nil, err
		}
		d, err := did.FromPublicKey(ed25519.PublicKey(rec[:ed25519.PublicKeySize]))
		if err != nil {
			return nil, fmt.Errorf("author %d: %w", i, err)
		}
		var a ledger.AuthorSummary
		a.Top = binary.BigEndian.Uint64(rec[ed25519.PublicKeySize:])
		copy(a.Digest[:], rec[ed25519.PublicKeySize+8:])
		out[d] = a
	}
	return out, nil
}

// A frame is a uvarint length and that many bytes; length 0 ends a response.
func writeFrame(w io.Writer, b []byte) error {
	hdr := binary.AppendUvarint(nil, uint64(len(b)))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

var errFrameTooBig = errors.New("frame exceeds the limit")

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errFrameTooBig, n, max)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}
