package node

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"errors"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	quicgo "github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

func TestDialFailureReason(t *testing.T) {
	cases := map[string][]error{
		"timeout":          {fmt.Errorf("dial: %w", context.DeadlineExceeded)},
		"refused":          {&quicgo.TransportError{ErrorCode: quicgo.ConnectionRefused, Remote: true}, fmt.Errorf("read: %w", syscall.ECONNREFUSED)},
		"resource_limit":   {fmt.Errorf("open: %w", network.ErrResourceLimitExceeded)},
		"gated":            {&swarm.DialError{Cause: swarm.ErrGaterDisallowedConnection}},
		"unreachable":      {swarm.ErrNoGoodAddresses, fmt.Errorf("dial: %w", syscall.ENETUNREACH), fmt.Errorf("dial: %w", syscall.EHOSTUNREACH)},
		"peer_id_mismatch": {fmt.Errorf("handshake: %w", sec.ErrPeerIDMismatch{Expected: "a", Actual: "b"})},
		"other":            {errors.New("something else"), errors.New("timeout in the text only")},
	}
	for want, errs := range cases {
		for _, err := range errs {
			require.Equal(t, want, dialFailureReason(err), err.Error())
		}
	}
}

// Real dials fail with errors the classifier knows.
func TestDialFailureReasonOfRealDials(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	other, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })

	dial := func(id peer.ID, addr ma.Multiaddr) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}})
	}
	_, pub, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	stranger, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	// The right address with the wrong key.
	err = dial(stranger, other.Addrs()[0])
	require.Error(t, err)
	require.Equal(t, "peer_id_mismatch", dialFailureReason(err), err.Error())
	// No address at all.
	h.Peerstore().ClearAddrs(stranger)
	err = h.Connect(context.Background(), peer.AddrInfo{ID: stranger})
	require.Error(t, err)
	require.Equal(t, "unreachable", dialFailureReason(err), err.Error())
}
