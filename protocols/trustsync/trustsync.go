// Package trustsync implements /icn/trustsync/1.0.0: a node that joins (or
// reconnects) catches up on the trust graph's attestations in one round
// trip, the pattern of ledgersync.
//
// The requester opens a stream and sends its summary: a uvarint issuer
// count, then per issuer its 32-byte key, a uvarint count of the
// attestations it holds by that issuer and a 32-byte digest of them
// (trust.Graph.Summary); then it closes its write side. The responder
// answers with a uvarint N (at most MaxPerResponse), then N frames (a
// uvarint length, at most trust.MaxSize, and that many bytes: one encoded
// attestation each): every attestation of each issuer whose digest differs.
// Sizes are bounded, both sides run under deadlines and resource-manager
// scopes, and a stream that breaks the rules is reset; a response that does
// is an error wrapping ErrViolation.
//
// A malformed request (a count over its limit, a key that is no key, data
// after the summary, a summary cut short by the requester's end of
// writing) and a response that breaks the protocol each cost the peer
// ViolationPenalty (Options.Penalties). A request or response that does not
// arrive in time, or whose stream breaks, costs nothing: an honest peer can
// be slow or go away.
package trustsync

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/internal/streams"
	"github.com/intercooperative/icn/trust"
)

// ID is the protocol ID.
const ID protocol.ID = "/icn/trustsync/1.0.0"

// ServiceName is the resource-manager service scope.
const ServiceName = "icn.trustsync"

// Limits.
const (
	// MaxIssuers bounds one request's summary.
	MaxIssuers = 1 << 16
	// MaxPerResponse bounds one response (about 10 MiB of attestations at
	// most); a requester that got that many asks again.
	MaxPerResponse = 20_000
	// RequestTimeout bounds reading a request; ResponseTimeout a response.
	RequestTimeout  = 30 * time.Second
	ResponseTimeout = 2 * time.Minute
	// streamMemory is reserved with the resource manager per stream: its
	// buffers and one request's summary at the limit.
	streamMemory = 64<<10 + 256<<10
)

// Graph is what the protocol needs from the node's trust graph.
type Graph interface {
	// Summary is the local summary per issuer.
	Summary() trust.Summary
	// Missing returns the encoded attestations a peer with this summary
	// lacks, at most limit.
	Missing(remote trust.Summary, limit int) [][]byte
	// Ingest checks and stores attestations served by from.
	Ingest(ctx context.Context, from peer.ID, blocks [][]byte) Stats
}

// Stats counts what one sync did.
type Stats struct {
	Received int // attestations received
	New      int // of those, accepted and new here
	Rejected int // refused: malformed, bad signature, expired, outdated, replayed
}

// ErrViolation marks a response that broke the protocol.
var ErrViolation = errors.New("trustsync protocol violation")

// ViolationPenalty is what one malformed request or response costs the
// peer that sent it.
const ViolationPenalty = 1

// Penalizer is told about peers that break the protocol (the node's
// penalty record). units is what the offence costs.
type Penalizer interface {
	Add(p peer.ID, units float64)
}

// Options are optional parts of a Service.
type Options struct {
	// Penalties, if set, is charged for each protocol violation a peer
	// commits, as requester or as responder.
	Penalties Penalizer
}

// Service serves the protocol (while Run runs) and pulls from peers (Sync).
type Service struct {
	h   host.Host
	g   Graph
	log *slog.Logger
	pen Penalizer
}

// New builds the service; it registers nothing and starts nothing.
func New(h host.Host, g Graph, log *slog.Logger, opts Options) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{h: h, g: g, log: log, pen: opts.Penalties}
}

// charge bills p for a violation.
func (s *Service) charge(p peer.ID) {
	if s.pen != nil {
		s.pen.Add(p, ViolationPenalty)
	}
}

// AntiEntropyInterval is how often a random peer serving the protocol is
// synced with, besides every peer once it has identified.
const AntiEntropyInterval = time.Minute

