package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/intercooperative/icn/protocols/internal/streams"
)

// ID is the request protocol: a peer that saw an announce asks the announcer
// for the envelopes it lacks.
const ID protocol.ID = "/icn/gossip/req/1.0.0"

// ServiceName is the resource manager service scope of the request protocol.
const ServiceName = "icn.gossip"

const (
	// RequestTimeout bounds one request/response exchange.
	RequestTimeout = 10 * time.Second
	// MaxRequestSize bounds a request body: topic plus MaxHeads keys.
	MaxRequestSize = 40 << 10
	// MaxResponseEnvelopes and MaxResponseBytes bound one response.
	MaxResponseEnvelopes = 256
	MaxResponseBytes     = 4 << 20
)

// RequestViolationPenalty is what one malformed request, or one response
// that breaks the protocol, costs the peer that sent it (Deps.Penalties).
// A request or response that does not arrive in time, or whose stream
// breaks, costs nothing: an honest peer can be slow or go away. Envelopes
// in a response that fail validation are not violations of this protocol;
// they lower the responder's GossipSub score as invalid messages.
const RequestViolationPenalty = 1

// Penalizer is told about peers that break the request protocol (the
// node's penalty record). units is what the offence costs.
type Penalizer interface {
	Add(p peer.ID, units float64)
}

// errBadRequest and errBadResponse mark a request or response that broke
// the protocol (the sender's fault, charged to it).
var (
	errBadRequest  = errors.New("malformed gossip request")
	errBadResponse = errors.New("gossip response broke the protocol")
)

// charge bills p for a violation of the request protocol.
func (s *Service) charge(p peer.ID) {
	if s.pen != nil {
		s.pen.Add(p, RequestViolationPenalty)
	}
}

// encodeRequest: uvarint topic length, the wire topic, then the key list
// (version 1, uvarint count, each key as uvarint length + bytes).
func encodeRequest(wire string, keys [][]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(wire)))
	b = append(b, wire...)
	return append(b, encodeKeys(keys)...)
}

func decodeRequest(body []byte) (string, [][]byte, error) {
	r := reader{b: body}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(TopicPrefix)+64+1+MaxTopicLen) {
		return "", nil, malformed("topic of %d bytes", n)
	}
	wire := r.next(int(min(n, uint64(len(r.b)))))
	if r.err != nil {
		return "", nil, r.err
	}
	keys, err := decodeKeys(r.b)
	if err != nil {
		return "", nil, err
	}
	return string(wire), keys, nil
}

func writeFrame(w io.Writer, data []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	if _, err := w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(data)))]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// handleRequest serves one request: the envelopes the topic's state holds
// for the keys, each framed as uvarint length + bytes, then a zero length.
func (s *Service) handleRequest(st network.Stream) {
	if !s.track(st) {
		st.Reset()
		return
	}
	defer s.untrack(st)
	if err := s.serve(st); err != nil {
		if p := st.Conn().RemotePeer(); errors.Is(err, errBadRequest) {
			s.log.Info("SECURITY: gossip: malformed request from a peer; stream reset, the peer is penalised", "peer", p, "err", err)
			s.charge(p)
		} else {
			s.log.Debug("gossip request failed", "peer", p, "err", err)
		}
		st.Reset()
		return
	}
	st.Close()
}

