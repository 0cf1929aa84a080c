// Package client is a Go client for an ICN node's Gateway API (/v1), for
// cooperative apps and members' wallets. The member's Ed25519 key never
// leaves the program using it: Login answers the node's challenge with a
// signature, Pay builds and signs the ledger entry locally and submits the
// signed block, Publish signs gossip envelopes locally. Errors from the
// node are *Error, with the node's message, hint and status.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Client talks to one node's gateway. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client

	mu    sync.Mutex
	token string
}

// New returns a client for the gateway at baseURL (the node's health
// listener, e.g. http://127.0.0.1:8080). hc nil means a client with a 30 s
// timeout (event streams use no timeout; their context ends them).
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// SetToken sets the bearer token sent with every request (from Login, or
// minted with `icnctl gateway token`).
func (c *Client) SetToken(tok string) {
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
}

// Token is the token in use.
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// Error is an error answer from the gateway.
type Error struct {
	Status  int
	Message string
	Hint    string
	// RetryAfter is set on 429 and 503 answers that say when to retry.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("gateway: %s (%d; %s)", e.Message, e.Status, e.Hint)
	}
	return fmt.Sprintf("gateway: %s (%d)", e.Message, e.Status)
}

const requestTimeout = 30 * time.Second

// do sends a request; body is JSON unless it is a []byte (sent with
// contentType).
func (c *Client) do(ctx context.Context, method, path string, body any, contentType string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, body, contentType, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("gateway: decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body any, contentType string, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, contentType = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok := c.Token(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		var ce controlapi.Error
		if json.Unmarshal(data, &ce) == nil && ce.Message != "" {
			e.Message, e.Hint = ce.Message, ce.Hint
		} else {
			e.Message = strings.TrimSpace(string(data))
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, e
	}
	return resp, nil
}

// Login proves control of d's key to the node (challenge, signature,
// verify) and uses the token it gets from then on.
func (c *Client) Login(ctx context.Context, d did.DID, key ed25519.PrivateKey) (gatewayapi.Token, error) {
	var ch gatewayapi.Challenge
	if err := c.do(ctx, http.MethodPost, gatewayapi.RouteAuthChallenge, gatewayapi.ChallengeRequest{DID: d.String()}, "", &ch); err != nil {
		return gatewayapi.Token{}, err
	}
	node, err := did.Parse(ch.NodeDID)
	if err != nil {
		return gatewayapi.Token{}, fmt.Errorf("gateway: the challenge names no valid node DID: %w", err)
	}
	// Sign the message as built here, not the copy the node sent.
	sig := ed25519.Sign(key, auth.Message(node, d, ch.Nonce))
	var tok gatewayapi.Token
	if err := c.do(ctx, http.MethodPost, gatewayapi.RouteAuthVerify, gatewayapi.VerifyRequest{DID: d.String(), Nonce: ch.Nonce, Signature: sig}, "", &tok); err != nil {
		return gatewayapi.Token{}, err
	}
	c.SetToken(tok.Token)
	return tok, nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (gatewayapi.Status, error) {
	var s gatewayapi.Status
	return s, c.do(ctx, http.MethodGet, gatewayapi.RouteStatus, nil, "", &s)
}

// pages follows a list's cursors to the end.
func pages[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var all []T
	for {
		var p gatewayapi.Page[T]
		u := path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		if err := c.do(ctx, http.MethodGet, u, nil, "", &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all, nil
		}
		if q == nil {
			q = url.Values{}
		}
		q.Set("cursor", p.NextCursor)
	}
}

// Peers lists the node's connected peers.
func (c *Client) Peers(ctx context.Context) ([]controlapi.Peer, error) {
	return pages[controlapi.Peer](ctx, c, gatewayapi.RoutePeers, nil)
}

// Currencies lists the ledger's currencies.
func (c *Client) Currencies(ctx context.Context) ([]controlapi.CurrencyInfo, error) {
	return pages[controlapi.CurrencyInfo](ctx, c, gatewayapi.RouteCurrencies, nil)
}

// Balances lists d's balances; currency ("" for all) is SYMBOL or
// SYMBOL@ISSUER.
func (c *Client) Balances(ctx context.Context, d did.DID, currency string) ([]controlapi.Balance, error) {
	q := url.Values{}
	if currency != "" {
		q.Set("currency", currency)
	}
	return pages[controlapi.Balance](ctx, c, "/v1/ledger/balances/"+url.PathEscape(d.String()), q)
}

// History lists the entries by or to d, oldest first.
func (c *Client) History(ctx context.Context, d did.DID) ([]controlapi.Entry, error) {
	return pages[controlapi.Entry](ctx, c, "/v1/ledger/history/"+url.PathEscape(d.String()), nil)
}

// Head is GET /v1/ledger/head.
func (c *Client) Head(ctx context.Context) (controlapi.Head, error) {
	var h controlapi.Head
	return h, c.do(ctx, http.MethodGet, gatewayapi.RouteHead, nil, "", &h)
}

// Next says what d's next entry must carry.
func (c *Client) Next(ctx context.Context, d did.DID) (gatewayapi.Next, error) {
	var n gatewayapi.Next
	return n, c.do(ctx, http.MethodGet, "/v1/ledger/next/"+url.PathEscape(d.String()), nil, "", &n)
}

// Submit sends a signed entry block (canonical CBOR).
func (c *Client) Submit(ctx context.Context, block []byte) (gatewayapi.Submitted, error) {
	var s gatewayapi.Submitted
	return s, c.do(ctx, http.MethodPost, gatewayapi.RouteEntries, block, gatewayapi.ContentTypeCBOR, &s)
}

// Transfer is a payment a wallet makes from its own DID.
type Transfer struct {
	To       did.DID
	Currency ledger.CurrencyID
	// Units is the amount in the currency's smallest unit (ParseAmount
	// with the currency's decimals). A wallet should know a currency's
	// decimals itself rather than take them from a node on every payment.
	Units int64
	Memo  string
}

// Pay builds the transfer as the next entry of from (seq, prev and
// parents from Next), signs it with key, and submits it. The entry's
// content is the wallet's own: only what orders it comes from the node.
func (c *Client) Pay(ctx context.Context, from did.DID, key ed25519.PrivateKey, t Transfer) (gatewayapi.Submitted, error) {
	if t.Units <= 0 {
		return gatewayapi.Submitted{}, errors.New("gateway: a transfer's units must be positive")
	}
	n, err := c.Next(ctx, from)
	if err != nil {
		return gatewayapi.Submitted{}, err
	}
	if n.Author != from.String() {
		return gatewayapi.Submitted{}, fmt.Errorf("gateway: asked for the next entry of %s, got %s", from, n.Author)
	}
	j := gatewayapi.Entry{Author: from.String(), Seq: n.Seq, Prev: n.Prev, Parents: n.Parents, Timestamp: time.Now().UnixMilli(),
		Kind: ledger.KindTransfer.String(), Memo: t.Memo, Postings: []gatewayapi.Posting{
			{Account: from.String(), Symbol: t.Currency.Symbol, Issuer: t.Currency.Issuer.String(), Units: -t.Units},
			{Account: t.To.String(), Symbol: t.Currency.Symbol, Issuer: t.Currency.Issuer.String(), Units: t.Units},
		}}
	e, err := j.Ledger()
	if err != nil {
		return gatewayapi.Submitted{}, fmt.Errorf("gateway: the node's next entry: %w", err)
	}
	block, _, err := ledger.Sign(e, key)
	if err != nil {
		return gatewayapi.Submitted{}, err
	}
	return c.Submit(ctx, block)
}

// PayAsNode pays as the node's own DID (admin, or ledger:write for a token
// whose subject is the node).
func (c *Client) PayAsNode(ctx context.Context, req controlapi.PayRequest) (controlapi.Entry, error) {
	var e controlapi.Entry
	return e, c.do(ctx, http.MethodPost, gatewayapi.RoutePay, req, "", &e)
}

// Topic says what envelopes on topic are signed over.
func (c *Client) Topic(ctx context.Context, topic string) (gatewayapi.TopicInfo, error) {
	var t gatewayapi.TopicInfo
	return t, c.do(ctx, http.MethodGet, "/v1/gossip/"+url.PathEscape(topic), nil, "", &t)
}

// Publish signs an envelope of typ carrying payload as author and
// publishes it on topic. Its seq is the time in microseconds, which the
// replay window accepts as long as the author publishes less than once a
// microsecond.
func (c *Client) Publish(ctx context.Context, topic string, author did.DID, key ed25519.PrivateKey, typ string, payload []byte) (controlapi.GossipPublished, error) {
	info, err := c.Topic(ctx, topic)
	if err != nil {
		return controlapi.GossipPublished{}, err
	}
	now := time.Now()
	env := &gossip.Envelope{Author: author, Seq: uint64(now.UnixMicro()), Timestamp: uint64(now.UnixMilli()), Type: typ, Payload: payload}
	env.Sign(info.WireTopic, func(b []byte) []byte { return ed25519.Sign(key, b) })
	raw, err := env.Marshal()
	if err != nil {
		return controlapi.GossipPublished{}, err
	}
	var p controlapi.GossipPublished
	return p, c.do(ctx, http.MethodPost, "/v1/gossip/"+url.PathEscape(topic), raw, gatewayapi.ContentTypeEnvelope, &p)
}

// Event is one Server-Sent Event of a topic stream.
type Event struct {
	ID   string
	Name string // gatewayapi.EventMessage, EventReset or EventEnd
	Data []byte
	// Message is set on message events.
	Message *controlapi.GossipMessage
}

// Stream reads a topic's events; Close it when done.
type Stream struct {
	body   io.ReadCloser
	r      *bufio.Reader
	LastID string
}

// Events opens topic's event stream, resuming after lastID when given
// (the ID of the last event received). ctx ends the stream.
func (c *Client) Events(ctx context.Context, topic, lastID string) (*Stream, error) {
	hdr := http.Header{"Accept": {gatewayapi.ContentTypeSSE}}
	if lastID != "" {
		hdr.Set("Last-Event-ID", lastID)
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/gossip/"+url.PathEscape(topic)+"/events", nil, "", hdr)
	if err != nil {
		return nil, err
	}
	return &Stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10), LastID: lastID}, nil
}

// Next reads the next event (comments and retry hints are skipped).
func (s *Stream) Next() (Event, error) {
	var ev Event
	var data []byte
	seen := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return Event{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if !seen {
				continue
			}
			if ev.Name == "" {
				ev.Name = gatewayapi.EventMessage
			}
			ev.Data = data
			if ev.ID != "" {
				s.LastID = ev.ID
			}
			if ev.Name == gatewayapi.EventMessage {
				var m controlapi.GossipMessage
				if err := json.Unmarshal(data, &m); err != nil {
					return Event{}, fmt.Errorf("gateway: bad message event: %w", err)
				}
				ev.Message = &m
			}
			return ev, nil
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Name, seen = value, true
		case "id":
			ev.ID, seen = value, true
		case "data":
			if data != nil {
				data = append(data, '\n')
			}
			data, seen = append(data, value...), true
		}
	}
}

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }
