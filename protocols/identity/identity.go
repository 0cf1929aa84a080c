// Package identity implements /icn/id/1.0.0, the exchange that tells each
// peer which DID a libp2p peer speaks for. When a connection opens, each side
// asks the other for its binding record (the DID key's signature over
// {did, peer_id, seq, created_at}); a record that does not verify, or that
// binds a different peer ID, gets the connection closed, and the peer is
// charged ViolationPenalty (Options.Penalties); so does a record that does
// not decode (oversize, or cut short by the peer's end of writing). A peer
// that does not answer in time, or whose stream breaks, costs nothing.
// Verified records go into a Book, the node's local DID cache. The serving
// side reads nothing from the requester, so there is nothing for a
// requester to get wrong there.
package identity

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/protocols/internal/streams"
)

// ID is the protocol ID.
const ID protocol.ID = "/icn/id/1.0.0"

// ServiceName is the resource manager service scope of this protocol.
const ServiceName = "icn.identity"

const (
	// MaxRecordSize bounds one binding record on the wire.
	MaxRecordSize = 4 << 10
	// StreamTimeout bounds one exchange.
	StreamTimeout = 10 * time.Second
	// maxConcurrentFetches bounds the fetches started by connection events.
	maxConcurrentFetches = 16
)

// Book is the local cache of verified bindings, by peer and by DID. It is
// safe for concurrent use.
type Book struct {
	mu     sync.RWMutex
	byPeer map[peer.ID]did.Binding
	byDID  map[did.DID]did.Binding
}

// NewBook returns an empty book.
func NewBook() *Book {
	return &Book{byPeer: map[peer.ID]did.Binding{}, byDID: map[did.DID]did.Binding{}}
}

// Put records a verified binding and reports whether it is current: the
// newest known for its DID (or the same one). A superseded binding (an older
// seq, as from a node key replaced by a rotation) is not recorded.
func (b *Book) Put(bd did.Binding) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.byDID[bd.DID]
	if ok && cur.Newer(bd) {
		return false
	}
	b.byDID[bd.DID] = bd
	b.byPeer[bd.PeerID] = bd
	// Peer IDs the DID rotated away from no longer speak for it.
	for p, old := range b.byPeer {
		if old.DID == bd.DID && p != bd.PeerID {
			delete(b.byPeer, p)
		}
	}
	return true
}

// ByPeer returns the binding a peer presented.
func (b *Book) ByPeer(p peer.ID) (did.Binding, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	bd, ok := b.byPeer[p]
	return bd, ok
}

// ByDID returns the newest binding known for a DID.
func (b *Book) ByDID(d did.DID) (did.Binding, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	bd, ok := b.byDID[d]
	return bd, ok
}

// PeersOf returns every peer ID that has presented a binding for d.
func (b *Book) PeersOf(d did.DID) []peer.ID {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []peer.ID
	for p, bd := range b.byPeer {
		if bd.DID == d {
			out = append(out, p)
		}
	}
	return out
}

// Service serves our binding and fetches the bindings of connecting peers.
type Service struct {
	h         host.Host
	self      func() did.Binding
	book      *Book
	log       *slog.Logger
	onRecord  func()
	onBinding func(context.Context, did.Binding)
	pen       Penalizer
}

// ViolationPenalty is what a binding record that does not decode or verify
// costs the peer that presented it.
const ViolationPenalty = 1

// Penalizer is told about peers that present bad binding records (the
// node's penalty record). units is what the offence costs.
type Penalizer interface {
	Add(p peer.ID, units float64)
}

// Options are optional hooks.
type Options struct {
	// OnRecord is called once per binding record received from a peer.
	OnRecord func()
	// OnBinding is called with every binding Fetch verified and recorded in
	// the book as current, before Fetch returns: the node hangs up here on
	// a peer whose DID it refuses (a new key of a blocked DID, which nothing
	// could refuse before its binding was known).
	OnBinding func(ctx context.Context, bd did.Binding)
	// Penalties, if set, is charged ViolationPenalty for each binding
	// record Fetch refuses as a VerifyError.
	Penalties Penalizer
}

// New registers the protocol handler on h. self returns the binding to serve
// (it may change after a key rotation).
func New(h host.Host, self func() did.Binding, book *Book, log *slog.Logger, opts Options) *Service {
	s := &Service{h: h, self: self, book: book, log: log, onRecord: opts.OnRecord, onBinding: opts.OnBinding, pen: opts.Penalties}
	h.SetStreamHandler(ID, s.handle)
	return s
}

// Close removes the protocol handler. It is idempotent.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ID)
	return nil
}

