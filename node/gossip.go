package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// gossipShared is the part of the gossip layer that outlives a key
// rotation: its config, its metrics and its memory (replay window, caches,
// joined topics). Each new stack builds a gossip.Service over it.
type gossipShared struct {
	cfg     gossip.Config
	memory  *gossip.Memory
	metrics *gossip.Metrics
}

// gossipConfig maps the [network], [rate_limiting] and [gossip] tables;
// checkEntry validates ledger entries pushed on currency topics.
func gossipConfig(cfg config.Config, checkEntry gossip.PayloadCheck) gossip.Config {
	return gossip.Config{
		NetworkID:        cfg.Network.NetworkID,
		MaxMessageSize:   cfg.Gossip.MaxMessageSize,
		ClockSkew:        cfg.Gossip.ClockSkew.Duration,
		MaxAge:           cfg.Gossip.MaxAge.Duration,
		AnnounceInterval: cfg.Gossip.AnnounceInterval.Duration,
		RateLimit:        cfg.RateLimiting.MessagesPerSecond,
		RateBurst:        cfg.RateLimiting.Burst,
		Types:            map[string]gossip.PayloadCheck{LedgerEntryType: checkEntry, LedgerStateType: checkStatePayload},
	}
}

func newGossipShared(cfg config.Config, reg prometheus.Registerer, net *netMetrics, checkEntry gossip.PayloadCheck) (*gossipShared, error) {
	m, err := gossip.NewMetrics(reg, net.messagesReceived, net.messagesRateLimits)
	if err != nil {
		return nil, err
	}
	gc := gossipConfig(cfg, checkEntry)
	mem := gossip.NewMemory(gc)
	if err := gossip.RegisterMemoryMetrics(reg, mem); err != nil {
		return nil, err
	}
	return &gossipShared{cfg: gc, memory: mem, metrics: m}, nil
}

func newGossip(deps stackDeps, st *netStack) (*gossip.Service, error) {
	return gossip.New(deps.gossip.cfg, gossip.Deps{
		Host:     st.h,
		Identity: st.id,
		Bindings: deps.book,
		Memory:   deps.gossip.memory,
		Metrics:  deps.gossip.metrics,
		Log:      deps.log.With("component", "gossip"),
		AppScore: deps.penalties.AppScore,
	})
}

func (n *Node) gossipRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+controlapi.RouteGossipTopics, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.GossipTopics())
	})
	mux.HandleFunc("POST "+controlapi.RouteGossipPublish, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.GossipPublishRequest
		if !decodeBody(w, r, &req) {
			return
		}
		p, err := n.GossipPublish(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST "+controlapi.RouteGossipLeave, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.GossipLeaveRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if strings.HasPrefix(req.Topic, "ledger:") {
			writeErr(w, &controlapi.Error{Status: http.StatusForbidden,
				Message: fmt.Sprintf("%s carries the ledger; the node stays on it", req.Topic),
				Hint:    "ledger topics are managed by icnd itself"})
			return
		}
		if err := n.current().gossip.Leave(req.Topic); err != nil {
			writeErr(w, &controlapi.Error{Status: http.StatusNotFound, Message: err.Error(),
				Hint: "`icnctl gossip topics` lists the joined topics"})
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, map[string]string{"left": req.Topic})
	})
	mux.HandleFunc("GET "+controlapi.RouteGossipSubscribe, n.serveGossipSubscribe)
}

// GossipTopics lists the joined topics.
func (n *Node) GossipTopics() []controlapi.GossipTopic {
	infos := n.current().gossip.Topics()
	out := make([]controlapi.GossipTopic, len(infos))
	for i, t := range infos {
		out[i] = controlapi.GossipTopic{Topic: t.Topic, WireTopic: t.WireTopic, Subscribers: t.Subscribers,
			Peers: t.Peers, MeshPeers: t.MeshPeers, Stateful: t.Stateful, Cached: t.Cached}
	}
	return out
}

const topicHint = "a topic name is 1-128 printable characters without spaces or '/', e.g. chat:general or ledger:hours"

