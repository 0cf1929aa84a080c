package discovery

import (
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/stretchr/testify/require"
)

func TestMismatchedPeer(t *testing.T) {
	actual, err := peer.Decode("12D3KooWJTNDcVL8XVyNB15PmWMcbyC8kC5zyChBGuxS2RRhce2C")
	require.NoError(t, err)
	typed := fmt.Errorf("dial: %w", sec.ErrPeerIDMismatch{Expected: "x", Actual: actual})
	got, ok := MismatchedPeer(typed)
	require.True(t, ok)
	require.Equal(t, actual, got)
	// QUIC carries it as text only.
	got, ok = MismatchedPeer(errors.New("CRYPTO_ERROR 0x12a (local): peer id mismatch: expected 12D3KooWA, but remote key matches " + actual.String()))
	require.True(t, ok)
	require.Equal(t, actual, got)
	_, ok = MismatchedPeer(errors.New("timeout"))
	require.False(t, ok)
}
