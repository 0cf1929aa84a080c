package identity

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newIdentity(t *testing.T) *did.Identity {
	t.Helper()
	id, err := did.Generate(time.Unix(1_700_000_000, 0))
	require.NoError(t, err)
	return id
}

func newHost(t *testing.T, id *did.Identity) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(id.NodeKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.Transport(quic.NewTransport), libp2p.DisableMetrics())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// node is a host plus a running identity service.
type tnode struct {
	h    host.Host
	svc  *Service
	book *Book
}

func startNode(t *testing.T, id *did.Identity, serve func() did.Binding) *tnode {
	t.Helper()
	h := newHost(t, id)
	book := NewBook()
	if serve == nil {
		serve = func() did.Binding { return id.Binding }
	}
	svc := New(h, serve, book, quiet, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		svc.Close()
	})
	return &tnode{h: h, svc: svc, book: book}
}

func connect(t *testing.T, a, b *tnode) {
	t.Helper()
	require.NoError(t, a.h.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}))
}

func TestBookNewestBindingWins(t *testing.T) {
	id := newIdentity(t)
	first := id.Binding
	require.NoError(t, id.Rotate(time.Unix(1_700_000_100, 0)))
	second := id.Binding

	b := NewBook()
	require.True(t, b.Put(first))
	require.True(t, b.Put(second))
	require.False(t, b.Put(first), "a superseded binding must not be current")
	got, ok := b.ByDID(id.DID)
	require.True(t, ok)
	require.Equal(t, second.PeerID, got.PeerID)
	_, ok = b.ByPeer(first.PeerID)
	require.False(t, ok, "the rotated-away peer no longer speaks for the DID")
	require.Equal(t, []peer.ID{second.PeerID}, b.PeersOf(id.DID))
	require.True(t, b.Put(second), "the same binding again is still current")

	// Arrival order does not matter.
	b2 := NewBook()
	require.True(t, b2.Put(second))
	require.False(t, b2.Put(first))
}

func TestPeersLearnEachOthersBindingOnConnect(t *testing.T) {
	ida, idb := newIdentity(t), newIdentity(t)
	a, b := startNode(t, ida, nil), startNode(t, idb, nil)
	connect(t, a, b)
	require.Eventually(t, func() bool {
		bd, ok := a.book.ByPeer(b.h.ID())
		return ok && bd.DID == idb.DID
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		bd, ok := b.book.ByPeer(a.h.ID())
		return ok && bd.DID == ida.DID
	}, 10*time.Second, 10*time.Millisecond)
}

func TestBindingForAnotherPeerIsRejectedAndDisconnected(t *testing.T) {
	ida, idb, other := newIdentity(t), newIdentity(t), newIdentity(t)
	a := startNode(t, ida, nil)
	// b serves a valid binding, but for someone else's peer ID.
	b := startNode(t, idb, func() did.Binding { return other.Binding })
	connect(t, b, a)
	require.Eventually(t, func() bool {
		return a.h.Network().Connectedness(b.h.ID()) != network.Connected
	}, 10*time.Second, 10*time.Millisecond, "a must drop a peer whose binding names another peer")
	_, ok := a.book.ByPeer(b.h.ID())
	require.False(t, ok)

	// Fetch itself reports it as a VerifyError (c runs no connection watcher).
	cid := newIdentity(t)
	c := newHost(t, cid)
	csvc := New(c, func() did.Binding { return cid.Binding }, NewBook(), quiet, Options{})
	defer csvc.Close()
	require.NoError(t, c.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}))
	_, err := csvc.Fetch(context.Background(), b.h.ID())
	var verr *VerifyError
	require.True(t, errors.As(err, &verr), "got %v", err)
}

// A peer that answers with an oversize record (or garbage that reads as
// one) is not retried as after a network failure: it is refused and
// disconnected like one whose binding does not verify.
func TestOversizeRecordIsRejectedAndDisconnected(t *testing.T) {
	a := startNode(t, newIdentity(t), nil)
	b := startNode(t, newIdentity(t), nil)
	b.h.SetStreamHandler(ID, func(s network.Stream) {
		_, _ = s.Write(binary.AppendUvarint(nil, 1<<40))
		_ = s.Close()
	})
	connect(t, b, a)
	require.Eventually(t, func() bool {
		return a.h.Network().Connectedness(b.h.ID()) != network.Connected
	}, 10*time.Second, 10*time.Millisecond, "a must drop a peer that sends an oversize record")
	_, ok := a.book.ByPeer(b.h.ID())
	require.False(t, ok)
}

func TestSupersededBindingIsRejected(t *testing.T) {
	// stale runs an old copy of the identity; the DID has since rotated.
	current := newIdentity(t)
	stale := *current
	require.NoError(t, current.Rotate(time.Unix(1_700_000_200, 0)))

	a := startNode(t, newIdentity(t), nil)
	a.book.Put(current.Binding) // a knows the newest binding
	s := startNode(t, &stale, nil)
	connect(t, a, s)
	// a's connection watcher refuses the stale key and hangs up.
	require.Eventually(t, func() bool {
		return a.h.Network().Connectedness(s.h.ID()) != network.Connected
	}, 10*time.Second, 10*time.Millisecond)
	_, ok := a.book.ByPeer(s.h.ID())
	require.False(t, ok)

	// Fetch itself says why (c runs no watcher that could hang up first).
	cid := newIdentity(t)
	c := newHost(t, cid)
	book := NewBook()
	book.Put(current.Binding)
	csvc := New(c, func() did.Binding { return cid.Binding }, book, quiet, Options{})
	defer csvc.Close()
	require.NoError(t, c.Connect(context.Background(), peer.AddrInfo{ID: s.h.ID(), Addrs: s.h.Addrs()}))
	_, err := csvc.Fetch(context.Background(), s.h.ID())
	require.ErrorContains(t, err, "superseded")
}

func TestFrameLimit(t *testing.T) {
	r, w := io.Pipe()
	go func() {
		_ = writeFrame(w, make([]byte, MaxRecordSize+1))
		w.Close()
	}()
	_, err := readFrame(bufioReader(r), MaxRecordSize)
	require.ErrorContains(t, err, "exceeds")
	r.Close()
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// A connection made before Run subscribes to connection events (a node
// dialling its bootstrap peers as it starts) is identified too.
func TestPeerConnectedBeforeRunIsIdentified(t *testing.T) {
	ida, idb := newIdentity(t), newIdentity(t)
	b := startNode(t, idb, nil)
	ha := newHost(t, ida)
	book := NewBook()
	svc := New(ha, func() did.Binding { return ida.Binding }, book, quiet, Options{})
	defer svc.Close()
	require.NoError(t, ha.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}))
	require.Eventually(t, func() bool { _, ok := b.book.ByPeer(ha.ID()); return ok }, 10*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool {
		bd, ok := book.ByPeer(b.h.ID())
		return ok && bd.DID == idb.DID
	}, 10*time.Second, 10*time.Millisecond, "the peer connected before Run was never identified")
}
