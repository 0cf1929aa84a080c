package controlapi

import (
	"context"
	"net/http"
	"time"
)

// Gateway token routes.
const (
	// RouteGatewayToken is POST: mint a Gateway API token.
	RouteGatewayToken = "/v0/gateway/token"
	// RouteGatewayRevoke is POST: revoke one token, or every token issued
	// so far.
	RouteGatewayRevoke = "/v0/gateway/revoke"
)

// GatewayTokenRequest is POST /v0/gateway/token. Every field is optional.
type GatewayTokenRequest struct {
	// Scopes the token grants; none means the read-only scopes
	// ledger:read, gossip:read and trust:read.
	Scopes []string `json:"scopes,omitempty"`
	// TTL is how long the token lasts, as a Go duration ("1h", "720h");
	// empty means gateway.token_ttl. At most 720h (30 days).
	TTL string `json:"ttl,omitempty"`
	// Subject is the DID the token speaks for; empty means the node's own.
	Subject string `json:"subject,omitempty"`
}

// GatewayToken is a minted token with its claims.
type GatewayToken struct {
	// Token is the JWT, sent as "Authorization: Bearer <token>".
	Token     string    `json:"token"`
	JTI       string    `json:"jti"`
	Subject   string    `json:"subject"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// GatewayRevokeRequest is POST /v0/gateway/revoke: exactly one of JTI and
// All.
type GatewayRevokeRequest struct {
	// JTI is the ID of the token to revoke (32 hex digits).
	JTI string `json:"jti,omitempty"`
	// All revokes every token issued until now.
	All bool `json:"all,omitempty"`
}

// GatewayRevokeResult is the answer to POST /v0/gateway/revoke.
type GatewayRevokeResult struct {
	// JTI, Subject, Scopes and ExpiresAt describe the token revoked by ID
	// (empty for All). The revocation is kept until ExpiresAt.
	JTI       string     `json:"jti,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	Scopes    []string   `json:"scopes,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// AlreadyRevoked says the token was revoked before this request (by
	// ID, or by an earlier revoke of all).
	AlreadyRevoked bool `json:"already_revoked"`
	// All is true for a revoke of every token.
	All bool `json:"all"`
	// RevokedBefore is the cutoff in force, if any: every token issued at
	// or before this second is refused.
	RevokedBefore *time.Time `json:"revoked_before,omitempty"`
}

// GatewayToken mints a Gateway API token.
func (c *Client) GatewayToken(ctx context.Context, req GatewayTokenRequest) (GatewayToken, error) {
	var r GatewayToken
	return r, c.do(ctx, http.MethodPost, RouteGatewayToken, req, &r)
}

// GatewayRevoke revokes one Gateway API token, or all of them.
func (c *Client) GatewayRevoke(ctx context.Context, req GatewayRevokeRequest) (GatewayRevokeResult, error) {
	var r GatewayRevokeResult
	return r, c.do(ctx, http.MethodPost, RouteGatewayRevoke, req, &r)
}
