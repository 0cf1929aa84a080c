package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// topicOf is the {topic} path segment, checked.
func topicOf(r *http.Request) (string, error) {
	t := r.PathValue("topic")
	if err := gossip.CheckTopic(t); err != nil {
		return "", &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(),
			Hint: "a topic name is 1-128 printable characters without spaces or '/', e.g. chat:general"}
	}
	return t, nil
}

func (s *Server) topicInfo(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	t, err := topicOf(r)
	if err != nil {
		return nil, 0, err
	}
	return gatewayapi.TopicInfo{Topic: t, WireTopic: s.n.GossipWireTopic(t), MaxMessageSize: s.n.GossipMaxMessageSize()}, http.StatusOK, nil
}

// publish takes an envelope the token's subject signed (binary, or JSON
// {"envelope": …}), or, for admin, JSON {"type", "data"|"text"} that the
// node signs as itself.
func (s *Server) publish(_ http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error) {
	t, err := topicOf(r)
	if err != nil {
		return nil, 0, err
	}
	mt := "application/json"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			mt = ct
		}
	}
	var raw []byte
	switch mt {
	case gatewayapi.ContentTypeEnvelope:
		if raw, err = io.ReadAll(r.Body); err != nil {
			return nil, 0, err
		}
	case "application/json":
		req, err := decode[gatewayapi.GossipPublishRequest](r)
		if err != nil {
			return nil, 0, err
		}
		if req.Envelope == nil {
			if !c.Has(auth.ScopeAdmin) {
				return nil, 0, &controlapi.Error{Status: http.StatusForbidden, Message: "publishing as the node needs an admin token",
					Hint: `sign the envelope with your own key and send {"envelope": …}`}
			}
			data := req.Data
			if req.Text != "" {
				if len(data) > 0 {
					return nil, 0, badRequest("give data or text, not both")
				}
				data = []byte(req.Text)
			}
			p, err := s.n.GossipPublish(r.Context(), controlapi.GossipPublishRequest{Topic: t, Type: req.Type, Data: data})
			if err != nil {
				return nil, 0, err
			}
			return p, http.StatusCreated, nil
		}
		if req.Type != "" || len(req.Data) > 0 || req.Text != "" {
			return nil, 0, badRequest("give an envelope, or type and data, not both")
		}
		if raw, err = req.Envelope.Wire(); err != nil {
			var fe *gatewayapi.FieldError
			if errors.As(err, &fe) {
				return nil, 0, err
			}
			return nil, 0, &gossip.EnvelopeError{Reason: gossip.ReasonMalformed, Err: err}
		}
	default:
		return nil, 0, &controlapi.Error{Status: http.StatusUnsupportedMediaType,
			Message: fmt.Sprintf("content type %s is neither application/json nor %s", echo(mt), gatewayapi.ContentTypeEnvelope)}
	}
	env, err := gossip.Decode(raw, s.n.GossipMaxMessageSize())
	if err != nil {
		var de *gossip.DecodeError
		if errors.As(err, &de) && de.Oversize {
			return nil, 0, &gossip.TooLargeError{Size: len(raw), Limit: s.n.GossipMaxMessageSize()}
		}
		return nil, 0, &gossip.EnvelopeError{Reason: gossip.ReasonMalformed, Err: err}
	}
	if err := mayWriteAs(c, env.Author.String()); err != nil {
		return nil, 0, err
	}
	p, err := s.n.GossipPublishEnvelope(r.Context(), t, raw)
	if err != nil {
		return nil, 0, err
	}
	return p, http.StatusCreated, nil
}

// events streams a topic's messages as Server-Sent Events.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error) {
	t, err := topicOf(r)
	if err != nil {
		return nil, 0, err
	}
	t = node.CanonicalTopic(t)
	if !s.openStream(c.ID) {
		w.Header().Set("Retry-After", "5")
		return nil, 0, &controlapi.Error{Status: http.StatusTooManyRequests,
			Message: fmt.Sprintf("this token already has %d event streams open", s.cfg.MaxStreamsPerToken),
			Hint:    "close one, or use another token; one stream can carry a topic to many readers"}
	}
	defer s.closeStream(c.ID)
	cl, backlog, reset, err := s.hubs.join(t, r.Header.Get("Last-Event-ID"))
	if err != nil {
		return nil, 0, err
	}
	defer s.hubs.leave(t, cl)
	s.m.sseStreams.Inc()
	defer s.m.sseStreams.Dec()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", gatewayapi.ContentTypeSSE)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(s.now().Add(sseWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The retry hint, then what the client missed.
	if !write([]byte(fmt.Sprintf("retry: %d\n\n", sseRetry.Milliseconds()))) {
		return nil, 0, nil
	}
	if reset != "" && !write(frame(gatewayapi.EventReset, "", []byte(reset))) {
		return nil, 0, nil
	}
	for _, ev := range backlog {
		if !write(ev.frame) {
			return nil, 0, nil
		}
	}
	ping := s.hubs.newTicker()
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil, 0, nil
		case ev := <-cl.ch:
			if !write(ev.frame) {
				return nil, 0, nil
			}
		case <-cl.gone:
			if end := cl.endEvent(); end != nil {
				write(end)
			}
			return nil, 0, nil
		case <-ping.C:
			if !write([]byte(": ping\n\n")) {
				return nil, 0, nil
			}
		}
	}
}

func (s *Server) openStream(jti string) bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[jti] >= s.cfg.MaxStreamsPerToken {
		return false
	}
	s.streams[jti]++
	return true
}

func (s *Server) closeStream(jti string) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[jti]--; s.streams[jti] <= 0 {
		delete(s.streams, jti)
	}
}

// frame is one SSE event: its name, id and one data line (JSON has no
// raw newlines).
func frame(event, id string, data []byte) []byte {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return []byte(b.String())
}

func jsonOf(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled here
	}
	return b
}