// Run serves the protocol until ctx ends, and syncs with each peer once it
// has identified (and with a random one every AntiEntropyInterval), one
// sync per peer at a time; each request is answered under ctx. It returns
// when every stream and sync it started has ended.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // the syncs, last
	srv := streams.Serve(ctx, s.h, ID, s.handle)
	defer srv.Stop() // the streams being answered, once ctx has ended
	defer cancel()
	sub, err := s.h.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return err
	}
	defer sub.Close()
	running := map[peer.ID]bool{}
	done := make(chan peer.ID)
	start := func(p peer.ID) {
		if running[p] {
			return
		}
		running[p] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.Sync(ctx, p)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Debug("trustsync failed", "peer", p, "err", err)
			case st.New > 0 || st.Rejected > 0:
				s.log.Info("trust attestations synced", "peer", p, "received", st.Received, "new", st.New, "rejected", st.Rejected)
			}
			select {
			case done <- p:
			case <-ctx.Done():
			}
		}()
	}
	tick := time.NewTicker(AntiEntropyInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-done:
			delete(running, p)
		case ev, ok := <-sub.Out():
			if !ok {
				return nil
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if slices.Contains(e.Protocols, ID) {
					start(e.Peer)
				}
			case event.EvtPeerProtocolsUpdated:
				if slices.Contains(e.Added, ID) {
					start(e.Peer)
				}
			}
		case <-tick.C:
			var cands []peer.ID
			for _, p := range s.h.Network().Peers() {
				if ps, err := s.h.Peerstore().SupportsProtocols(p, ID); err == nil && len(ps) > 0 {
					cands = append(cands, p)
				}
			}
			if len(cands) > 0 {
				start(cands[rand.IntN(len(cands))])
			}
		}
	}
}

// Close removes the handler. It is idempotent.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ID)
	return nil
}

func (s *Service) handle(ctx context.Context, st network.Stream) {
	p := st.Conn().RemotePeer()
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	if err := st.Scope().ReserveMemory(streamMemory, network.ReservationPriorityLow); err != nil {
		s.log.Debug("trustsync: resource manager refused the stream's memory", "peer", p, "err", err)
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(streamMemory)
	_ = st.SetReadDeadline(time.Now().Add(RequestTimeout))
	in := streams.NewReader(st)
	remote, err := readSummary(bufio.NewReaderSize(in, 4<<10))
	if err != nil {
		if in.Violation(err) {
			s.log.Info("SECURITY: trustsync: malformed request from a peer; stream reset, the peer is penalised", "peer", p, "err", err)
			s.charge(p)
		} else {
			s.log.Debug("trustsync: a peer's request did not arrive", "peer", p, "err", err)
		}
		st.Reset()
		return
	}
	blocks := s.g.Missing(remote, MaxPerResponse)
	_ = st.SetWriteDeadline(time.Now().Add(ResponseTimeout))
	w := bufio.NewWriterSize(st, 32<<10)
	if err := writeResponse(w, blocks); err != nil {
		st.Reset()
		return
	}
	_ = st.Close()
	if len(blocks) > 0 {
		s.log.Debug("trustsync: served attestations", "peer", p, "sent", len(blocks))
	}
}

// Sync pulls from p what this node lacks and ingests it.
func (s *Service) Sync(ctx context.Context, p peer.ID) (Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, ResponseTimeout)
	defer cancel()
	st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "trustsync"), p, ID)
	if err != nil {
		return Stats{}, fmt.Errorf("open trustsync stream to %s: %w", p, err)
	}
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return Stats{}, err
	}
	if err := st.Scope().ReserveMemory(streamMemory, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return Stats{}, err
	}
	defer st.Scope().ReleaseMemory(streamMemory)
	deadline, _ := ctx.Deadline()
	_ = st.SetDeadline(deadline)
	w := bufio.NewWriterSize(st, 32<<10)
	if err := writeSummary(w, s.g.Summary()); err != nil {
		st.Reset()
		return Stats{}, fmt.Errorf("send trustsync request: %w", err)
	}
	// A responder that has read the request may have closed its read side
	// already; a broken stream fails the read below.
	_ = st.CloseWrite()
	in := streams.NewReader(st)
	blocks, err := readResponse(bufio.NewReaderSize(in, 32<<10))
	if err != nil {
		st.Reset()
		if in.Violation(err) {
			s.log.Info("SECURITY: trustsync: a peer broke the protocol in its response; it is penalised", "peer", p, "err", err)
			s.charge(p)
			return Stats{}, fmt.Errorf("trustsync response from %s: %w: %w", p, ErrViolation, err)
		}
		return Stats{}, fmt.Errorf("trustsync response from %s: %w", p, err)
	}
	_ = st.Close()
	if len(blocks) == 0 {
		return Stats{}, nil
	}
	return s.g.Ingest(ctx, p, blocks), nil
}

