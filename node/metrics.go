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
	// peersDiscovered counts peers found, by source: mdns, dht, manual, bootstrap.
	peersDiscovered *prometheus.CounterVec
	// dialFailures counts failed outgoing dials by reason (see dialFailureReason).
	dialFailures *prometheus.CounterVec
	// bootstraps counts DHT bootstrap rounds by trigger (start, isolated, manual).
	bootstraps *prometheus.CounterVec
	// resourceBlocked counts resource-manager refusals by scope and resource.
	resourceBlocked *prometheus.CounterVec
}

func newNetMetrics(reg prometheus.Registerer, activeConns, routingTableSize func() float64) (*netMetrics, error) {
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
		peersDiscovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_discovery_peers_discovered_total",
			Help: "Peers discovered, by source (mdns, dht, bootstrap, manual).",
		}, []string{"source"}),
		dialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_dial_failures_total",
			Help: "Outgoing dials that failed, by reason (timeout, refused, unreachable, peer_id_mismatch, resource_limit, gated, other).",
		}, []string{"reason"}),
		bootstraps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_dht_bootstraps_total",
			Help: "DHT bootstrap rounds, by trigger: start, isolated (connected to no routing-table peer), manual (icnctl network bootstrap).",
		}, []string{"trigger"}),
		resourceBlocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icn_network_resource_blocked_total",
			Help: "Connections, streams or memory refused by the resource manager, by scope kind and resource.",
		}, []string{"scope", "resource"}),
	}
	for _, src := range []string{"mdns", "dht", "bootstrap", "manual"} {
		m.peersDiscovered.WithLabelValues(src)
	}
	for _, r := range []string{"timeout", "refused", "unreachable", "peer_id_mismatch", "resource_limit", "gated", "other"} {
		m.dialFailures.WithLabelValues(r)
	}
	rt := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "icn_dht_routing_table_size",
		Help: "Peers in the Kademlia routing table.",
	}, routingTableSize)
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "icn_network_connections_active",
		Help: "Connections open now.",
	}, activeConns)
	for _, c := range []prometheus.Collector{m.connectionsTotal, m.messagesReceived, m.messagesRateLimits, active,
		m.peersDiscovered, m.dialFailures, m.bootstraps, m.resourceBlocked, rt} {
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
