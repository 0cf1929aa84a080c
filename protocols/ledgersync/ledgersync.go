// Package ledgersync implements /icn/ledgersync/2.0.0, the pull half of
// ledger replication, in one round trip.
//
// The requester opens a stream and sends its summary: a uvarint author
// count, then per author its 32-byte key, the highest seq it holds (8 bytes,
// big-endian) and a 32-byte digest of those entries; then, optionally, an
// extension block carrying the trace context of the pull
// (protocols/internal/wiretrace; responders before it ignore it); then it
// closes its write side. The responder answers with a uvarint N, the number of blocks
// that follow (at most MaxEntriesPerResponse), then N frames (a uvarint
// length and that many bytes, one block each, at most ledger.MaxEntrySize),
// then an empty frame. Knowing N up front lets the requester report how far
// behind it is while it ingests (Service.Sync's progress callback).
//
// Sizes are bounded, both sides run under deadlines (the requester also cuts
// off a responder that sends nothing for StallTimeout) and resource-manager
// scopes, and a stream that breaks the rules is reset. The responder
// accounts what it holds with the stream's scope: the request's summary
// while it is in memory, the list of CIDs to send, and the blocks it reads
// from the ledger, one chunk at a time (about SendChunk bytes). The chunk's
// memory is reserved before the count goes out: if the resource manager
// refuses, the stream is reset before anything is announced, so the
// requester never reads a count the responder cannot serve (QUIC drops
// unread data on a reset, so a cut after the count would race the count
// itself). A stream that breaks mid-response leaves the requester with what
// it received. A response that
// announces more than MaxEntriesPerResponse blocks, sends more or fewer
// frames than it announced, or sends an oversize frame is a protocol
// violation: Sync returns an error wrapping ErrViolation, so the caller can
// hold the responder to account. Blocks that arrive intact but do not verify
// are counted in Stats.Rejected; the Ledger learns which peer sent them.
//
// On the serving side, a request that breaks the rules (more than
// MaxAuthors, an author key that is no key, a trace block that does not
// parse, a summary cut short by the requester's end of writing) is
// malformed: the stream is reset and the requester is charged one unit
// (Options.Penalties). A request that does not arrive in time, or whose
// stream breaks, costs nothing: an honest requester can be slow.
//
// Version 1.0.0 had no count; the two are not wire compatible, hence the
// new major version.
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
	"net"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/protocols/internal/streams"
	"github.com/intercooperative/icn/protocols/internal/wiretrace"
)

// ID is the protocol ID.
const ID protocol.ID = "/icn/ledgersync/2.0.0"

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
	// StallTimeout bounds how long a requester waits for the next byte of
	// a response (the header included): a responder that stalls mid-stream
	// is cut off then, instead of holding the pull (and an operator's
	// `icnctl ledger sync`, which joins a pull already running) for the
	// whole ResponseTimeout.
	StallTimeout = 30 * time.Second
	// BatchSize is how many blocks are ingested at a time.
	BatchSize = 512
	// ingesters run concurrently, so verification overlaps commits.
	ingesters = 2
	// summaryRecord is one author in a request: key, top, digest.
	summaryRecord = ed25519.PublicKeySize + 8 + 32
	// streamBuffer is reserved with the resource manager per requesting stream.
	streamBuffer = 1 << 20
	// SendChunk is how many bytes of blocks the responder reads from the
	// ledger before it sends them and releases their memory.
	SendChunk = 256 << 10
	// respondBuffers is what a responding stream holds besides the blocks:
	// its read and write buffers.
	respondBuffers = 4<<10 + 64<<10
	// summaryCost and cidCost are the memory one author of a request's
	// summary and one CID to send take, as accounted.
	summaryCost = 128
	cidCost     = 64
)

// Ledger is what the protocol needs from the node's ledger.
type Ledger interface {
	// Summary is the local summary per author.
	Summary() map[did.DID]ledger.AuthorSummary
	// MissingCIDs returns the CIDs of the blocks a peer with this summary
	// lacks, in the order to send them, at most limit.
	MissingCIDs(remote map[did.DID]ledger.AuthorSummary, limit int) []cid.Cid
	// Block reads one stored block.
	Block(ctx context.Context, c cid.Cid) ([]byte, error)
	// Ingest verifies and stores blocks received from peer from. Blocks
	// that fail verification count in Stats.Rejected: from served them.
	Ingest(ctx context.Context, from peer.ID, blocks [][]byte) (Stats, error)
}

