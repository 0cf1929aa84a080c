package controlapi

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Trust routes.
const (
	RouteTrustAdd    = "/v0/trust/add"
	RouteTrustRemove = "/v0/trust/remove"
	RouteTrustList   = "/v0/trust/list"
	RouteTrustShow   = "/v0/trust/show"
	RouteTrustGraph  = "/v0/trust/graph"
)

// TrustAddRequest is POST /v0/trust/add: this node attests that it trusts
// DID with Score (0..1).
type TrustAddRequest struct {
	DID    string   `json:"did"`
	Score  float64  `json:"score"`
	Labels []string `json:"labels,omitempty"`
	// Expires is a Go duration from now ("720h"); empty means never.
	Expires string `json:"expires,omitempty"`
}

// TrustRemoveRequest is POST /v0/trust/remove: a revocation (score 0).
type TrustRemoveRequest struct {
	DID string `json:"did"`
}

// TrustEdge is one attestation.
type TrustEdge struct {
	Issuer    string     `json:"issuer"`
	Subject   string     `json:"subject"`
	Score     float64    `json:"score"`
	Labels    []string   `json:"labels"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Seq       uint64     `json:"seq"`
}

// TrustPath is one path of attestations that gave a DID its score.
type TrustPath struct {
	Via   []string `json:"via"`
	Score float64  `json:"score"`
}

// TrustView is GET /v0/trust/show?did=: what this node thinks of a DID.
type TrustView struct {
	DID    string      `json:"did"`
	Direct *TrustEdge  `json:"direct,omitempty"`
	Score  float64     `json:"score"`
	Class  string      `json:"class"`
	Paths  []TrustPath `json:"paths"`
	// Policy says what the class allows here: mode and whether the DID may
	// connect, author ledger entries and gossip.
	Mode       string `json:"mode"`
	MayConnect bool   `json:"may_connect"`
	MayLedger  bool   `json:"may_ledger"`
	MayGossip  bool   `json:"may_gossip"`
}

// TrustScore is one DID's score and class.
type TrustScore struct {
	DID   string  `json:"did"`
	Score float64 `json:"score"`
	Class string  `json:"class"`
}

// TrustGraph is GET /v0/trust/graph: every live edge this node holds and
// every DID with a score.
type TrustGraph struct {
	Self   string       `json:"self"`
	Edges  []TrustEdge  `json:"edges"`
	Scores []TrustScore `json:"scores"`
}

// TrustAdd attests trust in a DID.
func (c *Client) TrustAdd(ctx context.Context, req TrustAddRequest) (TrustEdge, error) {
	var e TrustEdge
	return e, c.do(ctx, http.MethodPost, RouteTrustAdd, req, &e)
}

// TrustRemove revokes this node's attestation about a DID.
func (c *Client) TrustRemove(ctx context.Context, did string) (TrustEdge, error) {
	var e TrustEdge
	return e, c.do(ctx, http.MethodPost, RouteTrustRemove, TrustRemoveRequest{DID: did}, &e)
}

// TrustList lists this node's own live attestations.
func (c *Client) TrustList(ctx context.Context) ([]TrustEdge, error) {
	var es []TrustEdge
	return es, c.do(ctx, http.MethodGet, RouteTrustList, nil, &es)
}

// TrustShow says what this node thinks of a DID.
func (c *Client) TrustShow(ctx context.Context, did string) (TrustView, error) {
	var v TrustView
	return v, c.do(ctx, http.MethodGet, RouteTrustShow+"?did="+url.QueryEscape(did), nil, &v)
}

// TrustGraph returns the whole graph as this node holds it.
func (c *Client) TrustGraph(ctx context.Context) (TrustGraph, error) {
	var g TrustGraph
	return g, c.do(ctx, http.MethodGet, RouteTrustGraph, nil, &g)
}
