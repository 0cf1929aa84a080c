package controlapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Gossip routes.
const (
	// RouteGossipTopics is GET: the joined topics.
	RouteGossipTopics = "/v0/gossip/topics"
	// RouteGossipPublish is POST GossipPublishRequest → GossipPublished.
	RouteGossipPublish = "/v0/gossip/publish"
	// RouteGossipSubscribe is GET ?topic=NAME: a long-lived response of
	// newline-delimited JSON GossipEvents, flushed one per message: first
	// {"subscribed":…}, then {"message":…} per message, and {"end":…} when
	// the node ends the subscription.
	RouteGossipSubscribe = "/v0/gossip/subscribe"
	// RouteGossipLeave is POST GossipLeaveRequest: stop relaying a topic.
	RouteGossipLeave = "/v0/gossip/leave"
)

// GossipTopic is one entry of GET /v0/gossip/topics.
type GossipTopic struct {
	Topic     string `json:"topic"`
	WireTopic string `json:"wire_topic"`
	// Subscribers are local subscriptions (icnctl gossip subscribe streams included).
	Subscribers int `json:"subscribers"`
	// Peers are connected peers subscribed to the topic; MeshPeers those in
	// this node's GossipSub mesh for it.
	Peers     int  `json:"peers"`
	MeshPeers int  `json:"mesh_peers"`
	Stateful  bool `json:"stateful"`
	// Cached is how many recent envelopes the node holds for peers that missed them.
	Cached int `json:"cached"`
}

// GossipPublishRequest is POST /v0/gossip/publish. Type defaults to
// text/plain for UTF-8 data, application/octet-stream otherwise.
type GossipPublishRequest struct {
	Topic string `json:"topic"`
	Type  string `json:"type,omitempty"`
	Data  []byte `json:"data"`
}

// GossipPublished is the answer to a publish.
type GossipPublished struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	// Peers is how many connected peers are subscribed to the topic.
	Peers int `json:"peers"`
}

// GossipLeaveRequest is POST /v0/gossip/leave.
type GossipLeaveRequest struct {
	Topic string `json:"topic"`
}

// GossipMessage is one delivered message.
type GossipMessage struct {
	ID     string    `json:"id"`
	Topic  string    `json:"topic"`
	Author string    `json:"author"`
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Data   []byte    `json:"data"`
	// Text is Data as a string when the type is text/plain or application/json.
	Text string `json:"text,omitempty"`
	// From is the peer that published it (or served it, when Fetched).
	From    string `json:"from"`
	Fetched bool   `json:"fetched,omitempty"`
	Local   bool   `json:"local,omitempty"`
}

// GossipEvent is one line of a subscription stream; exactly one field is set.
type GossipEvent struct {
	Subscribed *GossipSubscribed `json:"subscribed,omitempty"`
	Message    *GossipMessage    `json:"message,omitempty"`
	End        *GossipEnd        `json:"end,omitempty"`
}

// GossipSubscribed opens a subscription stream.
type GossipSubscribed struct {
	Topic     string `json:"topic"`
	WireTopic string `json:"wire_topic"`
}

// GossipEnd closes a subscription stream: Reason is "stopped" (icnd is
// shutting down or re-keying its network), "left" (the topic was left) or
// "error".
type GossipEnd struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// SubscriptionEndedError means icnd ended the subscription.
type SubscriptionEndedError struct{ GossipEnd }

func (e *SubscriptionEndedError) Error() string { return e.Message }

// ErrStreamLost means the connection to icnd broke without an end event:
// the daemon went away.
var ErrStreamLost = errors.New("lost the connection to icnd (it stopped or crashed)")

// GossipTopics lists the joined topics.
func (c *Client) GossipTopics(ctx context.Context) ([]GossipTopic, error) {
	var ts []GossipTopic
	return ts, c.do(ctx, http.MethodGet, RouteGossipTopics, nil, &ts)
}

// GossipPublish publishes a message.
func (c *Client) GossipPublish(ctx context.Context, req GossipPublishRequest) (GossipPublished, error) {
	var p GossipPublished
	return p, c.do(ctx, http.MethodPost, RouteGossipPublish, req, &p)
}

// GossipLeave leaves a topic.
func (c *Client) GossipLeave(ctx context.Context, topic string) error {
	return c.do(ctx, http.MethodPost, RouteGossipLeave, GossipLeaveRequest{Topic: topic}, nil)
}

// GossipStream is an open subscription.
type GossipStream struct {
	Subscribed GossipSubscribed
	body       io.ReadCloser
	sc         *bufio.Scanner
}

// maxEventLine bounds one line of a subscription stream (a message is at
// most 512 KiB, base64 makes it 4/3 larger).
const maxEventLine = 2 << 20

// GossipSubscribe opens a subscription stream; it returns once icnd has
// subscribed. Cancel ctx or call Close to end it.
func (c *Client) GossipSubscribe(ctx context.Context, topic string) (*GossipStream, error) {
	resp, err := c.send(ctx, http.MethodGet, RouteGossipSubscribe+"?"+url.Values{"topic": {topic}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	s := &GossipStream{body: resp.Body, sc: bufio.NewScanner(resp.Body)}
	s.sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	ev, err := s.next(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	if ev.Subscribed == nil {
		s.Close()
		return nil, errors.New("icnd did not confirm the subscription")
	}
	s.Subscribed = *ev.Subscribed
	return s, nil
}

func (s *GossipStream) next(ctx context.Context) (GossipEvent, error) {
	for s.sc.Scan() {
		line := bytes.TrimSpace(s.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev GossipEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return GossipEvent{}, fmt.Errorf("bad line from icnd: %w", err)
		}
		return ev, nil
	}
	if ctx.Err() != nil {
		return GossipEvent{}, ctx.Err()
	}
	if err := s.sc.Err(); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return GossipEvent{}, fmt.Errorf("%w: %v", ErrStreamLost, err)
	}
	return GossipEvent{}, ErrStreamLost
}

// Next waits for the next message. It returns a *SubscriptionEndedError when
// icnd ends the subscription, ErrStreamLost when the connection breaks
// without one, and ctx's error when ctx (given to GossipSubscribe) ends.
func (s *GossipStream) Next(ctx context.Context) (GossipMessage, error) {
	for {
		ev, err := s.next(ctx)
		if err != nil {
			return GossipMessage{}, err
		}
		switch {
		case ev.Message != nil:
			return *ev.Message, nil
		case ev.End != nil:
			return GossipMessage{}, &SubscriptionEndedError{*ev.End}
		}
	}
}

// Close ends the stream.
func (s *GossipStream) Close() error { return s.body.Close() }
