package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercooperative/icn/node/gateway/auth"
)

// Reasons an SSE client is dropped (icn_gateway_sse_dropped_total).
const (
	dropSlow = "slow" // its buffer filled: it reads slower than the topic's messages arrive
)

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	authFails   *prometheus.CounterVec
	sseStreams  prometheus.Gauge
	sseDropped  *prometheus.CounterVec
	sseMessages prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, routes []Route) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_gateway_requests_total",
			Help: "Gateway API requests answered, by route pattern and HTTP status."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icn_gateway_request_duration_seconds",
			Help:    "Time to answer a Gateway API request (for SSE streams, how long the stream lasted), by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60}}, []string{"route"}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_gateway_auth_failures_total",
			Help: "Gateway requests refused for authentication: a bad token (401), a token without the route's scope (scope, 403), a failed challenge, or too many /v1/auth requests from one address (rate_limited, 429)."},
			[]string{"reason"}),
		sseStreams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "icn_gateway_sse_streams",
			Help: "Open Server-Sent Event streams of gossip topics."}),
		sseDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icn_gateway_sse_dropped_total",
			Help: "SSE clients the gateway disconnected, by reason (slow: its buffer filled)."}, []string{"reason"}),
		sseMessages: prometheus.NewCounter(prometheus.CounterOpts{Name: "icn_gateway_sse_messages_total",
			Help: "Gossip messages queued to SSE clients."}),
	}
	for _, r := range append(auth.Reasons(), challengeReasons()...) {
		m.authFails.WithLabelValues(r)
	}
	for _, rt := range routes {
		m.duration.WithLabelValues(rt.Method + " " + rt.Path)
	}
	m.sseDropped.WithLabelValues(dropSlow)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.authFails, m.sseStreams, m.sseDropped, m.sseMessages} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) authFailure(reason string) { m.authFails.WithLabelValues(reason).Inc() }
