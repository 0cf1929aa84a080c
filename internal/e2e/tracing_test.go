package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gatewayapi"
)

// collector is the OpenTelemetry collector's own OTLP receiver, listening
// on loopback for gRPC and HTTP, with its in-memory sink: what the
// daemons export is what a real collector receives.
type collector struct {
	sink    *consumertest.TracesSink
	grpc    string // host:port
	httpURL string // http://host:port
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	c := &collector{sink: new(consumertest.TracesSink)}
	pp := freeTCPPorts(t, 2)
	c.grpc = fmt.Sprintf("127.0.0.1:%d", pp[0])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", pp[1])
	c.httpURL = "http://" + httpAddr
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = c.grpc
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = httpAddr
	r, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, c.sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return c
}

// span is one received span with its resource's attributes.
type span struct {
	name, traceID, spanID, parentID string
	service, instance               string
	attrs                           map[string]string
	links                           []string // trace IDs linked to
}

func (c *collector) spans() []span {
	var out []span
	for _, td := range c.sink.AllTraces() {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			res := rs.Resource().Attributes()
			svc, _ := res.Get("service.name")
			inst, _ := res.Get("service.instance.id")
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					out = append(out, toSpan(ss.At(k), svc.Str(), inst.Str()))
				}
			}
		}
	}
	return out
}

func toSpan(s ptrace.Span, svc, inst string) span {
	sp := span{name: s.Name(), traceID: s.TraceID().String(), spanID: s.SpanID().String(), service: svc, instance: inst,
		attrs: map[string]string{}}
	if !s.ParentSpanID().IsEmpty() {
		sp.parentID = s.ParentSpanID().String()
	}
	for k, v := range s.Attributes().All() {
		sp.attrs[k] = v.AsString()
	}
	for i := 0; i < s.Links().Len(); i++ {
		sp.links = append(sp.links, s.Links().At(i).TraceID().String())
	}
	return sp
}

// tracingEnv exports to the collector: over HTTP, or gRPC, quickly.
func tracingEnv(c *collector, grpc bool, extra ...string) []string {
	env := append(withPass(passphrase), "OTEL_BSP_SCHEDULE_DELAY=100")
	if grpc {
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+c.grpc, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
	} else {
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+c.httpURL)
	}
	return append(env, extra...)
}

