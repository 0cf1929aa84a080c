// Package gatewayapi owns the wire contract of the Gateway API: the /v1
// routes icnd serves on its health listener for cooperative apps and
// members' wallets, their request and response types, the JSON form of a
// ledger entry and of a gossip envelope (with their conversions to the
// signed binary forms), the cursor-paginated list shape, and the OpenAPI 3.1
// document that describes it all. The server is node/gateway; a Go client
// is node/gateway/client. Errors are controlapi.Error's JSON: {error, hint}.
package gatewayapi

import (
	"time"

	"github.com/intercooperative/icn/node/controlapi"
)

// Routes, as net/http patterns (a {name} is one path segment).
const (
	RouteOpenAPI        = "/v1/openapi.json"
	RouteAuthChallenge  = "/v1/auth/challenge"
	RouteAuthVerify     = "/v1/auth/verify"
	RouteStatus         = "/v1/status"
	RoutePeers          = "/v1/peers"
	RouteCurrencies     = "/v1/ledger/currencies"
	RouteBalances       = "/v1/ledger/balances/{did}"
	RouteHistory        = "/v1/ledger/history/{did}"
	RouteHead           = "/v1/ledger/head"
	RouteNext           = "/v1/ledger/next/{did}"
	RouteEntries        = "/v1/ledger/entries"
	RouteEntriesPrepare = "/v1/ledger/entries/prepare"
	RoutePay            = "/v1/ledger/pay"
	RouteTrust          = "/v1/trust/{did}"
	RouteGossipTopic    = "/v1/gossip/{topic}"
	RouteGossipEvents   = "/v1/gossip/{topic}/events"
)

// Content types the gateway reads besides JSON.
const (
	// ContentTypeCBOR is a ledger entry block (POST /v1/ledger/entries).
	ContentTypeCBOR = "application/cbor"
	// ContentTypeEnvelope is a binary gossip envelope (POST /v1/gossip/{topic}).
	ContentTypeEnvelope = "application/octet-stream"
	// ContentTypeSSE is the event stream of GET /v1/gossip/{topic}/events.
	ContentTypeSSE = "text/event-stream"
)

// Pagination.
const (
	// DefaultLimit is a page's size when the request gives none.
	DefaultLimit = 100
	// MaxLimit is the largest page a request may ask for.
	MaxLimit = 1000
)

// Page is one page of a list: pass NextCursor back as ?cursor= for the
// next; it is empty on the last page.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ChallengeRequest is POST /v1/auth/challenge.
type ChallengeRequest struct {
	DID string `json:"did"`
}

// Challenge is the answer: sign auth.Message(node DID, your DID, nonce)
// with the DID's Ed25519 key and send it to /v1/auth/verify before
// ExpiresAt. A nonce works once.
type Challenge struct {
	Nonce     string    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
	// NodeDID is the DID the message to sign names.
	NodeDID string `json:"node_did"`
	// Message is the exact text to sign, for convenience.
	Message string `json:"message"`
}

// VerifyRequest is POST /v1/auth/verify. Signature is the Ed25519 signature
// (64 bytes, base64).
type VerifyRequest struct {
	DID       string `json:"did"`
	Nonce     string `json:"nonce"`
	Signature []byte `json:"signature"`
}

// Token is the answer to /v1/auth/verify: send it as
// "Authorization: Bearer <token>".
type Token struct {
	Token     string    `json:"token"`
	TokenType string    `json:"token_type"` // Bearer
	JTI       string    `json:"jti"`
	Subject   string    `json:"subject"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Status is GET /v1/status: the node's public status (no data dir, no
// listen addresses beyond what peers are told).
type Status struct {
	DID           string   `json:"did"`
	PeerID        string   `json:"peer_id"`
	AnnounceAddrs []string `json:"announce_addrs"`
	Protocols     []string `json:"protocols"`
	Peers         int      `json:"peers"`
	Version       string   `json:"version"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Ready         bool     `json:"ready"`
	Problem       string   `json:"problem,omitempty"`
	// Subject and Scopes echo the token the request carried.
	Subject string   `json:"subject"`
	Scopes  []string `json:"scopes"`
}

// Next is GET /v1/ledger/next/{did}: what the DID's next entry must carry.
type Next struct {
	Author string `json:"author"`
	// Seq is the next entry's seq (1 for a DID with no entries yet).
	Seq uint64 `json:"seq"`
	// Prev is the CID of the author's entry Seq-1, empty when Seq is 1.
	Prev string `json:"prev,omitempty"`
	// Parents are the other heads this node knows, sorted as entries
	// require.
	Parents []string `json:"parents"`
}

// PrepareRequest is POST /v1/ledger/entries/prepare: the node fills in a
// transfer from Author (seq, prev, parents, currency, amount in units) and
// returns it unsigned with the bytes to sign. A wallet that does not trust
// the node builds the entry itself (node/gateway/client does) instead.
type PrepareRequest struct {
	Author   string `json:"author"`
	To       string `json:"to"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	Memo     string `json:"memo,omitempty"`
	// Timestamp is unix milliseconds; 0 means the node's clock.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// Prepared is the answer: sign SigningBytes (base64) with the author's DID
// key, put the signature (base64) in Entry.Signature, and POST Entry to
// /v1/ledger/entries.
type Prepared struct {
	Entry        Entry  `json:"entry"`
	SigningBytes []byte `json:"signing_bytes"`
}

// Submitted is the answer to POST /v1/ledger/entries (201 when stored now,
// 200 when this node already held the very same entry).
type Submitted struct {
	controlapi.Entry
	Duplicate bool `json:"duplicate,omitempty"`
}

// TopicInfo is GET /v1/gossip/{topic}: what an envelope for the topic is
// signed over.
type TopicInfo struct {
	Topic     string `json:"topic"`
	WireTopic string `json:"wire_topic"`
	// MaxMessageSize bounds one envelope in bytes.
	MaxMessageSize int `json:"max_message_size"`
}

// GossipPublishRequest is POST /v1/gossip/{topic} as JSON. Exactly one of
// Envelope (signed by the token's subject, any gossip:write token) or
// Data/Text (signed by the node: admin only) is given.
type GossipPublishRequest struct {
	Envelope *Envelope `json:"envelope,omitempty"`
	Type     string    `json:"type,omitempty"`
	Data     []byte    `json:"data,omitempty"`
	Text     string    `json:"text,omitempty"`
}

// SSE event names of GET /v1/gossip/{topic}/events. Each "message" event's
// data is a controlapi.GossipMessage as JSON and its id is resumable with
// Last-Event-ID; "reset" says the events since the given Last-Event-ID are
// no longer held (the node restarted, or the client was away too long);
// "end" carries a controlapi.GossipEnd before the node closes the stream.
const (
	EventMessage = "message"
	EventReset   = "reset"
	EventEnd     = "end"
)
