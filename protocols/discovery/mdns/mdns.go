// Package mdns owns how ICN nodes find each other on one link by multicast
// DNS (RFC 6762/6763, over github.com/libp2p/zeroconf/v2). It answers for
// this node as a random instance of the service _icn._udp.local., with TXT
// entries for its DID, its version and each QUIC address as
// dnsaddr=<multiaddr>/p2p/<peer id>; it browses for the other instances on an
// interval and reports each new peer, or a peer whose addresses changed, to a
// callback. It does not connect: the caller decides what to do with a peer.
//
// Unlike go-libp2p's own mdns package it chooses its interfaces: by default
// every interface that is up, multicast-capable and not loopback, leaving out
// container and VM bridges and veth pairs by name (docker*, br-*, veth*,
// cni*, flannel*, podman*, virbr*), and it advertises only addresses on the
// interfaces it uses, so a Docker bridge address never reaches the LAN
// (go-libp2p#1025). Config.Interfaces names the interfaces instead.
package mdns

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/zeroconf/v2"
	ma "github.com/multiformats/go-multiaddr"
)

// ServiceName is the DNS-SD service type ICN nodes register and browse.
const ServiceName = "_icn._udp"

// Domain is the mDNS domain.
const Domain = "local."

// DefaultBrowseInterval is how often a fresh browse starts when
// Config.BrowseInterval is zero.
const DefaultBrowseInterval = 10 * time.Second

const (
	// rereportRounds: a peer seen again unchanged is reported again after
	// this many browse intervals, so that one the caller could not reach
	// is retried.
	rereportRounds = 6
	// maxTracked bounds the peers remembered for de-duplication.
	maxTracked = 1024
)

// Config configures the service.
type Config struct {
	// Interfaces names the interfaces to use. Empty means every interface
	// that is up, multicast-capable and not loopback, except container
	// bridges and veth pairs.
	Interfaces []string
	// DID and Version go into the TXT record (did=, version=).
	DID     string
	Version string
	// BrowseInterval is how often a new browse starts; zero means
	// DefaultBrowseInterval.
	BrowseInterval time.Duration
}

// Service advertises this node and browses for others. New prepares it,
// Run advertises and browses until its context ends, Close stops it.
type Service struct {
	h        host.Host
	cfg      Config
	found    func(peer.AddrInfo)
	log      *slog.Logger
	instance string
	// startProblem is the interface problem New logged, so Run does not
	// log it again.
	startProblem string

	started   atomic.Bool
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when Run has returned
	rounds    atomic.Uint64 // browse rounds completed
}