func (s *Service) handle(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("identity: resource manager refused the stream", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	_ = st.SetDeadline(time.Now().Add(StreamTimeout))
	data, err := s.self().Marshal()
	if err == nil {
		err = writeFrame(st, data)
	}
	if err != nil {
		st.Reset()
		return
	}
	st.Close()
}

// Fetch asks p for its binding, verifies it, checks that it binds p, and
// records it in the book. A record refused as a VerifyError is charged to p.
func (s *Service) Fetch(ctx context.Context, p peer.ID) (bd did.Binding, err error) {
	defer func() {
		if s.pen != nil && errors.As(err, new(*VerifyError)) {
			s.pen.Add(p, ViolationPenalty)
		}
	}()
	return s.fetch(ctx, p)
}

func (s *Service) fetch(ctx context.Context, p peer.ID) (did.Binding, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "identity"), p, ID)
	if err != nil {
		return did.Binding{}, fmt.Errorf("open %s stream: %w", ID, err)
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return did.Binding{}, fmt.Errorf("resource manager: %w", err)
	}
	if err := st.Scope().ReserveMemory(MaxRecordSize, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return did.Binding{}, fmt.Errorf("resource manager: %w", err)
	}
	defer st.Scope().ReleaseMemory(MaxRecordSize)
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	_ = st.CloseWrite()
	in := streams.NewReader(st)
	data, err := readFrame(bufio.NewReader(in), MaxRecordSize)
	if err != nil {
		st.Reset()
		err = fmt.Errorf("read binding from %s: %w", p, err)
		if errors.Is(err, errTooLarge) || in.Violation(err) {
			// Not a network failure to retry: an oversize record, or one
			// cut short by the peer's end of writing. No honest peer sends
			// one.
			return did.Binding{}, &VerifyError{err}
		}
		return did.Binding{}, err
	}
	st.Close()
	if s.onRecord != nil {
		s.onRecord()
	}
	bd, err := did.UnmarshalBinding(data)
	if err != nil {
		return did.Binding{}, &VerifyError{fmt.Errorf("binding from %s: %w", p, err)}
	}
	if bd.PeerID != p {
		return did.Binding{}, &VerifyError{fmt.Errorf("binding from %s is for peer %s", p, bd.PeerID)}
	}
	if !s.book.Put(bd) {
		cur, _ := s.book.ByDID(bd.DID)
		return did.Binding{}, &VerifyError{fmt.Errorf("%s presented binding seq %d for %s, superseded by seq %d (peer %s): its node key was rotated away",
			p, bd.Seq, bd.DID, cur.Seq, cur.PeerID)}
	}
	if s.onBinding != nil {
		s.onBinding(ctx, bd)
	}
	return bd, nil
}

// Run fetches the binding of every connected peer, those connected before
// it started included, until ctx ends, retrying a failed fetch while the
// peer stays connected, and closes connections to peers whose binding does
// not verify.
func (s *Service) Run(ctx context.Context) error {
	sub, err := s.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("identity: subscribe to connection events: %w", err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxConcurrentFetches)
	start := func(p peer.ID) bool {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.check(ctx, p)
		}()
		return true
	}
	// Peers connected before the subscription (a node dials its bootstrap
	// peers as it starts) sent their event before anyone listened.
	for _, p := range s.h.Network().Peers() {
		if !start(p) {
			return nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Out():
			if !ok {
				return nil
			}
			e := ev.(event.EvtPeerConnectednessChanged)
			if e.Connectedness != network.Connected {
				continue
			}
			if !start(e.Peer) {
				return nil
			}
		}
	}
}

// fetchAttempts is how many times a binding is asked for before giving up
// on a peer that stays connected; the waits between attempts double from
// fetchRetryWait. A peer that has just started may not serve the protocol
// yet, and a first stream can be reset on a connection being replaced.
const (
	fetchAttempts  = 3
	fetchRetryWait = 500 * time.Millisecond
)

func (s *Service) check(ctx context.Context, p peer.ID) {
	wait := fetchRetryWait
	for attempt := 1; ; attempt++ {
		if _, ok := s.book.ByPeer(p); ok {
			return
		}
		bd, err := s.Fetch(ctx, p)
		if err == nil {
			s.log.Debug("peer identified", "peer", p, "did", bd.DID, "seq", bd.Seq)
			return
		}
		if ctx.Err() != nil || s.h.Network().Connectedness(p) != network.Connected {
			return
		}
		var verr *VerifyError
		if errors.As(err, &verr) {
			s.log.Warn("SECURITY: peer presented an invalid DID binding; disconnecting", "peer", p, "err", err)
			_ = s.h.Network().ClosePeer(p)
			return
		}
		if attempt == fetchAttempts {
			s.log.Info("could not fetch peer's DID binding", "peer", p, "attempts", attempt, "err", err)
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
	}
}

// VerifyError means the peer answered with a binding that does not verify or
// that binds another peer: proof of a misbehaving or misconfigured peer, as
// opposed to a network failure.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func writeFrame(w io.Writer, data []byte) error {
	buf := binary.AppendUvarint(make([]byte, 0, len(data)+binary.MaxVarintLen64), uint64(len(data)))
	buf = append(buf, data...)
	_, err := w.Write(buf)
	return err
}

// errTooLarge marks a frame whose announced length is over the limit.
var errTooLarge = errors.New("oversize binding record")

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds the %d-byte limit", errTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
