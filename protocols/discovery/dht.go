// Package discovery owns how ICN nodes find each other beyond one link: a
// Kademlia DHT under the /icn protocol prefix (so it never mixes with the
// public IPFS DHT), kept populated by re-dialling known and bootstrap peers
// with backoff whenever its routing table runs empty, and DID binding records
// published in it under the "icn-did" namespace with their own validator.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"

	"github.com/intercooperative/icn/did"
)

// ProtocolPrefix is the DHT protocol prefix: the DHT speaks /icn/kad/1.0.0.
const ProtocolPrefix protocol.ID = "/icn"

// Defaults for Config.
const (
	DefaultCheckInterval     = 5 * time.Second
	DefaultRepublishInterval = 30 * time.Minute
	DefaultMinBackoff        = time.Second
	DefaultMaxBackoff        = 5 * time.Minute
	// maxKnown bounds the remembered routing-table peers.
	maxKnown = 64
	// dialTimeout bounds one bootstrap dial.
	dialTimeout = 15 * time.Second
)

// Config configures the DHT.
type Config struct {
	// Mode is "auto", "server" or "client".
	Mode string
	// Bootstrap are the configured bootstrap peers.
	Bootstrap []peer.AddrInfo
	// Self returns this node's current binding, published under its DID.
	Self func() did.Binding
	// CheckInterval is how often the routing table is checked.
	CheckInterval time.Duration
	// RepublishInterval is how often our binding is re-published.
	RepublishInterval time.Duration
	// MinBackoff and MaxBackoff bound the delay between re-bootstrap
	// attempts while the routing table stays empty, and between redials of
	// one remembered peer (see mend).
	MinBackoff, MaxBackoff time.Duration
	// MaxPeers stops the redials of remembered peers while this many
	// peers are connected (the connection manager's low water); 0 means
	// no limit.
	MaxPeers int
}

func (c *Config) defaults() {
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.RepublishInterval <= 0 {
		c.RepublishInterval = DefaultRepublishInterval
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = DefaultMaxBackoff
	}
}

// Hooks are optional callbacks (for metrics).
type Hooks struct {
	// Discovered is called once per peer newly found, with its source:
	// "dht" (entered the routing table) or "bootstrap" (dialled from the
	// bootstrap list or the remembered peers).
	Discovered func(source string)
	// Bootstrapped is called after each bootstrap round with its trigger:
	// "start", "isolated" (connected to no routing-table peer) or "manual".
	Bootstrapped func(trigger string)
}

// DHT is the node's Kademlia DHT plus its upkeep.
type DHT struct {
	h     host.Host
	kad   *kaddht.IpfsDHT
	cfg   Config
	log   *slog.Logger
	hooks Hooks

	mu        sync.Mutex
	known     map[peer.ID]time.Time // routing-table peers seen, newest last seen
	seen      map[peer.ID]bool      // every peer ever counted as discovered
	published uint64                // seq of the binding last published, 0 if none
	retry     map[peer.ID]*redial   // remembered peers not connected, and when to try them
	bootMu    sync.Mutex            // one bootstrap at a time
}

// redial is a remembered peer's backoff.
type redial struct {
	next  time.Time
	delay time.Duration
}

// mendPerCheck bounds the redials started per CheckInterval;
// remembered peers out of the routing table and unreachable for
// forgetAfter are not redialled any more.
const (
	mendPerCheck = 2
	forgetAfter  = time.Hour
)

// ParseMode maps a config mode to kad-dht's.
func ParseMode(s string) (kaddht.ModeOpt, error) {
	switch s {
	case "auto":
		return kaddht.ModeAuto, nil
	case "server":
		return kaddht.ModeServer, nil
	case "client":
		return kaddht.ModeClient, nil
	}
	return 0, fmt.Errorf("DHT mode %q is not one of auto, server, client", s)
}

// New creates the DHT on h. Nothing runs until Run.
func New(h host.Host, cfg Config, log *slog.Logger, hooks Hooks) (*DHT, error) {
	cfg.defaults()
	mode, err := ParseMode(cfg.Mode)
	if err != nil {
		return nil, err
	}
	if cfg.Self == nil {
		return nil, errors.New("discovery: Config.Self is nil")
	}
	d := &DHT{h: h, cfg: cfg, log: log, hooks: hooks, known: map[peer.ID]time.Time{}, seen: map[peer.ID]bool{}, retry: map[peer.ID]*redial{}}
	kad, err := kaddht.New(h,
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Mode(mode),
		kaddht.NamespacedValidator(DIDNamespace, DIDValidator{}),
		kaddht.BootstrapPeersFunc(d.reconnectCandidates),
		kaddht.DisableProviders(),
	)
	if err != nil {
		return nil, fmt.Errorf("kademlia: %w", err)
	}
	d.kad = kad
	return d, nil
}