func (s *Service) serve(st network.Stream) error {
	if err := st.Scope().SetService(ServiceName); err != nil {
		return fmt.Errorf("resource manager: %w", err)
	}
	if err := st.Scope().ReserveMemory(MaxRequestSize, network.ReservationPriorityLow); err != nil {
		return fmt.Errorf("resource manager: %w", err)
	}
	defer st.Scope().ReleaseMemory(MaxRequestSize)
	_ = st.SetDeadline(time.Now().Add(RequestTimeout))
	p := st.Conn().RemotePeer()
	in := streams.NewReader(st)
	br := bufio.NewReader(in)
	bad := func(err error) error {
		if in.Violation(err) {
			return fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return bad(err)
	}
	if n > MaxRequestSize {
		return fmt.Errorf("%w: request of %d bytes, at most %d", errBadRequest, n, MaxRequestSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return bad(err)
	}
	// The request is read (it is small and bounded) before the limit is
	// checked, so a refusal names the topic.
	wire, keys, decodeErr := decodeRequest(body)
	var tp *topic
	if decodeErr == nil {
		tp = s.topicByWire(wire)
	}
	if now := s.cfg.Now(); !allowed(s.requests.allow(p, now)) {
		label := TopicOther
		if tp != nil {
			label = tp.short
		}
		s.noteRateLimited(p, label, RateLimitRequests, now)
		if decodeErr != nil {
			return fmt.Errorf("%w: %w", errBadRequest, decodeErr)
		}
		return errors.New("request rate limit")
	}
	s.m.requests.Inc()
	s.m.networkReceived.Inc()
	if decodeErr != nil {
		return fmt.Errorf("%w: %w", errBadRequest, decodeErr)
	}
	var envs [][]byte
	if tp != nil {
		maxBytes := min(MaxResponseBytes, MaxResponseEnvelopes*s.cfg.MaxMessageSize)
		if c, ok := tp.state.(*recentCache); ok {
			envs = c.getVerified(keys, MaxResponseEnvelopes, maxBytes, func(raw []byte) bool {
				e, err := decode(raw, s.cfg.MaxMessageSize, s.keys.author)
				return err == nil && e.Verify(tp.wire) == nil
			})
		} else {
			envs = tp.state.Get(keys, MaxResponseEnvelopes, maxBytes)
		}
	}
	bw := bufio.NewWriter(st)
	for _, e := range envs {
		if err := writeFrame(bw, e); err != nil {
			return err
		}
	}
	if err := writeFrame(bw, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return st.CloseWrite()
}

func (s *Service) topicByWire(wire string) *topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range s.topics {
		if tp.wire == wire {
			return tp
		}
	}
	return nil
}

func (s *Service) track(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.streams[st] = struct{}{}
	s.handler.Add(1)
	return true
}

func (s *Service) untrack(st network.Stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
	s.handler.Done()
}

// request asks p for the envelopes answering keys on a topic.
func (s *Service) request(ctx context.Context, p peer.ID, wire string, keys [][]byte) (_ [][]byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ID)
	if err != nil {
		return nil, fmt.Errorf("open %s stream: %w", ID, err)
	}
	if !s.track(st) {
		st.Reset()
		return nil, ErrStopped
	}
	defer s.untrack(st)
	// Deadlines bound the exchange; cancellation (shutdown) ends it at once.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	defer func() {
		if err != nil {
			st.Reset()
		}
	}()
	if err := st.Scope().SetService(ServiceName); err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := writeFrame(st, encodeRequest(wire, keys)); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	// The request is written in full. A responder that has read it may
	// already have closed its read side, which makes CloseWrite fail with
	// "close called for canceled stream": that is no failure (identity and
	// ledgersync ignore it too); a broken stream fails the read below.
	_ = st.CloseWrite()
	in := streams.NewReader(st)
	br := bufio.NewReader(in)
	bad := func(err error) error {
		if in.Violation(err) {
			return fmt.Errorf("%w: %w", errBadResponse, err)
		}
		return err
	}
	var out [][]byte
	reserved := 0
	defer func() { st.Scope().ReleaseMemory(reserved) }()
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("read response: %w", bad(err))
		}
		if n == 0 {
			break
		}
		if n > uint64(s.cfg.MaxMessageSize) {
			return nil, fmt.Errorf("%w: response envelope of %d bytes exceeds %d", errBadResponse, n, s.cfg.MaxMessageSize)
		}
		if len(out) >= MaxResponseEnvelopes || reserved+int(n) > MaxResponseBytes {
			return nil, fmt.Errorf("%w: response exceeds its bounds (%d envelopes, %d bytes)", errBadResponse, MaxResponseEnvelopes, MaxResponseBytes)
		}
		if err := st.Scope().ReserveMemory(int(n), network.ReservationPriorityLow); err != nil {
			return nil, fmt.Errorf("resource manager: %w", err)
		}
		reserved += int(n)
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("read response: %w", bad(err))
		}
		out = append(out, buf)
	}
	st.Close()
	return out, nil
}

