package controlapi

import (
	"context"
	"net/http"
	"time"
)

// Blocklist routes.
const (
	// RouteBlock is POST: refuse a peer ID or a DID, and disconnect it now.
	RouteBlock = "/v0/network/block"
	// RouteUnblock is POST: lift a block.
	RouteUnblock = "/v0/network/unblock"
	// RouteBlocked is GET: the blocks in force.
	RouteBlocked = "/v0/network/blocked"
)

// BlockRequest is POST /v0/network/block.
type BlockRequest struct {
	// Target is a peer ID (12D3Koo…) or a DID (did:icn:z…): a DID blocks
	// every peer ID bound to it, now and after it rotates its key.
	Target string `json:"target"`
	// For is how long the block lasts, as a Go duration ("30m", "24h");
	// empty means until unblocked.
	For string `json:"for,omitempty"`
	// Reason is a note for the operator, shown in listings and logs.
	Reason string `json:"reason,omitempty"`
}

// UnblockRequest is POST /v0/network/unblock.
type UnblockRequest struct {
	Target string `json:"target"`
}

// BlockEntry is one block in force.
type BlockEntry struct {
	Target string `json:"target"`
	// Kind is "peer" or "did".
	Kind      string    `json:"kind"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the block lapses; null means never.
	ExpiresAt *time.Time `json:"expires_at"`
	// Peers are, for a DID, the peer IDs refused for it: the DID key's own
	// and every one known to be bound to it. Empty for a peer ID.
	Peers []string `json:"peers"`
}

// BlockResult is the answer to POST /v0/network/block.
type BlockResult struct {
	Blocked BlockEntry `json:"blocked"`
	// Replaced is true when the target was already blocked: its reason and
	// expiry are now the new ones.
	Replaced bool `json:"replaced"`
	// Disconnected are the peers whose connections were closed.
	Disconnected []string `json:"disconnected"`
}

// UnblockResult is the answer to POST /v0/network/unblock.
type UnblockResult struct {
	Unblocked BlockEntry `json:"unblocked"`
}

// Block refuses a peer ID or a DID and disconnects it.
func (c *Client) Block(ctx context.Context, req BlockRequest) (BlockResult, error) {
	var r BlockResult
	return r, c.do(ctx, http.MethodPost, RouteBlock, req, &r)
}

// Unblock lifts the block on a peer ID or a DID.
func (c *Client) Unblock(ctx context.Context, target string) (UnblockResult, error) {
	var r UnblockResult
	return r, c.do(ctx, http.MethodPost, RouteUnblock, UnblockRequest{Target: target}, &r)
}

// Blocked lists the blocks in force, oldest first.
func (c *Client) Blocked(ctx context.Context) ([]BlockEntry, error) {
	var r []BlockEntry
	return r, c.do(ctx, http.MethodGet, RouteBlocked, nil, &r)
}
