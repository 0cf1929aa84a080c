package node

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/protocols/identity"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Every refusal is counted by direction; the SECURITY line is written at
// most once per peer per blockLogInterval.
func TestBlockRefusalsCountedAndLoggedOncePerPeerPerInterval(t *testing.T) {
	var logs lockedBuffer
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := newBlockGuard(nil, identity.NewBook(), prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	g.now = func() time.Time { return now }

	newPeer := func() peer.ID {
		id, err := did.Generate(now)
		require.NoError(t, err)
		return id.PeerID()
	}
	p, q := newPeer(), newPeer()
	e := blocklist.Entry{Target: p.String(), Kind: blocklist.KindPeer, Reason: "spam"}
	lines := func() int { return strings.Count(logs.String(), "SECURITY blocked peer refused") }

	for _, step := range []struct {
		advance time.Duration
		peer    peer.ID
		dir     network.Direction
		lines   int
	}{
		{0, p, network.DirInbound, 1},
		{time.Second, p, network.DirInbound, 1},
		{time.Second, p, network.DirOutbound, 1},
		{0, q, network.DirInbound, 2}, // another peer has its own window
		{8 * time.Second, p, network.DirInbound, 3},
		{time.Second, p, network.DirInbound, 3},
		{9 * time.Second, q, network.DirInbound, 4},
	} {
		now = now.Add(step.advance)
		g.refuse(step.peer, e, step.dir, "handshake")
		require.Equal(t, step.lines, lines(), "at %s", now)
	}
	require.Equal(t, 6.0, testutil.ToFloat64(g.refused.WithLabelValues("inbound")))
	require.Equal(t, 1.0, testutil.ToFloat64(g.refused.WithLabelValues("outbound")))
	require.Contains(t, logs.String(), `level=WARN msg="SECURITY blocked peer refused" peer=`+p.String()+` direction=inbound stage=handshake blocked=`+p.String()+` kind=peer reason=spam expires=never`)
}
