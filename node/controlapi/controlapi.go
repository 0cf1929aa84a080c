// Package controlapi owns the wire contract of icnd's control socket
// ({data_dir}/icnd.sock): versioned HTTP+JSON routes under /v0, their request
// and response types, the JSON error shape, and a typed client used by icnctl.
// It imports nothing from libp2p so the CLI stays small.
package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// SocketName is the control socket's file name inside the data dir.
const SocketName = "icnd.sock"

// SocketPath returns the control socket path for a data dir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Routes.
const (
	RouteStatus     = "/v0/status"
	RouteIdentity   = "/v0/id"
	RouteRotate     = "/v0/id/rotate"
	RoutePeers      = "/v0/network/peers"
	RouteDial       = "/v0/network/dial"
	RouteDisconnect = "/v0/network/disconnect"
	RouteBootstrap  = "/v0/network/bootstrap"
	RouteResolve    = "/v0/network/resolve"
)

// Status is GET /v0/status.
type Status struct {
	DID    string `json:"did"`
	PeerID string `json:"peer_id"`
	// ListenAddrs are the addresses icnd is bound to.
	ListenAddrs []string `json:"listen_addrs"`
	// AnnounceAddrs are the addresses peers are told to dial
	// (network.announce_addrs when set).
	AnnounceAddrs []string `json:"announce_addrs"`
	// Protocols are the libp2p protocols this node serves.
	Protocols     []string `json:"protocols"`
	Peers         int      `json:"peers"`
	Version       string   `json:"version"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Ready         bool     `json:"ready"`
	DataDir       string   `json:"data_dir"`
	BindingSeq    uint64   `json:"binding_seq"`
	// DHTRoutingTable is the number of peers in the Kademlia routing table.
	DHTRoutingTable int `json:"dht_routing_table"`
	// Problem says why a running node is not ready (a key rotation that
	// could not restart the host), or is empty.
	Problem string `json:"problem,omitempty"`
}

// Identity is GET /v0/id and the answer to POST /v0/id/rotate.
type Identity struct {
	DID        string `json:"did"`
	PeerID     string `json:"peer_id"`
	BindingSeq uint64 `json:"binding_seq"`
}

// Peer is one entry of GET /v0/network/peers and the answer to a dial.
type Peer struct {
	PeerID    string   `json:"peer_id"`
	DID       string   `json:"did"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"`
	Direction string   `json:"direction"` // inbound | outbound
	// GossipScore is the peer's GossipSub score as of its last
	// inspection (every few seconds); nil before the first.
	GossipScore *float64 `json:"gossip_score,omitempty"`
	// Penalty is the peer's decayed penalty count for protocol
	// violations against this node (docs/gossip.md#peer-scoring); at 20
	// the node disconnects and refuses it.
	Penalty float64 `json:"penalty"`
}

// DialRequest is POST /v0/network/dial. Addr is a multiaddr or host:port;
// DID, when set, is the identity the peer at Addr must prove.
type DialRequest struct {
	Addr string `json:"addr,omitempty"`
	DID  string `json:"did,omitempty"`
}

// DisconnectRequest is POST /v0/network/disconnect; Peer is a peer ID or a DID.
type DisconnectRequest struct {
	Peer string `json:"peer"`
}

// DisconnectResponse says which peers were disconnected.
type DisconnectResponse struct {
	Disconnected []string `json:"disconnected"`
}

// BootstrapResult is the answer to POST /v0/network/bootstrap.
type BootstrapResult struct {
	Attempted    int      `json:"attempted"`
	Connected    int      `json:"connected"`
	RoutingTable int      `json:"routing_table"`
	Errors       []string `json:"errors,omitempty"`
}

// ResolveRequest is POST /v0/network/resolve.
type ResolveRequest struct {
	DID string `json:"did"`
}

// Resolution is what a node found out about a DID.
type Resolution struct {
	DID    string `json:"did"`
	PeerID string `json:"peer_id"`
	// Source of the peer ID: cache (a binding learnt from a peer), dht (a
	// binding record found in the DHT) or derived (from the DID's key).
	Source string `json:"source"`
	// Seq of the binding used (0 for derived).
	Seq uint64 `json:"seq"`
	// DHT is "found" or why the DHT lookup failed.
	DHT   string   `json:"dht"`
	Addrs []string `json:"addrs"`
	// AddrSource is peerstore or dht ("" when no address was found).
	AddrSource string `json:"addr_source"`
	Connected  bool   `json:"connected"`
}

