// Package gateway serves the Gateway API: the /v1 routes of node/gatewayapi
// on icnd's health listener, for cooperative apps and members' own
// wallets. It authenticates requests with the HS256 tokens of
// node/gateway/auth (a DID challenge, or a token minted over the control
// socket), checks each route's scope, bounds what any one client can cost
// (per-IP token buckets on /v1/auth/*, request body limits, SSE streams per
// token, bounded per-client buffers), counts every request, and maps the
// node's typed errors to statuses with controlserver.Describe, the same
// table the control socket uses. Members keep their keys: the gateway
// checks and relays entries and envelopes they signed themselves.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Node is the domain API the gateway serves; *node.Node implements it.
type Node interface {
	DID() did.DID
	Status() controlapi.Status
	Peers() []controlapi.Peer

	Currencies() []controlapi.CurrencyInfo
	Balances(did, currency string) ([]controlapi.Balance, error)
	History(ctx context.Context, did string) ([]controlapi.Entry, error)
	LedgerHead() controlapi.Head
	NextEntry(author did.DID) (seq uint64, prev cid.Cid, parents []cid.Cid)
	PrepareTransfer(author did.DID, req controlapi.PayRequest, ts int64) (*ledger.Entry, error)
	SubmitEntry(ctx context.Context, block []byte) (controlapi.Entry, bool, error)
	Pay(ctx context.Context, req controlapi.PayRequest) (controlapi.Entry, error)

	TrustShow(did string) (controlapi.TrustView, error)

	GossipWireTopic(topic string) string
	GossipMaxMessageSize() int
	GossipPublish(ctx context.Context, req controlapi.GossipPublishRequest) (controlapi.GossipPublished, error)
	GossipPublishEnvelope(ctx context.Context, topic string, raw []byte) (controlapi.GossipPublished, error)
	GossipSubscribe(topic string) (*gossip.Subscription, error)
}

// Config is what the gateway's behaviour depends on ([gateway] in the
// node's config). Zero fields take the defaults below.
type Config struct {
	TokenTTL     time.Duration
	ChallengeTTL time.Duration
	// CORSOrigins are the browser origins allowed to call the API ("*" is
	// any); empty allows none (non-browser clients need no CORS).
	CORSOrigins  []string
	MaxBodyBytes int64
	// MaxStreamsPerToken bounds the concurrent SSE streams of one token.
	MaxStreamsPerToken int
	// AuthRate and AuthBurst are the per-IP token bucket on /v1/auth/*.
	AuthRate  float64
	AuthBurst int
}

// Defaults.
const (
	DefaultTokenTTL           = time.Hour
	DefaultChallengeTTL       = 5 * time.Minute
	DefaultMaxBodyBytes       = 256 << 10
	DefaultMaxStreamsPerToken = 4
	DefaultAuthRate           = 1.0
	DefaultAuthBurst          = 20
	// maxChallenges bounds the outstanding challenge nonces.
	maxChallenges = 10000
)

