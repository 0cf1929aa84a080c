package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// SSE bounds.
const (
	// clientBuffer is how many events one client may lag behind before it
	// is dropped (it reconnects with Last-Event-ID and loses nothing the
	// ring still holds).
	clientBuffer = 256
	// ringEvents and ringBytes bound the events a topic keeps for
	// reconnecting clients.
	ringEvents = 1024
	ringBytes  = 8 << 20
	// maxHubs bounds the topics streamed at once.
	maxHubs = 256
	// linger keeps a topic's subscription (and so its ring) a while after
	// its last client left, so a client that reconnects misses nothing.
	linger          = 30 * time.Second
	sseWriteTimeout = 10 * time.Second
	ssePing         = 15 * time.Second
	sseRetry        = 2 * time.Second
)

type sseEvent struct {
	seq   uint64
	frame []byte
}

type sseClient struct {
	ch   chan sseEvent
	gone chan struct{} // closed when the hub drops the client or the subscription ends
	end  []byte        // the end frame, set before gone is closed (nil: dropped as slow)
}

func (c *sseClient) endEvent() []byte { return c.end }

// hub carries one topic to its SSE clients: one gossip subscription, a
// ring of recent events for Last-Event-ID, and the clients.
type hub struct {
	topic string
	// epoch names this hub's numbering: ids from another epoch (before a
	// restart) cannot be resumed.
	epoch   string
	ring    []sseEvent
	ringLen int // bytes in ring
	next    uint64
	clients map[*sseClient]struct{}
	sub     *gossip.Subscription // nil when not subscribed
	done    chan struct{}        // closed when the current pump ends
	idle    *time.Timer          // cancels the subscription after linger
}

// hubs holds the topics' hubs; a hub outlives its clients (its ring serves
// reconnects) but not its subscription beyond linger.
type hubs struct {
	n   Node
	m   *metrics
	log *slog.Logger

	mu     sync.Mutex
	topics map[string]*hub
	closed bool
	pumps  sync.WaitGroup
}

func newHubs(n Node, m *metrics, log *slog.Logger) *hubs {
	return &hubs{n: n, m: m, log: log, topics: map[string]*hub{}}
}

func (hs *hubs) newTicker() *time.Ticker { return time.NewTicker(ssePing) }

var errClosed = errors.New("the gateway is stopping")

// join adds a client to topic's hub, subscribing if needed, and returns
// the events after lastID that the ring still holds; reset is set (the
// reset event's data) when lastID cannot be resumed.
func (hs *hubs) join(topic, lastID string) (*sseClient, []sseEvent, string, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return nil, nil, "", &controlapi.Error{Status: http.StatusServiceUnavailable, Message: errClosed.Error(), Hint: "reconnect in a moment"}
	}
	h := hs.topics[topic]
	if h == nil {
		if len(hs.topics) >= maxHubs {
			hs.evictIdleLocked()
		}
		if len(hs.topics) >= maxHubs {
			return nil, nil, "", &controlapi.Error{Status: http.StatusServiceUnavailable,
				Message: fmt.Sprintf("this gateway already streams %d topics", maxHubs), Hint: "try again later"}
		}
		h = &hub{topic: topic, epoch: strconv.FormatInt(time.Now().UnixNano(), 36), next: 1, clients: map[*sseClient]struct{}{}}
		hs.topics[topic] = h
	}
	if h.sub == nil {
		sub, err := hs.n.GossipSubscribe(topic)
		if err != nil {
			if !errors.Is(err, gossip.ErrStopped) {
				err = &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error()}
			}
			return nil, nil, "", err
		}
		h.sub, h.done = sub, make(chan struct{})
		hs.pumps.Add(1)
		go hs.pump(h, sub, h.done)
	}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	cl := &sseClient{ch: make(chan sseEvent, clientBuffer), gone: make(chan struct{})}
	h.clients[cl] = struct{}{}
	backlog, reset := h.since(lastID)
	return cl, backlog, reset, nil
}