// GossipPublish signs and publishes a message as this node's DID.
func (n *Node) GossipPublish(ctx context.Context, req controlapi.GossipPublishRequest) (controlapi.GossipPublished, error) {
	if err := gossip.CheckTopic(req.Topic); err != nil {
		return controlapi.GossipPublished{}, badRequest(err.Error(), topicHint)
	}
	typ := req.Type
	if typ == "" {
		typ = gossip.TypeBinary
		if utf8.Valid(req.Data) {
			typ = gossip.TypeText
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := n.current().gossip.Publish(ctx, req.Topic, typ, req.Data)
	if err != nil {
		var tl *gossip.TooLargeError
		switch {
		case errors.As(err, &tl):
			return controlapi.GossipPublished{}, &controlapi.Error{Status: http.StatusRequestEntityTooLarge, Message: err.Error(),
				Hint: "send less data, or raise gossip.max_message_size on every node"}
		case errors.Is(err, gossip.ErrStopped):
			return controlapi.GossipPublished{}, &controlapi.Error{Status: http.StatusServiceUnavailable, Message: err.Error(),
				Hint: "icnd is stopping or re-keying; try again in a moment"}
		}
		return controlapi.GossipPublished{}, badRequest(err.Error(), "")
	}
	return controlapi.GossipPublished{ID: p.ID.String(), Topic: p.Topic, Seq: p.Seq, Peers: p.Peers}, nil
}

// GossipSubscribe subscribes in process (tests and future subsystems).
func (n *Node) GossipSubscribe(topic string) (*gossip.Subscription, error) {
	return n.current().gossip.Subscribe(topic, 0)
}

// Gossip is the current stack's gossip service (a key rotation replaces it).
func (n *Node) Gossip() *gossip.Service { return n.current().gossip }

// gossipWriteTimeout bounds one write of a subscription stream, so a client
// that stops reading cannot hold the handler (and the shutdown) forever.
const gossipWriteTimeout = 10 * time.Second

// serveGossipSubscribe streams a subscription as newline-delimited JSON,
// one flushed line per message, until the client goes away or the node ends
// the subscription (shutdown, key rotation, leave), which it says in a last
// {"end":…} line.
func (n *Node) serveGossipSubscribe(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if err := gossip.CheckTopic(topic); err != nil {
		writeErr(w, badRequest(err.Error(), topicHint))
		return
	}
	svc := n.current().gossip
	sub, err := svc.Subscribe(topic, 0)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, gossip.ErrStopped) {
			status = http.StatusServiceUnavailable
		}
		writeErr(w, &controlapi.Error{Status: status, Message: err.Error()})
		return
	}
	defer sub.Cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev controlapi.GossipEvent) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(gossipWriteTimeout))
		return enc.Encode(ev) == nil && rc.Flush() == nil
	}
	wire := gossip.WireTopic(n.cfg.Network.NetworkID, topic)
	if !send(controlapi.GossipEvent{Subscribed: &controlapi.GossipSubscribed{Topic: topic, WireTopic: wire}}) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-sub.Messages():
			if !ok {
				send(controlapi.GossipEvent{End: gossipEnd(sub.Err())})
				return
			}
			if !send(controlapi.GossipEvent{Message: gossipMessage(m)}) {
				return
			}
		}
	}
}

func gossipEnd(err error) *controlapi.GossipEnd {
	switch {
	case errors.Is(err, gossip.ErrStopped):
		return &controlapi.GossipEnd{Reason: "stopped", Message: "icnd ended the subscription: it is shutting down or restarting its network (key rotation)"}
	case errors.Is(err, gossip.ErrLeft):
		return &controlapi.GossipEnd{Reason: "left", Message: "icnd ended the subscription: the topic was left"}
	}
	return &controlapi.GossipEnd{Reason: "error", Message: fmt.Sprintf("icnd ended the subscription: %v", err)}
}

func gossipMessage(m *gossip.Message) *controlapi.GossipMessage {
	out := &controlapi.GossipMessage{ID: m.ID.String(), Topic: m.Topic, Author: m.Author.String(), Seq: m.Seq,
		Time: m.Time().UTC(), Type: m.Type, Data: m.Payload, From: m.From.String(), Fetched: m.Fetched, Local: m.Local}
	if (m.Type == gossip.TypeText || m.Type == gossip.TypeJSON) && utf8.Valid(m.Payload) {
		out.Text = string(m.Payload)
	}
	return out
}