// New checks the interfaces and prepares the service. A name in
// cfg.Interfaces that the host does not have is an *UnknownInterfaceError.
// When no interface can carry mDNS yet (none is up and multicast-capable, or
// the host has only loopback), New logs a warning and succeeds: Run then
// waits for one to come up. found is called from Run's goroutine, one peer
// at a time, for each new peer and each peer whose addresses changed; it must
// not block for long and must not call Close.
func New(h host.Host, cfg Config, found func(peer.AddrInfo), log *slog.Logger) (*Service, error) {
	if h == nil {
		return nil, errors.New("mdns: no host")
	}
	if found == nil {
		return nil, errors.New("mdns: no found callback")
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.BrowseInterval <= 0 {
		cfg.BrowseInterval = DefaultBrowseInterval
	}
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	all, err := systemInterfaces()
	if err != nil {
		return nil, err
	}
	s := &Service{
		h:        h,
		cfg:      cfg,
		found:    found,
		log:      log,
		instance: strings.ToLower(rand.Text()),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	selected, skipped, err := selectInterfaces(all, cfg.Interfaces)
	var none *noInterfaceError
	switch {
	case errors.As(err, &none):
		log.Warn("mDNS: no network interface can carry multicast; LAN peers will not be found until one comes up",
			"reason", err.Error(), "recheck_every", cfg.BrowseInterval)
		s.startProblem = err.Error()
	case err != nil:
		return nil, err
	default:
		if len(cfg.Interfaces) > 0 && len(skipped) > 0 {
			log.Warn("mDNS: some configured interfaces cannot be used now", "skipped", skipped)
		}
		log.Debug("mDNS interfaces", "use", interfaceNames(selected), "skipped", skipped)
	}
	return s, nil
}

// Run advertises this node and browses for others until ctx ends or Close
// is called, then withdraws the advertisement and returns once everything
// it started has stopped. Interfaces and addresses are re-read on every
// browse round, so an interface that comes up later is used. Failures to
// open multicast sockets are logged and retried; Run returns an error only
// when called twice.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("mdns: Run called more than once")
	}
	select {
	case <-s.closing:
		close(s.done)
		return nil
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		close(s.done)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	r := &runState{seen: map[peer.ID]seenPeer{}, ifaceError: s.startProblem}
	defer r.withdraw()
	for ctx.Err() == nil {
		ifaces, ok := s.interfaces(r)
		if ok {
			s.advertise(r, ifaces)
			err := s.browse(ctx, r, ifaces)
			if err == nil || ctx.Err() != nil {
				s.rounds.Add(1)
				r.browseFailing = false
				continue
			}
			// zeroconf's browser fails unless it can join on every IP family
			// it is asked for: fall back to IPv4 only, then IPv6 only.
			if r.traffic+1 < numTrafficModes {
				s.log.Debug("mDNS: cannot browse; trying another IP family", "err", err)
				r.traffic++
				continue
			}
			r.traffic = 1
			if !r.browseFailing {
				s.log.Warn("mDNS: cannot browse; retrying", "interfaces", interfaceNames(ifaces), "err", err, "every", s.cfg.BrowseInterval)
				r.browseFailing = true
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.cfg.BrowseInterval):
		}
	}
	return nil
}

// Close stops Run if it is running and waits for it to return. It is
// idempotent, and safe to call whether or not Run was ever called.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	if s.started.Load() {
		<-s.done
	}
	return nil
}

// runState is what one Run owns; only Run's goroutine touches it.
type runState struct {
	server        *zeroconf.Server
	txt           string // the interfaces and TXT record server was registered with
	seen          map[peer.ID]seenPeer
	traffic       int    // see trafficMode
	ifaceKey      string // the interfaces in use, to log changes
	ifaceError    string // the last interface problem logged
	nothingLogged bool   // "nothing to advertise" was logged
	browseFailing bool
}

// trafficMode gives the IP families browsing tries, in order. A failure with
// both may leak one socket inside zeroconf (its client does not close the
// IPv4 socket when the IPv6 join fails), so after the first full cycle only
// the single-family modes are retried.
func trafficMode(i int) zeroconf.IPType {
	switch i {
	case 1:
		return zeroconf.IPv4
	case 2:
		return zeroconf.IPv6
	}
	return zeroconf.IPv4AndIPv6
}

const numTrafficModes = 3

type seenPeer struct {
	addrs    string    // the sorted addresses last reported
	reported time.Time // when found was last called for it
	lastSeen time.Time
}

func (r *runState) withdraw() {
	if r.server != nil {
		// Shutdown sends a goodbye (TTL 0) so peers drop us at once.
		r.server.Shutdown()
		r.server = nil
		r.txt = ""
	}
}

// interfaces re-reads the interfaces to use this round. Problems are logged
// once each, not every round.
func (s *Service) interfaces(r *runState) ([]iface, bool) {
	all, err := systemInterfaces()
	var selected []iface
	if err == nil {
		selected, _, err = selectInterfaces(all, s.cfg.Interfaces)
	}
	if err != nil {
		if msg := err.Error(); msg != r.ifaceError {
			s.log.Warn("mDNS paused: no usable network interface", "reason", err.Error())
			r.ifaceError = msg
			r.ifaceKey = ""
		}
		r.withdraw()
		return nil, false
	}
	r.ifaceError = ""
	if key := strings.Join(interfaceNames(selected), ","); key != r.ifaceKey {
		if r.ifaceKey != "" {
			s.log.Info("mDNS interfaces changed", "interfaces", interfaceNames(selected))
		}
		r.ifaceKey = key
	}
	return selected, true
}