// Close stops the DHT. It is idempotent.
func (d *DHT) Close() error {
	return d.kad.Close()
}

// Kademlia exposes the underlying DHT (for routing in tests and later
// subsystems).
func (d *DHT) Kademlia() *kaddht.IpfsDHT { return d.kad }

// RoutingTableSize is the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// reconnectCandidates are the peers to dial when the routing table is empty:
// first peers remembered from the routing table (most recently seen first),
// then the configured bootstrap peers. Remembering non-bootstrap peers means a
// network whose bootstrap node is gone still heals (kad-dht#387).
func (d *DHT) reconnectCandidates() []peer.AddrInfo {
	d.mu.Lock()
	type kp struct {
		id   peer.ID
		seen time.Time
	}
	known := make([]kp, 0, len(d.known))
	for id, t := range d.known {
		known = append(known, kp{id, t})
	}
	d.mu.Unlock()
	// newest first
	for i := 1; i < len(known); i++ {
		for j := i; j > 0 && known[j].seen.After(known[j-1].seen); j-- {
			known[j], known[j-1] = known[j-1], known[j]
		}
	}
	var out []peer.AddrInfo
	in := map[peer.ID]bool{}
	for _, k := range known {
		ai := d.h.Peerstore().PeerInfo(k.id)
		if len(ai.Addrs) > 0 {
			out = append(out, ai)
			in[k.id] = true
		}
	}
	for _, ai := range d.cfg.Bootstrap {
		if !in[ai.ID] && ai.ID != d.h.ID() {
			out = append(out, ai)
		}
	}
	return out
}

// BootstrapResult reports one bootstrap round.
type BootstrapResult struct {
	Attempted    int      `json:"attempted"`
	Connected    int      `json:"connected"`
	RoutingTable int      `json:"routing_table"`
	Errors       []string `json:"errors,omitempty"`
}

// Bootstrap dials the reconnect candidates (remembered peers, then the
// bootstrap list) that are not connected yet, then refreshes the routing
// table. It is what `icnctl network bootstrap` runs.
func (d *DHT) Bootstrap(ctx context.Context) BootstrapResult {
	return d.bootstrap(ctx, "manual")
}

func (d *DHT) bootstrap(ctx context.Context, trigger string) BootstrapResult {
	if d.hooks.Bootstrapped != nil {
		defer d.hooks.Bootstrapped(trigger)
	}
	d.bootMu.Lock()
	defer d.bootMu.Unlock()
	var res BootstrapResult
	cands := d.reconnectCandidates()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, ai := range cands {
		if d.h.Network().Connectedness(ai.ID) == network.Connected {
			// kad-dht may have dialled it first (BootstrapPeersFunc): it
			// still came from our list.
			mu.Lock()
			res.Connected++
			mu.Unlock()
			d.discovered(ai.ID, "bootstrap")
			continue
		}
		res.Attempted++
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			d.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			err := d.h.Connect(dctx, ai)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", ai.ID, err))
				d.logBootstrapFailure(ai, err)
				return
			}
			res.Connected++
			d.discovered(ai.ID, "bootstrap")
		}(ai)
	}
	wg.Wait()
	if res.Connected > 0 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		select {
		case <-d.kad.RefreshRoutingTable():
		case <-rctx.Done():
		}
		cancel()
	}
	res.RoutingTable = d.RoutingTableSize()
	return res
}

