package controlapi

import (
	"context"
	"net/http"
)

// RouteLimits is GET: resource use against the resource manager's limits.
const RouteLimits = "/v0/network/limits"

// Limits is the answer to GET /v0/network/limits: what the node's libp2p
// resource manager has in use now, against each limit, for the whole node
// (system), for connections and streams still being set up (transient), and
// for the peers using the most streams.
type Limits struct {
	System    ScopeUsage  `json:"system"`
	Transient ScopeUsage  `json:"transient"`
	Peers     PeerSummary `json:"peers"`
	// PerIP is how many connections one IP address may hold.
	PerIP PerIPLimit `json:"per_ip"`
	// ConnManager is the connection manager's trimming policy.
	ConnManager ConnManager `json:"conn_manager"`
	// NearlyFull lists every reported limit that is more than 80% used.
	NearlyFull []LimitAlert `json:"nearly_full"`
	// Warnings are configuration problems, in plain words.
	Warnings []string `json:"warnings"`
}

// Usage is one resource of one scope.
type Usage struct {
	Used int64 `json:"used"`
	// Limit is the most the scope may hold; -1 means unlimited.
	Limit int64 `json:"limit"`
	// ConfigKey is the [limits] key that sets Limit, e.g.
	// "limits.max_connections_inbound"; empty when no key sets it.
	ConfigKey string `json:"config_key,omitempty"`
}

// DirUsage is a resource counted by direction and in total.
type DirUsage struct {
	Inbound  Usage `json:"inbound"`
	Outbound Usage `json:"outbound"`
	Total    Usage `json:"total"`
}

// ScopeUsage is what one resource-manager scope holds.
type ScopeUsage struct {
	Connections DirUsage `json:"connections"`
	Streams     DirUsage `json:"streams"`
	MemoryBytes Usage    `json:"memory_bytes"`
	FDs         Usage    `json:"fds"`
}

// PeerUsage is one peer's scope.
type PeerUsage struct {
	PeerID string `json:"peer_id"`
	DID    string `json:"did,omitempty"`
	ScopeUsage
}

// PeerSummary summarises the per-peer scopes.
type PeerSummary struct {
	// Count is the number of peers holding any resource now.
	Count int `json:"count"`
	// Limits are what any one peer may hold (-1: unlimited).
	Limits PeerLimits `json:"limits"`
	// Top are up to five peers holding the most streams, most first.
	Top []PeerUsage `json:"top"`
}

// PeerLimits are the limits of one peer's scope.
type PeerLimits struct {
	Connections         int64 `json:"connections"`
	ConnectionsInbound  int64 `json:"connections_inbound"`
	ConnectionsOutbound int64 `json:"connections_outbound"`
	Streams             int64 `json:"streams"`
	StreamsInbound      int64 `json:"streams_inbound"`
	StreamsOutbound     int64 `json:"streams_outbound"`
	MemoryBytes         int64 `json:"memory_bytes"`
	FDs                 int64 `json:"fds"`
}

// PerIPLimit is the per-IP connection limit. Loopback addresses are exempt;
// IPv6 addresses are counted per /56 network (and 8 times as many per /48).
type PerIPLimit struct {
	Connections int    `json:"connections"`
	ConfigKey   string `json:"config_key"`
}

// ConnManager is the connection manager's policy: once more than HighWater
// connections are open it closes the least useful down to LowWater, sparing
// those younger than GracePeriod.
type ConnManager struct {
	LowWater    int    `json:"low_water"`
	HighWater   int    `json:"high_water"`
	GracePeriod string `json:"grace_period"`
}

// LimitAlert is a limit that is more than 80% used.
type LimitAlert struct {
	// Scope is "system", "transient" or "peer <peer id>".
	Scope string `json:"scope"`
	// Resource in plain words, e.g. "inbound connections".
	Resource  string  `json:"resource"`
	Used      int64   `json:"used"`
	Limit     int64   `json:"limit"`
	Percent   float64 `json:"percent"`
	ConfigKey string  `json:"config_key,omitempty"`
	// Message says all of the above in one sentence with what to do.
	Message string `json:"message"`
}

// Limits fetches resource use against the resource manager's limits.
func (c *Client) Limits(ctx context.Context) (Limits, error) {
	var l Limits
	return l, c.do(ctx, http.MethodGet, RouteLimits, nil, &l)
}