func writeSummary(w *bufio.Writer, sum trust.Summary) error {
	issuers := make([]did.DID, 0, len(sum))
	for d := range sum {
		issuers = append(issuers, d)
	}
	if len(issuers) > MaxIssuers {
		issuers = issuers[:MaxIssuers] // the rest is fetched on the next sync
	}
	var b [binary.MaxVarintLen64]byte
	if _, err := w.Write(b[:binary.PutUvarint(b[:], uint64(len(issuers)))]); err != nil {
		return err
	}
	for _, d := range issuers {
		dg := sum[d]
		if _, err := w.Write(d.PublicKey()); err != nil {
			return err
		}
		if _, err := w.Write(b[:binary.PutUvarint(b[:], uint64(dg.Count))]); err != nil {
			return err
		}
		if _, err := w.Write(dg.Digest[:]); err != nil {
			return err
		}
	}
	return w.Flush()
}

func readSummary(r *bufio.Reader) (trust.Summary, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxIssuers {
		return nil, fmt.Errorf("%d issuers exceed the limit of %d", n, MaxIssuers)
	}
	sum := make(trust.Summary, n)
	key := make([]byte, ed25519.PublicKeySize)
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(r, key); err != nil {
			return nil, err
		}
		d, err := did.FromPublicKey(key)
		if err != nil {
			return nil, err
		}
		count, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if count > MaxPerResponse*10 {
			return nil, fmt.Errorf("issuer count %d is implausible", count)
		}
		var dg trust.IssuerDigest
		dg.Count = int(count)
		if _, err := io.ReadFull(r, dg.Digest[:]); err != nil {
			return nil, err
		}
		sum[d] = dg
	}
	// Nothing may follow the summary.
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, errors.New("data after the summary")
	}
	return sum, nil
}

func writeResponse(w *bufio.Writer, blocks [][]byte) error {
	var b [binary.MaxVarintLen64]byte
	if _, err := w.Write(b[:binary.PutUvarint(b[:], uint64(len(blocks)))]); err != nil {
		return err
	}
	for _, blk := range blocks {
		if _, err := w.Write(b[:binary.PutUvarint(b[:], uint64(len(blk)))]); err != nil {
			return err
		}
		if _, err := w.Write(blk); err != nil {
			return err
		}
	}
	return w.Flush()
}

func readResponse(r *bufio.Reader) ([][]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxPerResponse {
		return nil, fmt.Errorf("%d attestations announced, at most %d", n, MaxPerResponse)
	}
	blocks := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return blocks, fmt.Errorf("%d of %d attestations arrived: %w", i, n, err)
		}
		if l == 0 || l > trust.MaxSize {
			return blocks, fmt.Errorf("a frame of %d bytes", l)
		}
		blk := make([]byte, l)
		if _, err := io.ReadFull(r, blk); err != nil {
			return blocks, fmt.Errorf("%d of %d attestations arrived: %w", i, n, err)
		}
		blocks = append(blocks, blk)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return blocks, fmt.Errorf("data after the %d attestations announced", n)
	}
	return blocks, nil
}