// fetchJob is a request to make after an announce.
type fetchJob struct {
	tp   *topic
	peer peer.ID
	keys [][]byte
}

// onAnnounce queues a request for whatever the announce lists that the
// topic's state lacks, if the announcer is connected. A full queue drops
// the job: the next announce brings it back.
func (s *Service) onAnnounce(tp *topic, msg *Message) {
	s.m.announcesRecv.Inc()
	heads, err := decodeAnnounce(msg.Payload)
	if err != nil {
		return
	}
	want := tp.state.Want(heads)
	if len(want) == 0 || s.h.Network().Connectedness(msg.From) != network.Connected {
		return
	}
	if len(want) > MaxHeads {
		want = want[:MaxHeads]
	}
	select {
	case s.fetchQ <- fetchJob{tp: tp, peer: msg.From, keys: want}:
	default:
	}
}

func (s *Service) fetchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.fetchQ:
			s.fetch(ctx, j)
		}
	}
}

// fetch requests the job's keys and ingests the answer through admit, as
// if it had come by gossip; the answering peer's score learns what was
// useful and what was invalid.
func (s *Service) fetch(ctx context.Context, j fetchJob) {
	envs, err := s.request(ctx, j.peer, j.tp.wire, j.keys)
	if err != nil {
		if errors.Is(err, errBadResponse) {
			s.log.Info("SECURITY: gossip: a peer broke the request protocol in its response; it is penalised", "peer", j.peer, "topic", j.tp.short, "err", err)
			s.charge(j.peer)
			return
		}
		s.log.Debug("gossip fetch failed", "peer", j.peer, "topic", j.tp.short, "err", err)
		return
	}
	now := s.cfg.Now()
	for _, raw := range envs {
		s.m.received.Inc()
		s.m.networkReceived.Inc()
		msg, res := s.admit(j.tp, raw, j.peer, j.peer, true, now)
		switch res {
		case pubsub.ValidationAccept:
			s.deliver(j.tp, msg, raw)
			_ = s.ps.PeerFeedback(j.tp.wire, j.peer, pubsub.PeerFeedbackUsefulMessage)
		case pubsub.ValidationReject:
			_ = s.ps.PeerFeedback(j.tp.wire, j.peer, pubsub.PeerFeedbackInvalidMessage)
		}
	}
}

// announceAll publishes each topic's heads where there is anyone to hear them.
func (s *Service) announceAll(ctx context.Context) {
	s.mu.Lock()
	topics := make([]*topic, 0, len(s.topics))
	for _, tp := range s.topics {
		topics = append(topics, tp)
	}
	s.mu.Unlock()
	for _, tp := range topics {
		if ctx.Err() != nil {
			return
		}
		if tp.t == nil || len(tp.t.ListPeers()) == 0 {
			continue
		}
		heads := tp.state.Heads()
		if len(heads) == 0 {
			continue
		}
		if len(heads) > MaxHeads {
			heads = heads[:MaxHeads]
		}
		payload, err := encodeAnnounce(heads)
		if err != nil {
			s.log.Warn("gossip: state returned bad heads", "topic", tp.short, "err", err)
			continue
		}
		if _, err := s.publish(ctx, tp, TypeAnnounce, payload); err != nil {
			s.log.Debug("gossip: announce failed", "topic", tp.short, "err", err)
			continue
		}
		s.m.announcesSent.Inc()
	}
}