// logBootstrapFailure says why a configured bootstrap peer was not
// reached. A peer that answers with another key is a configuration problem
// (the node there rotated its key, or the address now belongs to another
// node) that the log must name; other failures are the network's.
func (d *DHT) logBootstrapFailure(ai peer.AddrInfo, err error) {
	configured := false
	for _, b := range d.cfg.Bootstrap {
		configured = configured || b.ID == ai.ID
	}
	if !configured {
		return
	}
	if actual, ok := MismatchedPeer(err); ok {
		d.log.Warn("bootstrap peer answered with another key; not connecting to it",
			"expected", ai.ID, "answered", actual, "addrs", ai.Addrs,
			"hint", "if that node rotated its key, put its new peer ID in network.bootstrap_peers (`icnctl status` on that host prints it)")
		return
	}
	d.log.Info("bootstrap peer not reached", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
}

// mismatchRE finds the peer that answered in a QUIC handshake error.
var mismatchRE = regexp.MustCompile(`remote key matches (12D3Koo[1-9A-HJ-NP-Za-km-z]+|Qm[1-9A-HJ-NP-Za-km-z]+)`)

// MismatchedPeer extracts the peer ID that actually answered when a dial
// expected another. QUIC carries the TLS error as text, so the typed
// sec.ErrPeerIDMismatch is tried first and the message second.
func MismatchedPeer(err error) (peer.ID, bool) {
	var m sec.ErrPeerIDMismatch
	if errors.As(err, &m) {
		return m.Actual, true
	}
	var mp *sec.ErrPeerIDMismatch
	if errors.As(err, &mp) {
		return mp.Actual, true
	}
	if sm := mismatchRE.FindStringSubmatch(err.Error()); sm != nil {
		if p, perr := peer.Decode(sm[1]); perr == nil {
			return p, true
		}
	}
	return "", false
}

func (d *DHT) discovered(p peer.ID, source string) {
	d.mu.Lock()
	first := !d.seen[p]
	d.seen[p] = true
	d.mu.Unlock()
	if first && d.hooks.Discovered != nil {
		d.hooks.Discovered(source)
	}
}

// Run keeps the node connected to the DHT and our binding published until
// ctx ends: it bootstraps at start; whenever it is connected to none of its
// routing-table peers (the table ran empty, or every peer in it went away) it
// re-dials remembered and bootstrap peers with exponential backoff and
// jitter; it remembers routing-table peers for that purpose; and it
// re-publishes our binding when it changes and every RepublishInterval.
func (d *DHT) Run(ctx context.Context) error {
	if len(d.reconnectCandidates()) > 0 {
		res := d.bootstrap(ctx, "start")
		d.log.Info("DHT bootstrap", "connected", res.Connected, "attempted", res.Attempted, "routing_table", res.RoutingTable)
	}
	tick := time.NewTicker(d.cfg.CheckInterval)
	defer tick.Stop()
	backoff := d.cfg.MinBackoff
	var nextAttempt, lastPublish time.Time
	var wg sync.WaitGroup
	defer wg.Wait()
	publishing := false
	publishDone := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-publishDone:
			publishing = false
			if err != nil {
				d.log.Debug("publishing our DID binding in the DHT failed; will retry", "err", err)
				lastPublish = time.Time{}
			}
		case now := <-tick.C:
			d.observeRoutingTable(now)
			if d.connectedRoutingPeers() == 0 {
				if cands := d.reconnectCandidates(); len(cands) > 0 && !now.Before(nextAttempt) {
					res := d.bootstrap(ctx, "isolated")
					if d.connectedRoutingPeers() > 0 {
						d.log.Info("DHT reconnected", "connected", res.Connected, "routing_table", res.RoutingTable)
						backoff = d.cfg.MinBackoff
					} else {
						d.log.Warn("not connected to any DHT peer and no known peer answered; retrying with backoff",
							"candidates", len(cands), "retry_in", backoff.String())
						nextAttempt = now.Add(jitter(backoff))
						backoff = min(backoff*2, d.cfg.MaxBackoff)
					}
				}
				continue
			}
			backoff, nextAttempt = d.cfg.MinBackoff, time.Time{}
			d.mend(ctx, now, &wg)
			self := d.cfg.Self()
			d.mu.Lock()
			stale := d.published != self.Seq
			d.mu.Unlock()
			if !publishing && (stale || now.Sub(lastPublish) >= d.cfg.RepublishInterval) {
				publishing, lastPublish = true, now
				wg.Add(1)
				go func() {
					defer wg.Done()
					publishDone <- d.Publish(ctx)
				}()
			}
		}
	}
}