// RotateRequest is POST /v0/id/rotate. The passphrase proves the caller may
// rewrite the keystore; it travels only over the 0600 socket.
type RotateRequest struct {
	Passphrase string `json:"passphrase"`
}

// Error is the JSON body of every non-2xx answer.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Hint    string `json:"hint,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ErrDaemonNotRunning means nothing answers on the control socket.
var ErrDaemonNotRunning = errors.New("icnd is not running")

// NotRunningError names the socket that nobody answered on.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("icnd is not running (no answer on %s)", e.Socket)
}

// Unwrap lets errors.Is(err, ErrDaemonNotRunning) work.
func (e *NotRunningError) Unwrap() []error { return []error{ErrDaemonNotRunning, e.Err} }

// Client talks to icnd over its control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket returns the socket path.
func (c *Client) Socket() string { return c.socket }

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, RouteStatus, nil, &s)
}

// Identity fetches the daemon's DID and current peer ID.
func (c *Client) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	return id, c.do(ctx, http.MethodGet, RouteIdentity, nil, &id)
}

// Rotate asks the daemon to rotate its node key and re-key its host.
func (c *Client) Rotate(ctx context.Context, passphrase string) (Identity, error) {
	var id Identity
	return id, c.do(ctx, http.MethodPost, RouteRotate, RotateRequest{Passphrase: passphrase}, &id)
}

// Peers lists connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, http.MethodGet, RoutePeers, nil, &ps)
}

// Dial connects to a peer.
func (c *Client) Dial(ctx context.Context, req DialRequest) (Peer, error) {
	var p Peer
	return p, c.do(ctx, http.MethodPost, RouteDial, req, &p)
}

// Disconnect closes every connection to a peer ID or to the peers bound to a DID.
func (c *Client) Disconnect(ctx context.Context, peer string) (DisconnectResponse, error) {
	var r DisconnectResponse
	return r, c.do(ctx, http.MethodPost, RouteDisconnect, DisconnectRequest{Peer: peer}, &r)
}

// Bootstrap re-dials known and bootstrap peers and refreshes the DHT.
func (c *Client) Bootstrap(ctx context.Context) (BootstrapResult, error) {
	var r BootstrapResult
	return r, c.do(ctx, http.MethodPost, RouteBootstrap, struct{}{}, &r)
}

// Resolve looks a DID up: cache, DHT, derived peer ID, and addresses.
func (c *Client) Resolve(ctx context.Context, did string) (Resolution, error) {
	var r Resolution
	return r, c.do(ctx, http.MethodPost, RouteResolve, ResolveRequest{DID: did}, &r)
}

func (c *Client) do(ctx context.Context, method, route string, body, out any) error {
	resp, err := c.send(ctx, method, route, body)
	if err != nil {
		return err
	}
	return c.decodeAnswer(resp, route, out)
}

// decodeAnswer reads a 2xx answer as JSON into out (if not nil) and closes
// it.
func (c *Client) decodeAnswer(resp *http.Response, route string, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: reading answer: %w", c.socket, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer for %s: %w", c.socket, route, err)
	}
	return nil
}

// send makes one request with body (if not nil) as JSON and returns a 2xx
// answer for the caller to read and close; a non-2xx answer becomes an
// *Error, nobody answering a *NotRunningError.
func (c *Client) send(ctx context.Context, method, route string, body any) (*http.Response, error) {
	if body == nil {
		return c.sendBody(ctx, method, route, "", nil)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.sendBody(ctx, method, route, "application/json", bytes.NewReader(b))
}

// sendBody is send with a body of any content type.
func (c *Client) sendBody(ctx context.Context, method, route, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://icnd"+route, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	// Inside a trace (icnctl with tracing on), the request joins it.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		if isNotRunning(err) {
			return nil, &NotRunningError{Socket: c.socket, Err: err}
		}
		return nil, fmt.Errorf("control socket %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("icnd answered %s", resp.Status)
		}
		return nil, e
	}
	return resp, nil
}

func isNotRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// WriteJSON writes v with the status code; servers use it for every answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // an API, not a web page: <token> stays readable
	_ = enc.Encode(v)
}

// WriteError writes an Error as JSON.
func WriteError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	WriteJSON(w, status, e)
}

// DefaultTimeout bounds one control call that does no network work.
const DefaultTimeout = 10 * time.Second
