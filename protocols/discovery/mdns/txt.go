package mdns

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TXT record keys. A node's TXT record holds one did= and one version=
// entry and a dnsaddr= entry per address, as go-libp2p's mDNS does:
//
//	did=did:icn:z6Mk…
//	version=0.1.0
//	dnsaddr=/ip4/192.168.1.20/udp/7777/quic-v1/p2p/12D3KooW…
const (
	keyDID     = "did"
	keyVersion = "version"
	keyDNSAddr = "dnsaddr"
)

const (
	// maxTXTString is the longest string a TXT record can hold.
	maxTXTString = 255
	// maxValue bounds the did= and version= values we send and accept.
	maxValue = 128
	// maxPeerAddrs bounds the addresses taken from one peer's record.
	maxPeerAddrs = 16
)

// record is what another node's TXT record says about it.
type record struct {
	Peer    peer.AddrInfo
	DID     string // as the peer claims it; only the binding exchange proves it
	Version string
}

// cleanValue reports whether v may go in a did= or version= entry: 1 to
// maxValue printable ASCII characters without spaces.
func cleanValue(v string) bool {
	if len(v) == 0 || len(v) > maxValue {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// buildTXT makes our TXT record. did and version are left out when they are
// not clean values; addresses must end in /p2p/<our peer id>.
func buildTXT(did, version string, addrs []ma.Multiaddr) []string {
	txt := make([]string, 0, 2+len(addrs))
	if cleanValue(did) {
		txt = append(txt, keyDID+"="+did)
	}
	if cleanValue(version) {
		txt = append(txt, keyVersion+"="+version)
	}
	for _, a := range addrs {
		if s := keyDNSAddr + "=" + a.String(); len(s) <= maxTXTString {
			txt = append(txt, s)
		}
	}
	return txt
}

// parseTXT reads another node's TXT record. Keys are case-insensitive and
// the first did= and version= win (RFC 6763 §6.4). Each dnsaddr= entry must
// be /ip4|ip6/A/udp/P/quic-v1/p2p/ID with a LAN-dialable IP (not loopback,
// unspecified, multicast or IPv6 link-local); other entries are ignored, and
// at most maxPeerAddrs addresses are kept, without duplicates. The record is
// an error when no dnsaddr entry is usable or when they name more than one
// peer.
func parseTXT(txt []string) (record, error) {
	var rec record
	seen := map[string]bool{}
	for _, s := range txt {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(key) {
		case keyDID:
			if rec.DID == "" && cleanValue(val) {
				rec.DID = val
			}
		case keyVersion:
			if rec.Version == "" && cleanValue(val) {
				rec.Version = val
			}
		case keyDNSAddr:
			if len(rec.Peer.Addrs) >= maxPeerAddrs {
				continue
			}
			m, err := ma.NewMultiaddr(val)
			if err != nil {
				continue
			}
			transport, id := peer.SplitAddr(m)
			if id == "" {
				continue
			}
			if _, err := peer.IDFromBytes([]byte(id)); err != nil {
				continue
			}
			ip, port, ok := quicAddr(transport)
			if !ok || !advertisable(ip) {
				continue
			}
			if rec.Peer.ID != "" && rec.Peer.ID != id {
				return record{}, fmt.Errorf("dnsaddr entries name two peers, %s and %s", rec.Peer.ID, id)
			}
			rec.Peer.ID = id
			a := quicMultiaddr(ip, port)
			if k := a.String(); !seen[k] {
				seen[k] = true
				rec.Peer.Addrs = append(rec.Peer.Addrs, a)
			}
		}
	}
	if rec.Peer.ID == "" {
		return record{}, errors.New("no usable dnsaddr entry")
	}
	return rec, nil
}
