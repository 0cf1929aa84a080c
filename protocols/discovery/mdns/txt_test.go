package mdns

import (
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
)

func TestBuildTXT(t *testing.T) {
	self := testPeer(t, 1)
	addrs := mas(t, "/ip4/192.168.1.20/udp/7777/quic-v1/p2p/"+self.String(), "/ip6/2001:db8::20/udp/7777/quic-v1/p2p/"+self.String())
	require.Equal(t, []string{
		"did=did:icn:z6MkTest",
		"version=0.1.0-dev",
		"dnsaddr=/ip4/192.168.1.20/udp/7777/quic-v1/p2p/" + self.String(),
		"dnsaddr=/ip6/2001:db8::20/udp/7777/quic-v1/p2p/" + self.String(),
	}, buildTXT("did:icn:z6MkTest", "0.1.0-dev", addrs))
	// Values that would not parse back are left out.
	require.Equal(t, []string{}, buildTXT("", "has space", nil))
	require.Equal(t, []string{}, buildTXT(strings.Repeat("x", maxValue+1), "", nil))
}

func TestParseTXT(t *testing.T) {
	a, b := testPeer(t, 1), testPeer(t, 2)
	pa, pb := "/p2p/"+a.String(), "/p2p/"+b.String()
	tests := []struct {
		name    string
		txt     []string
		want    record
		wantErr string
	}{
		{
			name: "full record",
			txt: []string{"did=did:icn:zA", "version=1.2.3",
				"dnsaddr=/ip4/192.168.1.20/udp/7777/quic-v1" + pa, "dnsaddr=/ip6/2001:db8::20/udp/7777/quic-v1" + pa},
			want: record{
				Peer:    peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/192.168.1.20/udp/7777/quic-v1", "/ip6/2001:db8::20/udp/7777/quic-v1")},
				DID:     "did:icn:zA",
				Version: "1.2.3",
			},
		},
		{
			name: "keys are case-insensitive; the first did and version win",
			txt:  []string{"DID=did:icn:zA", "did=did:icn:zB", "Version=1", "version=2", "DNSADDR=/ip4/10.0.0.1/udp/1/quic-v1" + pa},
			want: record{Peer: peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/10.0.0.1/udp/1/quic-v1")}, DID: "did:icn:zA", Version: "1"},
		},
		{
			name: "no did or version is fine",
			txt:  []string{"dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1" + pa},
			want: record{Peer: peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/10.0.0.1/udp/7777/quic-v1")}},
		},
		{
			name: "bad entries ignored",
			txt: []string{
				"dnsaddr=/ip4/127.0.0.1/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip4/0.0.0.0/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip4/224.0.0.251/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip6/fe80::1/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip6zone/eth0/ip6/fe80::1/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip4/10.0.0.1/tcp/7777" + pa,
				"dnsaddr=/ip4/10.0.0.1/udp/7777/quic" + pa,
				"dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1/webtransport" + pa,
				"dnsaddr=/dns4/example.local/udp/7777/quic-v1" + pa,
				"dnsaddr=/p2p/" + a.String(),
				"dnsaddr=/ip4/10.0.0.1/udp/0/quic-v1" + pa,
				"dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1",
				"dnsaddr=garbage",
				"dnsaddr=",
				"novalue",
				"=x",
				"other=thing",
				"dnsaddr=/ip4/10.0.0.9/udp/7777/quic-v1" + pa,
				"dnsaddr=/ip4/10.0.0.9/udp/7777/quic-v1" + pa, // duplicate
			},
			want: record{Peer: peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/10.0.0.9/udp/7777/quic-v1")}},
		},
		{
			name:    "two peers in one record",
			txt:     []string{"dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1" + pa, "dnsaddr=/ip4/10.0.0.2/udp/7777/quic-v1" + pb},
			wantErr: "name two peers",
		},
		{
			name:    "no dnsaddr",
			txt:     []string{"did=did:icn:zA", "version=1"},
			wantErr: "no usable dnsaddr",
		},
		{
			name:    "empty",
			wantErr: "no usable dnsaddr",
		},
		{
			name:    "only unusable addresses",
			txt:     []string{"dnsaddr=/ip4/127.0.0.1/udp/7777/quic-v1" + pa},
			wantErr: "no usable dnsaddr",
		},
		{
			name: "junk did and version ignored",
			txt:  []string{"did=has space", "version=" + strings.Repeat("9", maxValue+1), "dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1" + pa},
			want: record{Peer: peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/10.0.0.1/udp/7777/quic-v1")}},
		},
		{
			name: "ip4-in-ip6 is normalised to ip4",
			txt:  []string{"dnsaddr=/ip6/::ffff:10.0.0.1/udp/7777/quic-v1" + pa},
			want: record{Peer: peer.AddrInfo{ID: a, Addrs: mas(t, "/ip4/10.0.0.1/udp/7777/quic-v1")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTXT(tc.txt)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.DID, got.DID)
			require.Equal(t, tc.want.Version, got.Version)
			require.Equal(t, tc.want.Peer.ID, got.Peer.ID)
			require.Equal(t, multiaddrStrings(tc.want.Peer.Addrs), multiaddrStrings(got.Peer.Addrs))
		})
	}
}

func TestParseTXTBoundsAddresses(t *testing.T) {
	a := testPeer(t, 1)
	var txt []string
	for i := 0; i < 100; i++ {
		txt = append(txt, "dnsaddr=/ip4/10.0.1."+strconv.Itoa(i+1)+"/udp/7777/quic-v1/p2p/"+a.String())
	}
	rec, err := parseTXT(txt)
	require.NoError(t, err)
	require.Len(t, rec.Peer.Addrs, maxPeerAddrs)
}

// The TXT record we build parses back to ourselves.
func TestTXTRoundTrip(t *testing.T) {
	self := testPeer(t, 3)
	listen := mas(t, "/ip4/0.0.0.0/udp/7777/quic-v1", "/ip6/::/udp/7777/quic-v1")
	ifc := mkIface(2, "eth0", up, "192.168.1.20", "2001:db8::20", "fe80::1")
	txt := buildTXT("did:icn:zRoundTrip", "1.0.0", advertisedAddrs(listen, []iface{ifc}, self))
	rec, err := parseTXT(txt)
	require.NoError(t, err)
	require.Equal(t, self, rec.Peer.ID)
	require.Equal(t, "did:icn:zRoundTrip", rec.DID)
	require.Equal(t, "1.0.0", rec.Version)
	require.Equal(t, []string{"/ip4/192.168.1.20/udp/7777/quic-v1", "/ip6/2001:db8::20/udp/7777/quic-v1"}, multiaddrStrings(rec.Peer.Addrs))
}

// FuzzParseTXT feeds arbitrary TXT records (one entry per line) to parseTXT.
// It must not panic, and whatever it accepts must be a well-formed peer that
// survives a round trip through buildTXT.
func FuzzParseTXT(f *testing.F) {
	a := testPeer(f, 1).String()
	for _, seed := range []string{
		"did=did:icn:zA\nversion=1.0.0\ndnsaddr=/ip4/192.168.1.20/udp/7777/quic-v1/p2p/" + a,
		"dnsaddr=/ip6/2001:db8::1/udp/1/quic-v1/p2p/" + a + "\ndnsaddr=/ip4/10.0.0.1/udp/2/quic-v1/p2p/" + a,
		"dnsaddr=/ip4/127.0.0.1/udp/7777/quic-v1/p2p/" + a,
		"dnsaddr=/ip4/10.0.0.1/udp/7777/quic-v1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
		"dnsaddr=/ip6/::ffff:10.0.0.1/udp/7777/quic-v1/p2p/" + a,
		"dnsaddr=/dns4/x.local/udp/7777/quic-v1/p2p/" + a,
		"DNSADDR=/ip4/1.2.3.4/udp/65535/quic-v1/p2p/" + a,
		"dnsaddr=",
		"=\n==\nx",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rec, err := parseTXT(strings.Split(in, "\n"))
		if err != nil {
			return
		}
		if rec.Peer.ID == "" {
			t.Fatal("accepted a record without a peer")
		}
		if _, err := peer.IDFromBytes([]byte(rec.Peer.ID)); err != nil {
			t.Fatalf("accepted an invalid peer ID: %v", err)
		}
		if len(rec.Peer.Addrs) == 0 || len(rec.Peer.Addrs) > maxPeerAddrs {
			t.Fatalf("%d addresses", len(rec.Peer.Addrs))
		}
		seen := map[string]bool{}
		var full []ma.Multiaddr
		for _, addr := range rec.Peer.Addrs {
			ip, _, ok := quicAddr(addr)
			if !ok || !advertisable(ip) {
				t.Fatalf("accepted an unusable address %s", addr)
			}
			if seen[addr.String()] {
				t.Fatalf("duplicate address %s", addr)
			}
			seen[addr.String()] = true
			full = append(full, addr.Encapsulate(ma.StringCast("/p2p/"+rec.Peer.ID.String())))
		}
		if rec.DID != "" && !cleanValue(rec.DID) || rec.Version != "" && !cleanValue(rec.Version) {
			t.Fatalf("accepted unclean values %q %q", rec.DID, rec.Version)
		}
		again, err := parseTXT(buildTXT(rec.DID, rec.Version, full))
		if err != nil {
			t.Fatalf("our own record does not parse: %v", err)
		}
		if again.Peer.ID != rec.Peer.ID || again.DID != rec.DID || again.Version != rec.Version ||
			strings.Join(multiaddrStrings(again.Peer.Addrs), " ") != strings.Join(multiaddrStrings(rec.Peer.Addrs), " ") {
			t.Fatalf("round trip changed the record: %+v -> %+v", rec, again)
		}
	})
}
