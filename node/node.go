// Package node is icnd's composition root. It builds the libp2p host (QUIC,
// resource manager, connection manager) from the unlocked identity, wires
// every protocol service by hand, and serves the control socket, the health
// endpoints and the Prometheus metrics. New binds every listener, so a port in
// use or an unwritable data dir is an error before anything runs; Run serves
// until its context ends and then stops every part within ShutdownTimeout.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/trustgraph"
	"github.com/intercooperative/icn/protocols/identity"
	"github.com/intercooperative/icn/protocols/ledgersync"
)

// ShutdownTimeout bounds a graceful stop.
const ShutdownTimeout = 10 * time.Second

// Options are what New needs besides the config.
type Options struct {
	// Config must have DataDir resolved (config.ResolveDataDir).
	Config config.Config
	// Identity is the unlocked keystore.
	Identity *did.Identity
	// Keystore is where Identity came from; rotation rewrites it.
	Keystore did.Keystore
	// Logger receives every log line; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives every metric. Nil means a new registry with the Go
	// runtime and process collectors.
	Registry *prometheus.Registry
	// Control builds the control socket's handler over the node: cmd/icnd
	// and internal/harness pass controlserver.New. Nil answers every
	// request with 503 (a node embedded without a control API).
	Control func(*Node) http.Handler
	// Gateway builds the Gateway API's handler (/v1/ on the health
	// listener) over the node: cmd/icnd passes gateway.Handler. It is
	// called once New has built everything else; an error fails New. Nil
	// answers /v1/ with 404. A handler that is an io.Closer is closed
	// with the node.
	Gateway func(*Node) (http.Handler, error)
	// TracerProvider makes the node's spans (control and gateway
	// requests, dials, gossip, the ledger, sync): cmd/icnd passes
	// internal/tracing's. Nil means none are made.
	TracerProvider trace.TracerProvider
	// Embedded is for many nodes in one process (simulations): no control
	// socket, no health or metrics listener whatever the config says, and
	// the datastore in memory (everything is lost on Close). The node is
	// driven through its methods.
	Embedded bool
	// HostOptions are added, last, to the libp2p host's options: a
	// simulated transport (go-libp2p's x/simlibp2p) for an Embedded node.
	HostOptions []libp2p.Option
	// GatewaySecret is the Gateway API's token secret
	// (config.LoadGatewaySecret), at least auth.MinSecretBytes; nil means
	// none, and the gateway is off. With Config.Gateway.Enabled false, or
	// health_port 0, it is off even with a secret.
	GatewaySecret []byte
}

// Node is a running ICN node.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	ks       did.Keystore
	deps     stackDeps
	book     *identity.Book
	stack    atomic.Pointer[netStack]
	rotateCh chan rotateRequest
	started  time.Time
	ready    atomic.Bool
	// rekeyErr is set when a key rotation could not rebuild the host and
	// the node went back to its previous key: it runs, but is not ready
	// until restarted with the rotated keystore.
	rekeyErr atomic.Pointer[error]
	// buildStack is newStack; tests replace it to make a rebuild fail.
	buildStack func(stackDeps, *did.Identity) (*netStack, error)

	// tp is Options.TracerProvider (a no-op one when none was given);
	// tracer is the node's own. traced says whether tp is a real one.
	tp     trace.TracerProvider
	tracer trace.Tracer
	traced bool

	control    func(*Node) http.Handler
	gatewayAPI http.Handler
	controlLn  net.Listener
	healthLn   net.Listener
	metricsLn  net.Listener

	// ledger is the durable ledger; it outlives key rotations.
	ledger *store.Store
	// trust is the trust graph; it outlives key rotations too.
	trust *trustgraph.Graph
	// onPublish, when set, is told about every entry this node writes, and
	// the trace it was written in.
	onPublish func(cid.Cid, trace.SpanContext)

	// gw is the gateway's token issuer and records; nil when the gateway
	// is off, because of the setting gwOffKey, as gwOff says.
	gw       *gatewayTokens
	gwOffKey string
	gwOff    string

	closeOnce sync.Once
	closeErr  error
}

