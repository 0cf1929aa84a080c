package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/stretchr/testify/require"
)

func TestDialFailureReason(t *testing.T) {
	cases := map[string]error{
		"timeout":          fmt.Errorf("dial: %w", context.DeadlineExceeded),
		"refused":          errors.New("CRYPTO_ERROR (remote): CONNECTION_REFUSED (remote)"),
		"resource_limit":   errors.New("resource limit exceeded"),
		"gated":            errors.New("gater disallows connection to peer"),
		"unreachable":      errors.New("no good addresses"),
		"peer_id_mismatch": errors.New("peer id mismatch: expected X, but remote key matches Y"),
		"other":            errors.New("something else"),
	}
	for want, err := range cases {
		require.Equal(t, want, dialFailureReason(err), err.Error())
	}
}

func TestMismatchedPeer(t *testing.T) {
	actual, err := peer.Decode("12D3KooWJTNDcVL8XVyNB15PmWMcbyC8kC5zyChBGuxS2RRhce2C")
	require.NoError(t, err)
	typed := fmt.Errorf("dial: %w", sec.ErrPeerIDMismatch{Expected: "x", Actual: actual})
	got, ok := mismatchedPeer(typed)
	require.True(t, ok)
	require.Equal(t, actual, got)
	// QUIC carries it as text only.
	got, ok = mismatchedPeer(errors.New("CRYPTO_ERROR 0x12a (local): peer id mismatch: expected 12D3KooWA, but remote key matches " + actual.String()))
	require.True(t, ok)
	require.Equal(t, actual, got)
	_, ok = mismatchedPeer(errors.New("timeout"))
	require.False(t, ok)
}
