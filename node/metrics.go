package node

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
)

// netMetrics are the icn_network_* series. Names are part of the contract
// (docs/metrics.md); the values outlive a key rotation.
type netMetrics struct {
	connectionsTotal   prometheus.Counter
	messagesReceived   prometheus.Counter
	messagesRateLimits prometheus.Counter
}

func newNetMetrics(reg prometheus.Registerer, activeConns func() float64) (*netMetrics, error) {
	m := &netMetrics{
		connectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_network_connections_total",
			Help: "Connections opened, inbound and outbound, since start.",
		}),
		messagesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_network_messages_received_total",
			Help: "Protocol messages received from peers (identity records, gossip messages, sync requests).",
		}),
		messagesRateLimits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icn_network_messages_rate_limited_total",
			Help: "Messages from peers dropped by the per-peer rate limiter.",
		}),
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "icn_network_connections_active",
		Help: "Connections open now.",
	}, activeConns)
	for _, c := range []prometheus.Collector{m.connectionsTotal, m.messagesReceived, m.messagesRateLimits, active} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *netMetrics) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(network.Network, network.Conn) { m.connectionsTotal.Inc() },
	}
}