// Stats counts what one ingest or one sync did.
type Stats struct {
	// Announced is how many blocks the responder said it would send (set
	// by Sync once the response header has arrived).
	Announced int
	Received  int // blocks received and ingested
	New       int // blocks not known before
	Rejected  int // blocks refused (malformed, bad signature, static rules)
	// FirstRejected is the first block refused and why (for the log), if
	// the Ledger says.
	FirstRejected Rejection
}

// Rejection is a block refused by Ingest and the reason.
type Rejection struct {
	CID cid.Cid // cid.Undef when the block did not even decode
	Err error
}

func (s *Stats) add(o Stats) {
	s.Received += o.Received
	s.New += o.New
	s.Rejected += o.Rejected
	if s.FirstRejected.Err == nil {
		s.FirstRejected = o.FirstRejected
	}
}

// ErrViolation marks a response that broke the protocol: a count over the
// limit, more or fewer frames than announced, an oversize frame. An honest
// responder never sends one.
var ErrViolation = errors.New("ledgersync protocol violation")

// Service serves the protocol on a host (while Run runs) and pulls from
// peers (Sync).
type Service struct {
	h   host.Host
	led Ledger
	log *slog.Logger
	// OnServe is called with the number of blocks sent per request served.
	onServe func(int)
	tr      trace.Tracer
	stall   time.Duration
	pen     Penalizer
}

// Options are optional hooks.
type Options struct {
	OnServe func(sent int)
	// StallTimeout replaces the package's StallTimeout when positive (tests).
	StallTimeout time.Duration
	// Tracer makes a ledgersync.serve span for each request that carries
	// a trace context; nil makes none.
	Tracer trace.Tracer
	// Penalties, if set, is charged MalformedRequestPenalty for each
	// malformed request a peer sends.
	Penalties Penalizer
}

// MalformedRequestPenalty is what a malformed request costs its sender.
const MalformedRequestPenalty = 1

// New builds the service; it registers nothing and starts nothing.
func New(h host.Host, led Ledger, log *slog.Logger, opts Options) *Service {
	if log == nil {
		log = slog.Default()
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = StallTimeout
	}
	return &Service{h: h, led: led, log: log, onServe: opts.OnServe, tr: opts.Tracer, stall: opts.StallTimeout, pen: opts.Penalties}
}

// Run serves the protocol until ctx ends: each request is answered under
// ctx, so the end of ctx resets the streams being answered. It returns when
// they have all ended.
func (s *Service) Run(ctx context.Context) error {
	srv := streams.Serve(ctx, s.h, ID, s.handle)
	<-ctx.Done()
	srv.Stop()
	return nil
}

// Close removes the handler. It is idempotent.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ID)
	return nil
}

// errCut ends a response the resource manager would not let grow.
var errCut = errors.New("response cut: the resource manager refused the memory")

func (s *Service) handle(ctx context.Context, st network.Stream) {
	p := st.Conn().RemotePeer()
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("ledgersync: resource manager refused the stream", "peer", p, "err", err)
		st.Reset()
		return
	}
	n, err := s.respond(ctx, st)
	switch {
	case err == nil:
		st.Close()
		if s.onServe != nil {
			s.onServe(n)
		}
		return
	case errors.Is(err, errBadRequest):
		s.log.Info("SECURITY: ledgersync: malformed request from a peer; stream reset, the peer is penalised", "peer", p, "err", err)
		if s.pen != nil {
			s.pen.Add(p, MalformedRequestPenalty)
		}
	case errors.Is(err, errNoRequest):
		s.log.Debug("ledgersync: a peer's request did not arrive; stream reset", "peer", p, "err", err)
	case errors.Is(err, errCut):
		s.log.Info("ledgersync: response to a peer cut short; it will ask again for the rest", "peer", p, "sent", n, "err", err)
	case ctx.Err() == nil:
		s.log.Debug("ledgersync: serving a peer failed", "peer", p, "sent", n, "err", err)
	}
	st.Reset()
	if n > 0 && s.onServe != nil {
		s.onServe(n)
	}
}