type rotateRequest struct {
	id   *did.Identity
	done chan error
}

// New binds every listener, opens the ledger and builds the libp2p host;
// ctx bounds the opening (replaying a large ledger). On error nothing is
// left open.
func New(ctx context.Context, opts Options) (_ *Node, err error) {
	cfg := opts.Config
	if cfg.DataDir == "" {
		return nil, errors.New("node: Config.DataDir is empty")
	}
	if opts.Identity == nil {
		return nil, errors.New("node: no identity")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	if err := config.EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if advice := udpBufferAdvice(os.ReadFile); advice != "" {
		log.Warn(advice)
	}
	n := &Node{
		cfg:      cfg,
		log:      log,
		reg:      reg,
		ks:       opts.Keystore,
		control:  opts.Control,
		book:     identity.NewBook(),
		rotateCh: make(chan rotateRequest),
		started:  time.Now(),
	}
	n.buildStack = newStack
	n.tp, n.traced = opts.TracerProvider, opts.TracerProvider != nil
	if n.tp == nil {
		n.tp = noop.NewTracerProvider()
	}
	n.tracer = n.tp.Tracer(tracerName)
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	metrics, err := newNetMetrics(reg, n.activeConnections, n.routingTableSize)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if opts.Embedded {
		cfg.Observability.HealthPort, cfg.Observability.MetricsPort = 0, 0
		n.cfg = cfg
	} else if n.controlLn, err = listenControlSocket(controlapi.SocketPath(cfg.DataDir)); err != nil {
		return nil, err
	}
	if n.ledger, err = openLedger(ctx, cfg.DataDir, opts.Embedded, log); err != nil {
		return nil, err
	}
	// Gossip validation refuses blocks that are not valid entries, so their
	// senders' scores drop; it checks them with the store's key cache.
	gs, err := newGossipShared(cfg, reg, metrics, n.ledger.Check)
	if err != nil {
		return nil, fmt.Errorf("gossip metrics: %w", err)
	}
	n.deps = stackDeps{cfg: cfg, reg: reg, log: log, book: n.book, metrics: metrics, gossip: gs, tp: n.tp, hostOpts: opts.HostOptions}
	if n.deps.penalty, err = newPenaltyGuard(penaltyConfig{}, n.book, reg, log.With("component", "penalty")); err != nil {
		return nil, fmt.Errorf("penalty metrics: %w", err)
	}
	if n.deps.blocks, err = n.openBlocks(ctx, opts.Identity.DID); err != nil {
		return nil, fmt.Errorf("blocklist: %w", err)
	}
	if err := n.openGateway(ctx, opts.GatewaySecret); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if n.trust, err = n.openTrust(ctx, opts.Identity.DID); err != nil {
		return nil, fmt.Errorf("trust graph: %w", err)
	}
	n.deps.trust, n.deps.trustPub = n.trust, make(chan []byte, 256)
	if n.deps.trustG, err = newTrustGuard(cfg, n.trust, n.book, reg, log.With("component", "trust")); err != nil {
		return nil, fmt.Errorf("trust metrics: %w", err)
	}
	if n.deps.trustG.trusted() {
		n.ledger.SetAdmit(n.deps.trustG.admitEntry(opts.Identity.DID))
	}
	if err := registerLedgerMetrics(reg, n.ledger); err != nil {
		return nil, fmt.Errorf("ledger metrics: %w", err)
	}
	n.deps.ledger = n.ledger
	n.deps.ledgerPub = make(chan pushEntry, 1024)
	n.onPublish = func(c cid.Cid, sc trace.SpanContext) {
		select {
		case n.deps.ledgerPub <- pushEntry{c, sc}:
		default: // the push queue is full: sync will carry it
		}
	}
	if n.deps.syncM, err = ledgersync.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("ledger sync metrics: %w", err)
	}
	obs := cfg.Observability
	if n.healthLn, err = listenTCP("observability.health_port", obs.HTTPBind, obs.HealthPort); err != nil {
		return nil, err
	}
	if n.metricsLn, err = listenTCP("observability.metrics_port", obs.HTTPBind, obs.MetricsPort); err != nil {
		return nil, err
	}
	st, err := n.buildStack(n.deps, opts.Identity)
	if err != nil {
		return nil, err
	}
	n.stack.Store(st)
	n.book.Put(opts.Identity.Binding)
	if opts.Gateway != nil {
		if n.gatewayAPI, err = opts.Gateway(n); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return n, nil
}

// NewRegistry is a metrics registry with the Go runtime and process
// collectors, what a node uses when Options.Registry is nil.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Registry is where the node's metrics are registered; front doors built
// over the node (the gateway) register theirs there too.
func (n *Node) Registry() prometheus.Registerer { return n.reg }

func listenTCP(key, bind string, port int) (net.Listener, error) {
	if port == 0 {
		return nil, nil
	}
	addr := net.JoinHostPort(bind, fmt.Sprint(port))
	ln, err := net.Listen(config.HTTPNetwork(bind), addr) // 0.0.0.0: IPv4 only
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", key, addr, err)
	}
	return ln, nil
}