// advertise (re)registers our responder when the TXT record it should carry
// has changed: new interface addresses, or the first round.
func (s *Service) advertise(r *runState, ifaces []iface) {
	addrs := advertisedAddrs(s.h.Network().ListenAddresses(), ifaces, s.h.ID())
	txt := buildTXT(s.cfg.DID, s.cfg.Version, addrs)
	key := r.ifaceKey + "\n" + strings.Join(txt, "\n")
	if r.server != nil && key == r.txt {
		return
	}
	r.withdraw()
	if len(addrs) == 0 {
		if !r.nothingLogged {
			s.log.Info("mDNS: no listen address on the mDNS interfaces to advertise; browsing only",
				"listen", multiaddrStrings(s.h.Network().ListenAddresses()), "interfaces", interfaceNames(ifaces))
			r.nothingLogged = true
		}
		return
	}
	r.nothingLogged = false
	var ips []string
	port := 0
	for _, a := range addrs {
		ip, p, _ := quicAddr(a[:len(a)-1]) // drop /p2p/...
		if port == 0 {
			port = int(p)
		}
		if !slices.Contains(ips, ip.String()) {
			ips = append(ips, ip.String())
		}
	}
	// The host name is the instance name, as go-libp2p does; peers use
	// only the TXT record.
	srv, err := zeroconf.RegisterProxy(s.instance, ServiceName, Domain, port, s.instance, ips, txt, netInterfaces(ifaces))
	if err != nil {
		s.log.Warn("mDNS: cannot advertise this node; retrying", "interfaces", interfaceNames(ifaces), "err", err)
		return
	}
	r.server, r.txt = srv, key
	s.log.Info("mDNS: advertising this node", "service", ServiceName, "instance", s.instance,
		"interfaces", interfaceNames(ifaces), "addrs", multiaddrStrings(addrs))
}

// browse runs one browse round of BrowseInterval and reports what it finds.
func (s *Service) browse(ctx context.Context, r *runState, ifaces []iface) error {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.BrowseInterval)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- zeroconf.Browse(bctx, ServiceName, Domain, entries,
			zeroconf.SelectIfaces(netInterfaces(ifaces)), zeroconf.SelectIPTraffic(trafficMode(r.traffic)))
	}()
	for {
		select {
		case e, ok := <-entries:
			if !ok {
				entries = nil // closed: wait for Browse to return
				continue
			}
			s.handle(r, e)
		case err := <-errc:
			// Browse has returned, so nothing sends on entries any more.
			for {
				select {
				case e, ok := <-entries:
					if !ok {
						s.prune(r)
						return err
					}
					s.handle(r, e)
				default:
					s.prune(r)
					return err
				}
			}
		}
	}
}

// handle reports the peer behind one browse result if it is new, its
// addresses changed, or it was last reported rereportRounds intervals ago.
func (s *Service) handle(r *runState, e *zeroconf.ServiceEntry) {
	rec, err := parseTXT(e.Text)
	if err != nil {
		s.log.Debug("mDNS: ignoring an entry", "instance", e.Instance, "err", err)
		return
	}
	if rec.Peer.ID == s.h.ID() {
		return
	}
	now := time.Now()
	key := strings.Join(multiaddrStrings(sortedAddrs(rec.Peer.Addrs)), " ")
	prev, known := r.seen[rec.Peer.ID]
	if known && prev.addrs == key && now.Sub(prev.reported) < rereportRounds*s.cfg.BrowseInterval {
		prev.lastSeen = now
		r.seen[rec.Peer.ID] = prev
		return
	}
	if !known && len(r.seen) >= maxTracked {
		s.prune(r)
		if len(r.seen) >= maxTracked {
			s.log.Debug("mDNS: too many peers to track; ignoring one", "peer", rec.Peer.ID)
			return
		}
	}
	r.seen[rec.Peer.ID] = seenPeer{addrs: key, reported: now, lastSeen: now}
	s.log.Debug("mDNS: peer", "peer", rec.Peer.ID, "did", rec.DID, "version", rec.Version, "addrs", multiaddrStrings(rec.Peer.Addrs))
	s.found(rec.Peer)
}

// prune forgets peers not seen for rereportRounds intervals.
func (s *Service) prune(r *runState) {
	cutoff := time.Now().Add(-rereportRounds * s.cfg.BrowseInterval)
	for id, p := range r.seen {
		if p.lastSeen.Before(cutoff) {
			delete(r.seen, id)
		}
	}
}

func sortedAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, func(a, b ma.Multiaddr) int { return a.Compare(b) })
	return out
}

func multiaddrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
