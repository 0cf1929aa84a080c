package controlserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// gossipWriteTimeout bounds one write of a subscription stream, so a client
// that stops reading cannot hold the handler (and the shutdown) forever.
const gossipWriteTimeout = 10 * time.Second

// gossipSubscribe streams a subscription as newline-delimited JSON, one
// flushed line per message, until the client goes away or the node ends the
// subscription (shutdown, key rotation, leave), which it says in a last
// {"end":…} line.
func (s *server) gossipSubscribe(w http.ResponseWriter, r *http.Request) {
	topic := node.CanonicalTopic(r.URL.Query().Get("topic"))
	if err := gossip.CheckTopic(topic); err != nil {
		WriteError(w, &node.ArgError{Arg: node.ArgTopic, Value: topic, Err: err})
		return
	}
	sub, err := s.n.GossipSubscribe(topic)
	if err != nil {
		if !errors.Is(err, gossip.ErrStopped) {
			err = &node.ArgError{Arg: node.ArgTopic, Value: topic, Err: err}
		}
		WriteError(w, err)
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
	if !send(controlapi.GossipEvent{Subscribed: &controlapi.GossipSubscribed{Topic: topic, WireTopic: s.n.GossipWireTopic(topic)}}) {
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
			if !send(controlapi.GossipEvent{Message: GossipMessage(m)}) {
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

// GossipMessage is a received message in the wire form of controlapi (the
// control socket's stream and the gateway's events carry it).
func GossipMessage(m *gossip.Message) *controlapi.GossipMessage {
	out := &controlapi.GossipMessage{ID: m.ID.String(), Topic: m.Topic, Author: m.Author.String(), Seq: m.Seq,
		Time: m.Time().UTC(), Type: m.Type, Data: m.Payload, From: m.From.String(), Fetched: m.Fetched, Local: m.Local}
	if (m.Type == gossip.TypeText || m.Type == gossip.TypeJSON) && utf8.Valid(m.Payload) {
		out.Text = string(m.Payload)
	}
	return out
}