// listenControlSocket binds the 0600 control socket, replacing a stale one
// left by a crash but refusing to steal one that a live daemon answers on.
func listenControlSocket(path string) (net.Listener, error) {
	if _, err := os.Lstat(path); err == nil {
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("another icnd is already running on this data dir (it answers on %s)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The data dir is 0700, so nobody else can reach the socket in the
	// instant before this chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

func (n *Node) current() *netStack { return n.stack.Load() }

func (n *Node) activeConnections() float64 {
	st := n.current()
	if st == nil {
		return 0
	}
	return float64(len(st.h.Network().Conns()))
}

func (n *Node) routingTableSize() float64 {
	st := n.current()
	if st == nil || st.dht == nil {
		return 0
	}
	return float64(st.dht.RoutingTableSize())
}

// Ready reports whether every part is up (and no failed key rotation left
// the node on its previous key).
func (n *Node) Ready() bool { return n.ready.Load() && n.rekeyErr.Load() == nil }

// Problem says why a running node is not ready, or "".
func (n *Node) Problem() string {
	if p := n.rekeyErr.Load(); p != nil {
		return fmt.Sprintf("key rotation failed (%v): the node runs on with its previous key; restart icnd to use the rotated key", *p)
	}
	return ""
}

// Run serves until ctx ends, then stops every part. A part still running
// ShutdownTimeout after ctx ended is named in the error.
func (n *Node) Run(ctx context.Context) error {
	parts := newPartTracker()
	g, gctx := errgroup.WithContext(ctx)
	servers := []*http.Server{}
	serve := func(name string, ln net.Listener, h http.Handler, tune func(*http.Server)) {
		if ln == nil {
			return
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
		if tune != nil {
			tune(srv)
		}
		servers = append(servers, srv)
		parts.add(name)
		g.Go(func() error {
			defer parts.done(name)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s server: %w", name, err)
			}
			return nil
		})
	}
	control := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "this node serves no control API", http.StatusServiceUnavailable)
	}))
	if n.control != nil {
		control = n.control(n)
	}
	control = n.traceHTTP("control", control)
	serve("control socket", n.controlLn, control, nil)
	serve("health", n.healthLn, n.healthHandler(), func(srv *http.Server) {
		// The health listener may face the network (it serves the
		// gateway): every phase of a request is bounded. Handlers that
		// stream (gateway events) extend the write deadline per write, and
		// end when the node stops.
		srv.ReadTimeout = 30 * time.Second
		srv.WriteTimeout = 30 * time.Second
		srv.IdleTimeout = 2 * time.Minute
		srv.MaxHeaderBytes = 64 << 10
		srv.BaseContext = func(net.Listener) context.Context { return gctx }
	})
	serve("metrics", n.metricsLn, n.metricsHandler(), nil)
	parts.add("network")
	g.Go(func() error {
		defer parts.done("network")
		return n.superviseNetwork(gctx)
	})
	g.Go(func() error {
		<-gctx.Done()
		n.ready.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(sctx)
		}
		return nil
	})
	n.ready.Store(true)
	st := n.current()
	n.log.Info("icnd ready", "did", st.id.DID, "peer_id", st.h.ID(), "listen", multiaddrStrings(st.listenAddrs()),
		"control", controlapi.SocketPath(n.cfg.DataDir), "health", addrOf(n.healthLn), "metrics", addrOf(n.metricsLn))

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done:
		case <-time.After(ShutdownTimeout):
			return fmt.Errorf("shutdown took longer than %s; still running: %s", ShutdownTimeout, strings.Join(parts.running(), ", "))
		}
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

