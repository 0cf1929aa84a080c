package controlserver_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/limits"
)

func TestLimitsControlRoute(t *testing.T) {
	c := harness.Start(t, 1)[0].Client
	ctx, cancel := context.WithTimeout(context.Background(), controlapi.DefaultTimeout)
	defer cancel()
	l, err := c.Limits(ctx)
	require.NoError(t, err)

	for name, u := range map[string]controlapi.Usage{
		"system connections": l.System.Connections.Total, "system inbound connections": l.System.Connections.Inbound,
		"system outbound connections": l.System.Connections.Outbound, "system streams": l.System.Streams.Total,
		"system inbound streams": l.System.Streams.Inbound, "system memory": l.System.MemoryBytes, "system fds": l.System.FDs,
		"transient connections": l.Transient.Connections.Total, "transient streams": l.Transient.Streams.Total,
		"transient memory": l.Transient.MemoryBytes,
	} {
		require.Positive(t, u.Limit, name)
		require.GreaterOrEqual(t, u.Used, int64(0), name)
		require.LessOrEqual(t, u.Used, u.Limit, name)
	}
	require.LessOrEqual(t, l.Transient.Connections.Inbound.Limit, l.System.Connections.Inbound.Limit)
	require.Equal(t, "limits.max_connections_inbound", l.System.Connections.Inbound.ConfigKey)
	require.Equal(t, "limits.max_memory_mb", l.System.MemoryBytes.ConfigKey)
	require.Positive(t, l.Peers.Limits.Connections)
	require.Positive(t, l.Peers.Limits.Streams)
	require.NotNil(t, l.Peers.Top)
	require.Equal(t, limits.DefaultConnsPerIP, l.PerIP.Connections)
	require.Equal(t, config.DefaultConnLowWater, l.ConnManager.LowWater)
	require.Equal(t, config.DefaultConnHighWater, l.ConnManager.HighWater)
	require.Equal(t, "1m0s", l.ConnManager.GracePeriod)
	require.Empty(t, l.NearlyFull)
	require.NotNil(t, l.Warnings)
	require.Less(t, l.System.MemoryBytes.Limit, int64(math.MaxInt64))
}

// Errors cross the socket with the status and hint Describe gives them.
func TestErrorsCrossTheSocket(t *testing.T) {
	c := harness.Start(t, 1)[0].Client
	ctx, cancel := context.WithTimeout(context.Background(), controlapi.DefaultTimeout)
	defer cancel()
	other := mustDID(t).String()
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		hint   string
	}{
		{"bad DID", func() error {
			_, err := c.Dial(ctx, controlapi.DialRequest{DID: "did:icn:nope", Addr: "127.0.0.1:1"})
			return err
		}, 400, "did:icn:z"},
		{"nothing to dial", func() error { _, err := c.Dial(ctx, controlapi.DialRequest{}); return err }, 400, "multiaddr"},
		{"not connected", func() error { _, err := c.Disconnect(ctx, other); return err }, 404, "network peers"},
		{"unknown currency", func() error {
			_, err := c.Pay(ctx, controlapi.PayRequest{To: other, Amount: "1", Currency: "HRS"})
			return err
		}, 404, "currency create HRS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ce *controlapi.Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.status, ce.Status, "%v", err)
			require.Contains(t, ce.Hint, tc.hint)
		})
	}
}