// One payment made on A and applied on B and C is one trace: A's control
// request, the append and the gossip push; B's and C's validation,
// delivery and ingest, under A's push by the context in the envelope. A
// and B export over OTLP/HTTP, C over gRPC with its own service name.
func TestOnePaymentIsOneTraceAcrossThreeDaemons(t *testing.T) {
	col := startCollector(t)
	dirA, dirB, dirC := tempDir(t), tempDir(t), tempDir(t)
	idA, idB, idC := initID(t, dirA), initID(t, dirB), initID(t, dirC)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "")
	cfgC, pc := writeConfig(t, dirC, "127.0.0.1:0", "")
	a := startDaemonEnv(t, tracingEnv(col, false, "ICN_GATEWAY_JWT_SECRET="+randomSecret(t)), dirA, cfgA, pa)
	b := startDaemonEnv(t, tracingEnv(col, false), dirB, cfgB, pb)
	c := startDaemonEnv(t, tracingEnv(col, true, "OTEL_SERVICE_NAME=coop-c", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=e2e"), dirC, cfgC, pc)
	require.Contains(t, a.logs.String(), "tracing: on, OTLP http/protobuf")
	require.Contains(t, c.logs.String(), "tracing: on, OTLP grpc")

	ok(t, dirA, "ledger", "currency", "create", "hours", "--credit-limit", "100")
	sa, sb := status(t, dirA), status(t, dirB)
	ok(t, dirB, "network", "dial", sa.ListenAddrs[0]+"/p2p/"+sa.PeerID)
	ok(t, dirC, "network", "dial", sa.ListenAddrs[0]+"/p2p/"+sa.PeerID)
	ok(t, dirC, "network", "dial", sb.ListenAddrs[0]+"/p2p/"+sb.PeerID)
	// B and C learn the currency by sync, then join its topic.
	var topics string
	if !assert.Eventually(t, func() bool {
		topics = ok(t, dirA, "gossip", "topics", "--json")
		for _, tp := range decode[[]controlapi.GossipTopic](t, topics) {
			if tp.Topic == "ledger:hours" {
				return tp.Peers == 2
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond) {
		t.Fatalf("B and C never joined ledger:hours: %s", topics)
	}

	pay := decode[controlapi.Entry](t, ok(t, dirA, "ledger", "pay", idB.DID, "7", "hours", "--json"))
	for _, dir := range []string{dirB, dirC} {
		require.Eventually(t, func() bool {
			bs := decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", idB.DID, "--json"))
			return len(bs) == 1 && bs[0].Units == 700
		}, 20*time.Second, 100*time.Millisecond)
	}

	// The append span names the entry; its trace is the payment's.
	var traceID string
	require.Eventually(t, func() bool {
		for _, s := range col.spans() {
			if s.name == "ledger.append" && s.attrs["icn.ledger.cid"] == pay.CID {
				traceID = s.traceID
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "A never exported the append span")
	// Every node's part arrives under that one trace ID.
	want := map[string][]string{
		idA.DID: {"control POST /v0/ledger/pay", "ledger.append", "gossip.publish"},
		idB.DID: {"gossip.validate", "gossip.deliver", "ledger.ingest"},
		idC.DID: {"gossip.validate", "gossip.deliver", "ledger.ingest"},
	}
	var inTrace []span
	require.Eventually(t, func() bool {
		inTrace = nil
		for _, s := range col.spans() {
			if s.traceID == traceID {
				inTrace = append(inTrace, s)
			}
		}
		for inst, names := range want {
			for _, n := range names {
				if !hasSpan(inTrace, inst, n) {
					return false
				}
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "spans of the payment's trace: %v", func() []string { return describe(inTrace) })
	byID := map[string]span{}
	for _, s := range inTrace {
		byID[s.spanID] = s
	}
	var root span
	for _, s := range inTrace {
		if s.parentID == "" {
			require.Empty(t, root.name, "one root: %v", describe(inTrace))
			root = s
		} else {
			require.Contains(t, byID, s.parentID, "%s on %s has its parent in the trace", s.name, s.instance)
		}
		switch s.instance {
		case idA.DID, idB.DID:
			require.Equal(t, "icn-node", s.service)
		case idC.DID:
			require.Equal(t, "coop-c", s.service)
		}
	}
	require.Equal(t, "control POST /v0/ledger/pay", root.name)
	require.Equal(t, idA.DID, root.instance)
	for _, s := range inTrace {
		if s.name == "ledger.ingest" {
			require.Equal(t, pay.CID, s.attrs["icn.ledger.cid"])
			require.Equal(t, "accepted", s.attrs["icn.ledger.status"])
			// The receiver's span hangs under A's push.
			require.Equal(t, "gossip.deliver", byID[s.parentID].name)
			require.Equal(t, "gossip.publish", byID[byID[s.parentID].parentID].name)
		}
	}
	// A log line written in the ingest span names the trace.
	require.Eventually(t, func() bool {
		return strings.Contains(c.logs.String(), "trace_id="+traceID)
	}, 5*time.Second, 50*time.Millisecond, "C's log has no line with the payment's trace_id")

	// With tracing on, an icnctl command is a trace of its own, and its
	// requests to icnd are part of it: a restore of many batches is one
	// trace over both processes.
	car := filepath.Join(tempDir(t), "ledger.car")
	r := ctlEnv(t, tracingEnv(col, false), dirB, "ledger", "backup", car)
	require.Equal(t, 0, r.code, r.stderr)
	r = ctlEnv(t, tracingEnv(col, false), dirC, "ledger", "restore", car)
	require.Equal(t, 0, r.code, r.stderr)
	for cmd, want := range map[string]string{
		"icnctl ledger backup":  "control GET " + controlapi.RouteLedgerBackup,
		"icnctl ledger restore": "control POST " + controlapi.RouteLedgerImport,
	} {
		require.Eventually(t, func() bool {
			for _, root := range col.spans() {
				if root.name != cmd || root.service != "icnctl" || root.parentID != "" {
					continue
				}
				for _, s := range col.spans() {
					if s.traceID == root.traceID && s.parentID == root.spanID && s.name == want {
						return true
					}
				}
			}
			return false
		}, 20*time.Second, 100*time.Millisecond, "no %q trace holding %q", cmd, want)
	}

	// The Kademlia DHT's own spans join the trace of the lookup that
	// caused them.
	require.Eventually(t, func() bool {
		r := ctlEnv(t, tracingEnv(col, false), dirC, "network", "resolve", idB.DID, "--json")
		return r.code == 0 && decode[controlapi.Resolution](t, r.stdout).DHT == "found"
	}, 30*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool {
		roots := map[string]bool{}
		for _, s := range col.spans() {
			if s.name == "icnctl network resolve" {
				roots[s.traceID] = true
			}
		}
		for _, s := range col.spans() {
			if roots[s.traceID] && s.instance == idC.DID && strings.HasPrefix(s.name, "KademliaDHT.") {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "no KademliaDHT span in a resolve's trace")

	// The gateway faces members: a traceparent a client sends is linked
	// to, not joined, so no client decides what the node samples.
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", pa.health, gatewayapi.RouteOpenAPI), nil)
	require.NoError(t, err)
	req.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		for _, s := range col.spans() {
			if s.name == "gateway GET "+gatewayapi.RouteOpenAPI && s.instance == idA.DID {
				return s.parentID == "" && s.traceID != clientTrace && len(s.links) == 1 && s.links[0] == clientTrace
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "no gateway span linked to the client's trace")

	// The spans left the nodes through the queue, and none were dropped.
	_, m := a.get("/metrics")
	require.Positive(t, metricValue(t, m, "icn_tracing_spans_exported_total"))
	require.Zero(t, metricValue(t, m, `icn_tracing_spans_dropped_total{reason="queue_full"}`))
	for _, d := range []*daemon{a, b, c} {
		d.stop()
	}
}

func hasSpan(spans []span, instance, name string) bool {
	for _, s := range spans {
		if s.instance == instance && s.name == name {
			return true
		}
	}
	return false
}

func describe(spans []span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, fmt.Sprintf("%s@%s", s.name, s.instance[len(s.instance)-6:]))
	}
	return out
}

// A collector that is not there costs dropped spans, counted, never a
// slower or stuck node: payments go on, and icnd stops in time.
func TestUnreachableCollectorNeverBlocks(t *testing.T) {
	dir := tempDir(t)
	other := initID(t, tempDir(t))
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	dead := fmt.Sprintf("http://127.0.0.1:%d", freeTCPPort(t)) // nothing listens
	d := startDaemonEnv(t, append(withPass(passphrase), "OTEL_EXPORTER_OTLP_ENDPOINT="+dead,
		"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_BSP_EXPORT_TIMEOUT=500", "OTEL_BSP_MAX_QUEUE_SIZE=4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2"), dir, cfg, p)
	ok(t, dir, "ledger", "currency", "create", "hours", "--credit-limit", "1000")
	for i := 0; i < 40; i++ {
		ok(t, dir, "ledger", "pay", other.DID, "1", "hours")
	}
	require.Eventually(t, func() bool {
		_, m := d.get("/metrics")
		return metricValue(t, m, `icn_tracing_spans_dropped_total{reason="export_failed"}`) > 0 &&
			metricValue(t, m, `icn_tracing_spans_dropped_total{reason="queue_full"}`) > 0
	}, 30*time.Second, 100*time.Millisecond)
	_, m := d.get("/metrics")
	require.Zero(t, metricValue(t, m, "icn_tracing_spans_exported_total"))
	require.Contains(t, d.logs.String(), "spans could not be exported to the OTLP collector")
	bs := decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", other.DID, "--json"))
	require.Equal(t, int64(4000), bs[0].Units) // 40 × 1.00
	d.stop()
}

// A bad OTEL_* variable stops the start with its name, as --check-config
// says.
func TestBadTracingSettingsAreRefused(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, _ := writeConfig(t, dir, "127.0.0.1:0", "")
	env := append(withPass(passphrase), "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER=sometimes")
	d := spawn(t, env, nil, "--data-dir", dir, "--config", cfg)
	require.NotEqual(t, 0, d.wait(20*time.Second))
	require.Contains(t, d.logs.String(), `OTEL_TRACES_SAMPLER="sometimes" is not valid`)
	chk := spawn(t, env, nil, "--data-dir", dir, "--config", cfg, "--check-config")
	require.NotEqual(t, 0, chk.wait(20*time.Second))
	require.Contains(t, chk.logs.String(), "OTEL_TRACES_SAMPLER")
	good := spawn(t, append(withPass(passphrase), "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"), nil, "--data-dir", dir, "--config", cfg, "--check-config")
	require.Equal(t, 0, good.wait(20*time.Second))
	require.Contains(t, good.logs.String(), "# tracing: on, OTLP http/protobuf to the endpoint in OTEL_EXPORTER_OTLP_ENDPOINT")
}