// superviseNetwork runs the current network stack and swaps it for a new one
// when the node key rotates.
func (n *Node) superviseNetwork(ctx context.Context) error {
	for {
		st := n.current()
		sctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- st.run(sctx) }()
		select {
		case <-ctx.Done():
			cancel()
			<-errc
			return nil
		case err := <-errc:
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("network: %w", err)
		case req := <-n.rotateCh:
			cancel()
			<-errc
			rerr, fatal := n.rekey(ctx, st, req.id)
			req.done <- rerr
			if fatal != nil {
				return fmt.Errorf("network: %w", fatal)
			}
		}
	}
}

// rekey replaces the host with one keyed by id.NodeKey on the same listen
// address and reconnects to the peers the old host had. If the new host
// cannot be built, it rebuilds the old one (the node stays reachable, but
// reports unready until restarted) and says so in err; fatal is set only
// when neither can be built.
func (n *Node) rekey(ctx context.Context, old *netStack, id *did.Identity) (err, fatal error) {
	peers := old.connectedPeers()
	if err := old.close(); err != nil {
		n.log.Warn("closing the old host after key rotation", "err", err)
	}
	st, err := n.rebuild(ctx, id)
	if err != nil {
		err = fmt.Errorf("restart host with the rotated key: %w", err)
		prev, perr := n.rebuild(ctx, old.id)
		if perr != nil {
			return err, fmt.Errorf("%w; restoring the previous host failed too: %w", err, perr)
		}
		n.stack.Store(prev)
		n.rekeyErr.Store(&err)
		n.log.Error("SECURITY key rotation could not restart the host; running on with the previous key, not ready until icnd restarts",
			"err", err, "did", old.id.DID, "peer_id", prev.h.ID())
		prev.redial(ctx, peers, 10*time.Second, n.log)
		return err, nil
	}
	n.stack.Store(st)
	n.rekeyErr.Store(nil)
	n.book.Put(id.Binding)
	n.log.Info("node key rotated; host re-keyed", "did", id.DID, "peer_id", st.h.ID(), "seq", id.Binding.Seq, "reconnecting", len(peers))
	st.redial(ctx, peers, 10*time.Second, n.log)
	return nil, nil
}

// rebuild builds a stack for id, retrying while the old socket may still be
// held by the kernel.
func (n *Node) rebuild(ctx context.Context, id *did.Identity) (st *netStack, err error) {
	for attempt := 0; attempt < 20; attempt++ {
		if st, err = n.buildStack(n.deps, id); err == nil {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, err
}

// Close stops the host and every listener. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.ready.Store(false)
		var errs []error
		for _, ln := range []net.Listener{n.controlLn, n.healthLn, n.metricsLn} {
			if ln != nil {
				if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		if st := n.current(); st != nil {
			errs = append(errs, st.close())
		}
		// The gateway's streams end with the network's subscriptions;
		// closing it waits for them.
		if c, ok := n.gatewayAPI.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
		if n.ledger != nil {
			errs = append(errs, n.ledger.Close())
		}
		if n.controlLn != nil {
			_ = os.Remove(controlapi.SocketPath(n.cfg.DataDir))
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// partTracker names the parts still running during shutdown.
type partTracker struct {
	mu   sync.Mutex
	live map[string]bool
}

func newPartTracker() *partTracker { return &partTracker{live: map[string]bool{}} }

func (p *partTracker) add(name string)  { p.mu.Lock(); p.live[name] = true; p.mu.Unlock() }
func (p *partTracker) done(name string) { p.mu.Lock(); delete(p.live, name); p.mu.Unlock() }
func (p *partTracker) running() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.live))
	for k := range p.live {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Version is the running build's version.
func Version() string { return version.Version }