func (c *Config) defaults() {
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.ChallengeTTL == 0 {
		c.ChallengeTTL = DefaultChallengeTTL
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxStreamsPerToken == 0 {
		c.MaxStreamsPerToken = DefaultMaxStreamsPerToken
	}
	if c.AuthRate == 0 {
		c.AuthRate = DefaultAuthRate
	}
	if c.AuthBurst == 0 {
		c.AuthBurst = DefaultAuthBurst
	}
}

// Options are what New needs.
type Options struct {
	Node   Node
	Issuer *auth.Issuer
	Config Config
	// Registry receives the gateway's metrics; nil registers nothing.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Mint issues the token of a member who passed the challenge; the
	// node's MintGatewayToken records it so it can be revoked by jti. Nil
	// means Issuer.Mint (such tokens are revocable only by revoking all).
	Mint func(ctx context.Context, sub did.DID, scopes []string, ttl time.Duration) (gatewayapi.Token, error)
}

// Server is the gateway's http.Handler. Close ends its SSE subscriptions.
type Server struct {
	n          Node
	issuer     *auth.Issuer
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	challenges *auth.Challenges
	mint       func(ctx context.Context, sub did.DID, scopes []string, ttl time.Duration) (gatewayapi.Token, error)
	limiter    *ipLimiter
	m          *metrics
	sec        *securityLog
	mux        *http.ServeMux
	routes     []Route
	hubs       *hubs
	// keys caches the members' keys already checked, for decoding the
	// entries they submit (bounded by ledger.KeyCache).
	keys ledger.KeyCache

	streamsMu sync.Mutex
	streams   map[string]int // open SSE streams per jti
}

// Route is one served route: its method and net/http path pattern, and
// the scope it needs ("" is none: public or the auth routes).
type Route struct {
	Method, Path string
	// Scope is the scope a token must grant; anyRead means any read scope.
	Scope string
	h     handler
}

// anyRead is the scope requirement "any read scope".
const anyRead = "read"

// handler serves one route; c is nil on routes without a scope. It
// returns the value to answer with and its status, or an error.
type handler func(w http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error)

// New builds the gateway.
func New(opts Options) (*Server, error) {
	if opts.Node == nil || opts.Issuer == nil {
		return nil, errors.New("gateway: Node and Issuer are required")
	}
	cfg := opts.Config
	cfg.defaults()
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ch, err := auth.NewChallenges(cfg.ChallengeTTL, maxChallenges)
	if err != nil {
		return nil, err
	}
	s := &Server{n: opts.Node, issuer: opts.Issuer, cfg: cfg, log: log.With("component", "gateway"), now: now,
		challenges: ch, limiter: newIPLimiter(cfg.AuthRate, cfg.AuthBurst), streams: map[string]int{}}
	s.sec = newSecurityLog(s.log)
	if s.mint = opts.Mint; s.mint == nil {
		s.mint = func(_ context.Context, sub did.DID, scopes []string, ttl time.Duration) (gatewayapi.Token, error) {
			tok, c, err := s.issuer.Mint(sub, scopes, ttl, s.now())
			if err != nil {
				return gatewayapi.Token{}, err
			}
			return tokenOf(tok, c), nil
		}
	}
	s.routes = s.table()
	if s.m, err = newMetrics(opts.Registry, s.routes); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	s.hubs = newHubs(s.n, s.m, s.log)
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.Handle("/v1/", s.wrap(Route{Path: "unmatched", h: func(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
		return nil, 0, &controlapi.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path),
			Hint: "GET " + gatewayapi.RouteOpenAPI + " describes every route"}
	}}))
	return s, nil
}

// Routes lists the served routes (for the OpenAPI check).
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Close ends every SSE subscription and waits for them.
func (s *Server) Close() error {
	s.hubs.close()
	return nil
}

func (s *Server) table() []Route {
	return []Route{
		{Method: http.MethodGet, Path: gatewayapi.RouteOpenAPI, h: s.openAPI},
		{Method: http.MethodPost, Path: gatewayapi.RouteAuthChallenge, h: s.challenge},
		{Method: http.MethodPost, Path: gatewayapi.RouteAuthVerify, h: s.verify},
		{Method: http.MethodGet, Path: gatewayapi.RouteStatus, Scope: anyRead, h: s.status},
		{Method: http.MethodGet, Path: gatewayapi.RoutePeers, Scope: anyRead, h: s.peers},
		{Method: http.MethodGet, Path: gatewayapi.RouteCurrencies, Scope: auth.ScopeLedgerRead, h: s.currencies},
		{Method: http.MethodGet, Path: gatewayapi.RouteBalances, Scope: auth.ScopeLedgerRead, h: s.balances},
		{Method: http.MethodGet, Path: gatewayapi.RouteHistory, Scope: auth.ScopeLedgerRead, h: s.history},
		{Method: http.MethodGet, Path: gatewayapi.RouteHead, Scope: auth.ScopeLedgerRead, h: s.head},
		{Method: http.MethodGet, Path: gatewayapi.RouteNext, Scope: auth.ScopeLedgerRead, h: s.next},
		{Method: http.MethodPost, Path: gatewayapi.RouteEntriesPrepare, Scope: auth.ScopeLedgerWrite, h: s.prepare},
		{Method: http.MethodPost, Path: gatewayapi.RouteEntries, Scope: auth.ScopeLedgerWrite, h: s.submit},
		{Method: http.MethodPost, Path: gatewayapi.RoutePay, Scope: auth.ScopeLedgerWrite, h: s.pay},
		{Method: http.MethodGet, Path: gatewayapi.RouteTrust, Scope: auth.ScopeTrustRead, h: s.trust},
		{Method: http.MethodGet, Path: gatewayapi.RouteGossipTopic, Scope: auth.ScopeGossipRead, h: s.topicInfo},
		{Method: http.MethodPost, Path: gatewayapi.RouteGossipTopic, Scope: auth.ScopeGossipWrite, h: s.publish},
		{Method: http.MethodGet, Path: gatewayapi.RouteGossipEvents, Scope: auth.ScopeGossipRead, h: s.events},
	}
}