// since is the ring's events after id; reset says why not, when id is
// given but cannot be resumed.
func (h *hub) since(id string) ([]sseEvent, string) {
	if id == "" {
		return nil, ""
	}
	epoch, n, ok := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(n, 10, 64)
	switch {
	case !ok || err != nil:
		return nil, string(jsonOf(map[string]string{"reason": "unknown_id", "message": "Last-Event-ID is not an id this gateway sent; streaming from now"}))
	case epoch != h.epoch:
		return nil, string(jsonOf(map[string]string{"reason": "restarted", "message": "the gateway restarted since that event; what was published meanwhile is not held here; streaming from now"}))
	}
	var out []sseEvent
	first := h.next
	if len(h.ring) > 0 {
		first = h.ring[0].seq
	}
	if seq+1 < first {
		// Some events after seq have left the ring.
		return append(out, h.ring...), string(jsonOf(map[string]string{"reason": "gap",
			"message": fmt.Sprintf("events %d to %d are no longer held; the held ones follow", seq+1, first-1)}))
	}
	for _, ev := range h.ring {
		if ev.seq > seq {
			out = append(out, ev)
		}
	}
	return out, ""
}

// leave removes a client; the topic's subscription ends linger after its
// last client left.
func (hs *hubs) leave(topic string, cl *sseClient) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.topics[topic]
	if h == nil {
		return
	}
	delete(h.clients, cl)
	if len(h.clients) > 0 || h.sub == nil || hs.closed {
		return
	}
	sub := h.sub
	h.idle = time.AfterFunc(linger, func() {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		if h.sub == sub && len(h.clients) == 0 {
			sub.Cancel() // the pump ends and clears h.sub
		}
	})
}

// evictIdleLocked forgets hubs with neither clients nor a subscription.
func (hs *hubs) evictIdleLocked() {
	for t, h := range hs.topics {
		if len(h.clients) == 0 && h.sub == nil {
			delete(hs.topics, t)
		}
	}
}

// pump moves sub's messages into h's ring and to its clients, dropping a
// client whose buffer is full. When the subscription ends, it ends every
// client's stream with an end event.
func (hs *hubs) pump(h *hub, sub *gossip.Subscription, done chan struct{}) {
	defer hs.pumps.Done()
	defer close(done)
	for m := range sub.Messages() {
		msg := controlserver.GossipMessage(m)
		hs.mu.Lock()
		id := h.epoch + "-" + strconv.FormatUint(h.next, 10)
		ev := sseEvent{seq: h.next, frame: frame(gatewayapi.EventMessage, id, jsonOf(msg))}
		h.next++
		h.ring = append(h.ring, ev)
		h.ringLen += len(ev.frame)
		for len(h.ring) > ringEvents || (h.ringLen > ringBytes && len(h.ring) > 1) {
			h.ringLen -= len(h.ring[0].frame)
			h.ring = h.ring[1:]
		}
		for cl := range h.clients {
			select {
			case cl.ch <- ev:
				hs.m.sseMessages.Inc()
			default:
				delete(h.clients, cl)
				close(cl.gone)
				hs.m.sseDropped.WithLabelValues(dropSlow).Inc()
				hs.log.Info("gateway dropped a slow event stream", "topic", h.topic, "buffer", clientBuffer)
			}
		}
		hs.mu.Unlock()
	}
	end := frame(gatewayapi.EventEnd, "", jsonOf(gossipEnd(sub.Err())))
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h.sub == sub {
		h.sub = nil
		for cl := range h.clients {
			cl.end = end
			delete(h.clients, cl)
			close(cl.gone)
		}
	}
}

// close ends every subscription and waits for the pumps.
func (hs *hubs) close() {
	hs.mu.Lock()
	hs.closed = true
	for _, h := range hs.topics {
		if h.idle != nil {
			h.idle.Stop()
		}
		if h.sub != nil {
			h.sub.Cancel()
		}
	}
	hs.mu.Unlock()
	hs.pumps.Wait()
}

func gossipEnd(err error) controlapi.GossipEnd {
	switch {
	case errors.Is(err, gossip.ErrStopped):
		return controlapi.GossipEnd{Reason: "stopped", Message: "the node ended the stream: it is stopping or restarting its network; reconnect with Last-Event-ID"}
	case errors.Is(err, gossip.ErrLeft):
		return controlapi.GossipEnd{Reason: "left", Message: "the node left the topic"}
	case err == nil, errors.Is(err, gossip.ErrCancelled):
		return controlapi.GossipEnd{Reason: "closed", Message: "the stream was closed"}
	}
	return controlapi.GossipEnd{Reason: "error", Message: err.Error()}
}