// errBadRequest marks a malformed request (the requester's fault);
// errNoRequest one that did not arrive (a deadline, a broken stream).
var (
	errBadRequest = errors.New("bad request")
	errNoRequest  = errors.New("request not received")
)

// scopeMemory tracks what a stream reserved with the resource manager.
type scopeMemory struct {
	scope network.ResourceScope
	held  int
}

func (m *scopeMemory) reserve(n int) error {
	if err := m.scope.ReserveMemory(n, network.ReservationPriorityMedium); err != nil {
		return fmt.Errorf("%w: %d bytes: %w", errCut, n, err)
	}
	m.held += n
	return nil
}

func (m *scopeMemory) release(n int) {
	m.scope.ReleaseMemory(n)
	m.held -= n
}

// respond reads a request and answers it, returning how many blocks it sent.
func (s *Service) respond(ctx context.Context, st network.Stream) (sent int, err error) {
	mem := &scopeMemory{scope: st.Scope()}
	defer func() { mem.release(mem.held) }()
	if err := mem.reserve(respondBuffers); err != nil {
		return 0, err
	}
	_ = st.SetReadDeadline(time.Now().Add(RequestTimeout))
	summaryHeld := 0
	in := streams.NewReader(st)
	br := bufio.NewReader(in)
	// badRequest tells a malformed request from one that did not arrive.
	badRequest := func(err error) error {
		if in.Violation(err) {
			return fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return fmt.Errorf("%w: %w", errNoRequest, err)
	}
	remote, err := readSummary(br, func(authors int) error {
		summaryHeld = authors * summaryCost
		return mem.reserve(summaryHeld)
	})
	if err != nil {
		if errors.Is(err, errCut) {
			return 0, err
		}
		return 0, badRequest(err)
	}
	// What follows the summary, up to the requester's end of writing, is
	// an extension block (a trace context); requesters before it sent
	// none.
	ext, err := io.ReadAll(io.LimitReader(br, wiretrace.MaxBlock+1))
	if err != nil {
		return 0, badRequest(err)
	}
	sc, err := wiretrace.Parse(ext)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if sc.IsValid() {
		var span trace.Span
		ctx, span = s.tr.Start(trace.ContextWithRemoteSpanContext(ctx, sc), "ledgersync.serve",
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("icn.peer", st.Conn().RemotePeer().String())))
		defer func() {
			span.SetAttributes(attribute.Int("icn.ledgersync.sent", sent))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	_ = st.SetWriteDeadline(time.Now().Add(ResponseTimeout))
	cids := s.led.MissingCIDs(remote, MaxEntriesPerResponse)
	if len(cids) > MaxEntriesPerResponse {
		cids = cids[:MaxEntriesPerResponse]
	}
	// The summary is garbage now; the CID list takes its place.
	mem.release(summaryHeld)
	remote = nil
	if err := mem.reserve(len(cids) * cidCost); err != nil {
		return 0, err
	}
	// One chunk's room, held for the whole response: a chunk is sent once it
	// reaches SendChunk, so it never holds more than SendChunk plus one
	// block, and never more than every block at their largest.
	room := min(SendChunk+ledger.MaxEntrySize, len(cids)*ledger.MaxEntrySize)
	if err := mem.reserve(room); err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(st, 64<<10)
	// The count goes out at once: the requester knows how far behind it
	// is while the blocks are read.
	if err := writeCount(w, len(cids)); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	// Read a chunk into the room; send it; go on.
	chunk := make([][]byte, 0, 64)
	chunkBytes := 0
	send := func() error {
		for _, b := range chunk {
			if err := writeFrame(w, b); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		sent += len(chunk)
		clear(chunk)
		chunk, chunkBytes = chunk[:0], 0
		return nil
	}
	for _, c := range cids {
		b, err := s.led.Block(ctx, c)
		if err != nil {
			s.log.Warn("ledgersync: cannot read a block a peer lacks", "peer", st.Conn().RemotePeer(), "cid", c, "err", err)
			return sent, err
		}
		if len(b) > ledger.MaxEntrySize {
			// The ledger stores nothing this size; a block that is one is
			// damage, and sending it would be a violation.
			return sent, fmt.Errorf("block %s is %d bytes, over the %d an entry may be", c, len(b), ledger.MaxEntrySize)
		}
		chunk = append(chunk, b)
		chunkBytes += len(b)
		if chunkBytes >= SendChunk {
			if err := send(); err != nil {
				return sent, err
			}
		}
	}
	if err := send(); err != nil {
		return sent, err
	}
	if err := writeFrame(w, nil); err != nil {
		return sent, err
	}
	return sent, w.Flush()
}

// Sync pulls from p everything the local ledger lacks, ingesting as blocks
// arrive, and reports what it got. progress, if set, is called with
// (received, announced): once with (0, announced) when the responder has
// said how many blocks it will send, then after each ingested batch with the
// running total. Calls never overlap. announced - received is how many
// blocks this node still lacks from p at that moment.
func (s *Service) Sync(ctx context.Context, p peer.ID, progress func(received, announced int)) (Stats, error) {
	var total Stats
	ctx, cancel := context.WithTimeout(ctx, ResponseTimeout)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ID)
	if err != nil {
		return total, fmt.Errorf("open %s to %s: %w", ID, p, err)
	}
	// The deadline bounds a slow peer; the end of ctx (shutdown) unblocks
	// every read and write at once, whatever the peer does.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
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
	err = writeSummary(w, s.led.Summary())
	if err == nil {
		_, err = w.Write(wiretrace.Append(nil, trace.SpanContextFromContext(ctx)))
	}
	if err != nil || w.Flush() != nil {
		st.Reset()
		return total, fmt.Errorf("send summary to %s: %w", p, err)
	}
	_ = st.CloseWrite()
	dl, _ := ctx.Deadline()
	r := bufio.NewReaderSize(&progressReader{st: st, stall: s.stall, end: dl}, 64<<10)
	announced, err := readCount(r)
	if err != nil {
		st.Reset()
		return total, fmt.Errorf("read the response header from %s: %w", p, err)
	}
	total.Announced = announced
	if progress != nil {
		progress(0, announced)
	}

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
				got, err := s.led.Ingest(ctx, p, b)
				mu.Lock()
				total.add(got)
				if err != nil && ingestErr == nil {
					ingestErr = err
				}
				if progress != nil {
					progress(total.Received, announced) // under mu: never concurrently
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
			return finish(fmt.Errorf("read from %s after %d of %d blocks: %w", p, n, announced, err))
		}
		if b == nil {
			if n < announced {
				st.Reset()
				return finish(fmt.Errorf("%w: %s ended its response after %d of the %d blocks it announced", ErrViolation, p, n, announced))
			}
			break
		}
		if n >= announced {
			st.Reset()
			return finish(fmt.Errorf("%w: %s sent more than the %d blocks it announced", ErrViolation, p, announced))
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

// progressReader reads a response, giving each read at most stall (and
// never past end): a responder that sends nothing for that long is cut off.
type progressReader struct {
	st    network.Stream
	stall time.Duration
	end   time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	dl := time.Now().Add(p.stall)
	if !p.end.IsZero() && p.end.Before(dl) {
		dl = p.end
	}
	_ = p.st.SetReadDeadline(dl)
	n, err := p.st.Read(b)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && (p.end.IsZero() || dl.Before(p.end)) {
		err = fmt.Errorf("nothing for %s: %w", p.stall, err)
	}
	return n, err
}

// writeCount writes the response header: the number of blocks that follow.
func writeCount(w io.Writer, n int) error {
	_, err := w.Write(binary.AppendUvarint(nil, uint64(n)))
	return err
}

func readCount(r *bufio.Reader) (int, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	if n > MaxEntriesPerResponse {
		return 0, fmt.Errorf("%w: announced %d blocks, at most %d", ErrViolation, n, MaxEntriesPerResponse)
	}
	return int(n), nil
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

// readSummary reads a request's summary. reserve, if set, is told how many
// authors follow before they are read into memory; its error ends the read.
func readSummary(r *bufio.Reader, reserve func(authors int) error) (map[did.DID]ledger.AuthorSummary, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxAuthors {
		return nil, fmt.Errorf("%d authors exceeds %d", n, MaxAuthors)
	}
	if reserve != nil {
		if err := reserve(int(n)); err != nil {
			return nil, err
		}
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

var errFrameTooBig = fmt.Errorf("%w: frame exceeds the limit", ErrViolation)

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