// mend redials remembered routing-table peers that are no longer
// connected while others are (the network split and healed, a peer
// restarted): a few per check, each with its own backoff from MinBackoff
// up to MaxBackoff, reset once it is connected again. Without it the two
// halves of a healed partition find each other only at kad-dht's next
// refresh, up to 10 minutes later (docs/benchmarks.md). A peer the
// operator disconnected or blocked is forgotten (Forget) and not redialled.
func (d *DHT) mend(ctx context.Context, now time.Time, wg *sync.WaitGroup) {
	if d.cfg.MaxPeers > 0 && len(d.h.Network().Peers()) >= d.cfg.MaxPeers {
		return
	}
	d.mu.Lock()
	var due []peer.ID
	for p, seen := range d.known {
		if p == d.h.ID() {
			continue
		}
		if now.Sub(seen) > forgetAfter {
			continue
		}
		if d.h.Network().Connectedness(p) == network.Connected {
			delete(d.retry, p)
			continue
		}
		r := d.retry[p]
		if r == nil {
			r = &redial{delay: d.cfg.MinBackoff}
			d.retry[p] = r
		}
		if !now.Before(r.next) && len(due) < mendPerCheck {
			due = append(due, p)
			// Not again before this dial is over and the backoff passed.
			r.next = now.Add(dialTimeout + jitter(r.delay))
			r.delay = min(r.delay*2, d.cfg.MaxBackoff)
		}
	}
	for p := range d.retry {
		if _, ok := d.known[p]; !ok {
			delete(d.retry, p)
		}
	}
	d.mu.Unlock()
	for _, p := range due {
		ai := d.h.Peerstore().PeerInfo(p)
		if len(ai.Addrs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := d.h.Connect(dctx, ai); err == nil {
				d.log.Debug("DHT: reconnected a remembered peer", "peer", ai.ID)
			}
		}()
	}
}

// Forget drops p from the remembered peers: it is not redialled (the
// operator disconnected or blocked it). It leaves the routing table too,
// which lists it again only if it connects again.
func (d *DHT) Forget(p peer.ID) {
	d.kad.RoutingTable().RemovePeer(p)
	d.mu.Lock()
	delete(d.known, p)
	delete(d.retry, p)
	d.mu.Unlock()
}

// connectedRoutingPeers counts routing-table peers we are connected to. Zero
// means the node is cut off, whether the table is empty or only lists peers
// that went away (kad-dht evicts those only at its next refresh, minutes later).
func (d *DHT) connectedRoutingPeers() int {
	n := 0
	for _, p := range d.kad.RoutingTable().ListPeers() {
		if d.h.Network().Connectedness(p) == network.Connected {
			n++
		}
	}
	return n
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// observeRoutingTable remembers routing-table peers and counts new ones.
func (d *DHT) observeRoutingTable(now time.Time) {
	peers := d.kad.RoutingTable().ListPeers()
	d.mu.Lock()
	for _, p := range peers {
		d.known[p] = now
	}
	for len(d.known) > maxKnown {
		var oldest peer.ID
		var at time.Time
		for p, t := range d.known {
			if oldest == "" || t.Before(at) {
				oldest, at = p, t
			}
		}
		delete(d.known, oldest)
	}
	d.mu.Unlock()
	for _, p := range peers {
		d.discovered(p, "dht")
	}
}

// Publish puts our current binding into the DHT.
func (d *DHT) Publish(ctx context.Context) error {
	bd := d.cfg.Self()
	data, err := bd.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.kad.PutValue(ctx, DIDRecordKey(bd.DID), data); err != nil {
		return fmt.Errorf("publish binding for %s: %w", bd.DID, err)
	}
	d.mu.Lock()
	d.published = bd.Seq
	d.mu.Unlock()
	d.log.Debug("published DID binding", "did", bd.DID, "peer_id", bd.PeerID, "seq", bd.Seq)
	return nil
}

// LookupBinding finds the newest binding for d in the DHT.
func (d *DHT) LookupBinding(ctx context.Context, id did.DID) (did.Binding, error) {
	val, err := d.kad.GetValue(ctx, DIDRecordKey(id))
	if err != nil {
		return did.Binding{}, fmt.Errorf("DHT lookup of %s: %w", id, err)
	}
	bd, err := did.UnmarshalBinding(val)
	if err != nil {
		return did.Binding{}, fmt.Errorf("DHT record for %s: %w", id, err)
	}
	if bd.DID != id {
		return did.Binding{}, fmt.Errorf("DHT record for %s is signed for %s", id, bd.DID)
	}
	return bd, nil
}

// FindPeer finds a peer's addresses through the DHT.
func (d *DHT) FindPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error) {
	return d.kad.FindPeer(ctx, p)
}
