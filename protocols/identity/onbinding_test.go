package identity

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// OnBinding sees each verified binding once it is in the book, with the
// peer still connected, so the hook can hang up on it; superseded and
// invalid bindings never reach it.
func TestOnBindingSeesVerifiedBindingsAndMayHangUp(t *testing.T) {
	ida, idb := newIdentity(t), newIdentity(t)
	ha := newHost(t, ida)
	book := NewBook()
	var mu sync.Mutex
	var seen []did.Binding
	connectedInHook := false
	svc := New(ha, func() did.Binding { return ida.Binding }, book, quiet, Options{
		OnBinding: func(_ context.Context, bd did.Binding) {
			_, inBook := book.ByPeer(bd.PeerID)
			mu.Lock()
			seen = append(seen, bd)
			connectedInHook = inBook && ha.Network().Connectedness(bd.PeerID) == network.Connected
			mu.Unlock()
			_ = ha.Network().ClosePeer(bd.PeerID)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		svc.Close()
	})

	b := startNode(t, idb, nil)
	connect(t, b, &tnode{h: ha})
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 1
	}, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Equal(t, idb.DID, seen[0].DID)
	require.Equal(t, b.h.ID(), seen[0].PeerID)
	require.True(t, connectedInHook, "the hook runs with the binding in the book and the peer connected")
	mu.Unlock()
	require.Eventually(t, func() bool {
		return ha.Network().Connectedness(b.h.ID()) != network.Connected
	}, 10*time.Second, 10*time.Millisecond, "the hook hung up")

	// A stale key of a DID whose newer binding is known never reaches the hook.
	current := newIdentity(t)
	stale := *current
	require.NoError(t, current.Rotate(time.Unix(1_700_000_200, 0)))
	book.Put(current.Binding)
	s := startNode(t, &stale, nil)
	connect(t, s, &tnode{h: ha})
	require.Eventually(t, func() bool {
		return ha.Network().Connectedness(s.h.ID()) != network.Connected
	}, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Len(t, seen, 1)
	mu.Unlock()
}