// ServeHTTP answers CORS preflights and serves the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		if !s.corsAllowed(origin) {
			if r.Method == http.MethodOptions {
				writeError(w, &controlapi.Error{Status: http.StatusForbidden, Message: fmt.Sprintf("origin %s may not call this gateway", echo(origin)),
					Hint: "the node's operator lists allowed browser origins in [gateway] cors_origins"})
				return
			}
		} else {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Retry-After")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// statusWriter remembers the status written, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing for SSE).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap adds what every route shares: the body limit, authentication and
// the scope check, the error mapping and the metrics.
func (s *Server) wrap(rt Route) http.Handler {
	label := rt.Path
	if rt.Method != "" {
		label = rt.Method + " " + rt.Path
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		began := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		defer func() {
			code := w.code
			if code == 0 {
				code = http.StatusOK
			}
			s.m.observe(label, code, time.Since(began))
		}()
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		var claims *auth.Claims
		if rt.Scope != "" {
			c, err := s.issuer.Parse(r.Header.Get("Authorization"), s.now())
			if err != nil {
				var f *auth.Failure
				reason := auth.ReasonMalformed
				if errors.As(err, &f) {
					reason = f.Reason
				}
				s.m.authFailure(reason)
				s.sec.refused(r, label, reason, "")
				w.Header().Set("WWW-Authenticate", `Bearer realm="icn-gateway"`)
				writeError(w, &controlapi.Error{Status: http.StatusUnauthorized, Message: err.Error(),
					Hint: "get a token: POST " + gatewayapi.RouteAuthChallenge + " then " + gatewayapi.RouteAuthVerify + ", or `icnctl gateway token` on the node"})
				return
			}
			if !grants(c, rt.Scope) {
				s.m.authFailure(reasonScope)
				s.sec.refused(r, label, reasonScope, c.Subject.String())
				writeError(w, &controlapi.Error{Status: http.StatusForbidden,
					Message: fmt.Sprintf("this token (scopes %s) does not grant %s", strings.Join(c.Scopes, " "), scopeWords(rt.Scope)),
					Hint:    "ask for a token with that scope"})
				return
			}
			claims = c
		}
		v, code, err := rt.h(w, r, claims)
		switch {
		case err != nil:
			writeError(w, describe(err))
		case v != nil:
			if code == 0 {
				code = http.StatusOK
			}
			controlapi.WriteJSON(w, code, v)
		}
	})
}

// reasonScope is the auth failure reason of a valid token without the
// route's scope (403).
const reasonScope = "scope"

func grants(c *auth.Claims, scope string) bool {
	if scope == anyRead {
		return c.Has(auth.ScopeLedgerRead) || c.Has(auth.ScopeGossipRead) || c.Has(auth.ScopeTrustRead)
	}
	return c.Has(scope)
}

func scopeWords(scope string) string {
	if scope == anyRead {
		return "a read scope (ledger:read, gossip:read or trust:read)"
	}
	return scope
}

// describe maps an error to its answer: the gateway's own request errors,
// then the node's domain errors through controlserver.Describe.
func describe(err error) *controlapi.Error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &controlapi.Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the request body is larger than %d bytes", mb.Limit),
			Hint: "send less; the node's operator sets [gateway] max_body_bytes"}
	}
	var fe *gatewayapi.FieldError
	if errors.As(err, &fe) {
		return &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(), Hint: "see " + gatewayapi.RouteOpenAPI + " for the field's form"}
	}
	return controlserver.Describe(err)
}

func writeError(w http.ResponseWriter, e *controlapi.Error) { controlapi.WriteError(w, e) }

func badRequest(format string, args ...any) error {
	return &controlapi.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// decode reads a JSON body strictly: one object, known fields only.
func decode[T any](r *http.Request) (T, error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return v, &controlapi.Error{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("content type %s is not application/json", echo(ct)),
				Hint: "send the header Content-Type: application/json (curl: -H 'Content-Type: application/json')"}
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return v, err
		}
		if errors.Is(err, io.EOF) {
			return v, badRequest("the request body is empty; send a JSON object")
		}
		return v, badRequest("bad request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, badRequest("bad request body: data after the JSON object")
	}
	return v, nil
}

// pathDID parses the {did} path segment.
func pathDID(r *http.Request) (did.DID, error) {
	s := r.PathValue("did")
	d, err := did.Parse(s)
	if err != nil {
		return did.DID{}, badDID(s, err)
	}
	return d, nil
}

func badDID(s string, err error) error {
	return &controlapi.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%v", err),
		Hint: "a DID looks like did:icn:z…; " + strconv.Quote(echo(s)) + " is not one"}
}

// remoteIP is the client's address without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// echo bounds client-supplied text quoted back in errors and logs.
func echo(s string) string {
	const max = 80
	cut := ""
	if len(s) > max {
		s, cut = s[:max], "…"
	}
	q := strconv.Quote(s) // escapes control characters and broken UTF-8
	return q[1:len(q)-1] + cut
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) (any, int, error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(gatewayapi.OpenAPI())
	return nil, 0, nil
}
