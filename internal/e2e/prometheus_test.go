package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/dashboards"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/client"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// The CI proof of the shipped Grafana dashboards and alert rules, since no
// Grafana runs here: the Debian package's Prometheus scrapes a real
// three-node devnet (A, B, C) under light load, and every expression of
// every panel of every provisioned dashboard (variables substituted as
// Grafana would) must return data, or be one that needs an event (provoked
// here, partly by a fourth, unscraped stranger node D, then checked again),
// or be on a short list of series a node of this project cannot export,
// each with its reason. Every alert must evaluate, and fire when provoked.

const (
	prometheusBin = "/usr/bin/prometheus"
	// rateInterval stands for Grafana's $__rate_interval. Grafana's floor is
	// four scrape intervals; ten keeps a late scrape on a loaded CI machine
	// from leaving a window with one sample.
	rateInterval = "10s"
	// queryStep is the query_range step and stands for $__interval.
	queryStep = 2 * time.Second
	// alertWindow replaces every range selector of configs/alerts.yml in the
	// copy Prometheus loads here, and every `for:` becomes 0s: the rules'
	// thresholds are per-second rates or counts, which a shorter window keeps.
	alertWindow = "20s"
)

// eventNeed is a dashboard expression whose series appear only after an
// event, which the test provokes.
type eventNeed struct {
	match *regexp.Regexp
	event string
}

// needsEvent lists the expressions that are empty on a quiet devnet, with
// the event that makes them show data.
var needsEvent = []eventNeed{
	{regexp.MustCompile(`libp2p_rcmgr_blocked_resources`),
		"a connection the resource manager refuses: B admits one inbound connection (A's) and the stranger D dials it"},
	{regexp.MustCompile(`libp2p_swarm_dial_errors_total`),
		"a failed dial: A dials a DID at a dead address"},
	{regexp.MustCompile(`libp2p_swarm_connections_closed_total|libp2p_swarm_connection_duration_seconds`),
		"closed connections: A rotates its key (its old host closes), A disconnects from B and dials again, C hangs up on D"},
	{regexp.MustCompile(`rate\(libp2p_swarm_(handshake|dial)_latency_seconds_bucket`),
		"connections made after the first: the first handshake and dial of a node create these histograms' series, so rate() sees only later ones (A's, after its key rotation)"},
	{regexp.MustCompile(`histogram_quantile\([^,]+, sum by \(le\) \(libp2p_rcmgr_peer_memory_bucket`),
		"a peer holding memory at a scrape: ICN's own streams hold theirs for milliseconds (and QUIC on loopback never grows a connection window), so a client opens a gossip request stream to A and sends nothing, and A holds the request's memory until its timeout"},
	{regexp.MustCompile(`libp2p_identify_identify_push_total`),
		"an identify push: after `icnctl id rotate` the new host registers its protocols while already reconnected, and pushes them"},
}

// cannotExist is a dashboard expression whose series a node of this project
// cannot export, with the reason.
type cannotExist struct {
	match  *regexp.Regexp
	reason string
}

// notExported lists the series go-libp2p's dashboards read that an ICN node
// cannot export, here or (where the reason says so) anywhere.
var notExported = []cannotExist{
	{regexp.MustCompile(`libp2p_relaysvc_`),
		"ICN nodes never run a circuit-relay service (go-libp2p's EnableRelayService); relay_client only uses other nodes' relays, and no config key turns a service on"},
	{regexp.MustCompile(`libp2p_holepunch_direct_dials_total`),
		"hole punching starts from a relayed connection, and no ICN node runs a relay; loopback peers always connect directly"},
	{regexp.MustCompile(`libp2p_autorelay_candidates_total|libp2p_autorelay_scheduled_work_time`),
		"autorelay's relay finder runs only after AutoNAT reports the node private or unknown, and AutoNAT never probes without a public address (none on loopback); the host a key rotation closes writes these series once as a reset (zero times, zero candidates), which is not data"},
	{regexp.MustCompile(`libp2p_autonat_(received|outgoing)_dial_`),
		"AutoNAT v1 asks peers with a public address to dial back, and dials back public addresses only; a loopback devnet has none"},
	{regexp.MustCompile(`libp2p_autonatv2_`),
		"AutoNAT v2 probes public addresses only; a loopback devnet has none"},
	{regexp.MustCompile(`libp2p_host_addrs_`),
		"the host's address-reachability tracker (AutoNAT v2) reports public addresses only"},
	{regexp.MustCompile(`libp2p_swarm_black_hole_filter_`),
		"the swarm's black-hole detector counts dials to public UDP and IPv6 addresses only"},
	{regexp.MustCompile(`libp2p_swarm_[a-z_]+\{[^}]*transport="tcp"`),
		"ICN nodes listen and dial on QUIC only (node/host.go: libp2p.Transport(quic.NewTransport))"},
	{regexp.MustCompile(`num_dials="(0|2|3|4|5|>=6)"`),
		"each loopback peer has one QUIC address, so every successful dial takes exactly one attempt (num_dials=\"1\")"},
	{regexp.MustCompile(`libp2p_rcmgr_memory\{scope="service"`),
		"go-libp2p's resource-manager metrics export memory for the system, transient and protocol scopes only, never per service"},
}

// alertProof says how the test shows an alert of configs/alerts.yml works.
// fires: it must have fired (in the copy with short windows) for each of
// these nodes; otherwise every series its expression reads must exist.
type alertProof struct {
	fires []string // node names: "A", "B", "C"
	why   string
}

func TestPrometheusScrapesDevnet(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skipf("%s not found (apt-get install prometheus): %v", prometheusBin, err)
	}
	began := time.Now()
	repo := filepath.Join("..", "..")
	dirA, dirB, dirC, dirD := tempDir(t), tempDir(t), tempDir(t), tempDir(t)
	idA, idB, idC, idD := initID(t, dirA), initID(t, dirB), initID(t, dirC), initID(t, dirD)

	// A: open. B: admits one inbound connection, so a second one is refused
	// by the resource manager. C: trusted mode that admits only A and B,
	// with a small gossip bucket for them (partners); its ledger and gossip
	// take anyone's entries, so the three ledgers stay alike.
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "[limits]\nmax_connections_inbound = 1\n")
	cfgC, pc := writeConfig(t, dirC, "127.0.0.1:0", `[trust]
mode = "trusted"
min_ledger_class = "isolated"
min_gossip_class = "isolated"
[trust.rate_limits.partner]
messages_per_second = 5.0
burst = 10
`)
	cfgD, pd := writeConfig(t, dirD, "127.0.0.1:0", "")
	nodes := map[string]string{
		fmt.Sprintf("127.0.0.1:%d", pa.metrics): "A",
		fmt.Sprintf("127.0.0.1:%d", pb.metrics): "B",
		fmt.Sprintf("127.0.0.1:%d", pc.metrics): "C",
	}
	instance := map[string]string{}
	for inst, n := range nodes {
		instance[n] = inst
	}

	rules := alertsCopy(t, filepath.Join(repo, "configs", "alerts.yml"))
	prom := startPrometheus(t, []string{instance["A"], instance["B"], instance["C"]}, rules)
	start := prom.started

	// Before any daemon runs, every target is down: IcndDown fires.
	requireFiring(t, prom, start, "IcndDown", nodes, "A", "B", "C")

	gwEnv := func() []string { return append(withPass(passphrase), "ICN_GATEWAY_JWT_SECRET="+randomSecret(t)) }
	// A exports traces to a collector that is not there: its spans are
	// dropped and counted, which the tracing panels and alert read.
	deadCollector := fmt.Sprintf("http://127.0.0.1:%d", freeTCPPort(t))
	startDaemonEnv(t, append(gwEnv(), "OTEL_EXPORTER_OTLP_ENDPOINT="+deadCollector, "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_BSP_EXPORT_TIMEOUT=500"), dirA, cfgA, pa)
	b := startDaemonEnv(t, gwEnv(), dirB, cfgB, pb)
	c := startDaemonEnv(t, gwEnv(), dirC, cfgC, pc)
	// Up, and alone: IcnNoConnections fires.
	requireFiring(t, prom, start, "IcnNoConnections", nodes, "A", "B", "C")

	ok(t, dirC, "trust", "add", idA.DID, "0.5")
	ok(t, dirC, "trust", "add", idB.DID, "0.5")
	ok(t, dirA, "network", "dial", dialAddr(t, dirB))
	ok(t, dirA, "network", "dial", dialAddr(t, dirC))
	ok(t, dirB, "network", "dial", dialAddr(t, dirC))
	for _, dir := range []string{dirA, dirB, dirC} {
		require.Eventually(t, func() bool { return len(peers(t, dir)) == 2 }, 20*time.Second, 100*time.Millisecond, "the devnet never connected")
	}

	// Light load: payments by the nodes and by a member through the
	// gateway, gossip, event streams, a few refused tokens.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ok(t, dirA, "ledger", "currency", "create", "hours", "--decimals", "2", "--credit-limit", "100")
	ok(t, dirA, "ledger", "pay", idB.DID, "3", "hours", "--memo", "bread")
	ok(t, dirA, "ledger", "pay", idC.DID, "2", "hours", "--memo", "tea")
	require.Eventually(t, func() bool { return ctl(t, dirB, "ledger", "pay", idC.DID, "1", "hours", "--memo", "jam").code == 0 },
		20*time.Second, 200*time.Millisecond, "B never learnt A's currency")
	ok(t, dirA, "gossip", "publish", "chat", "hello from A")
	ok(t, dirB, "gossip", "publish", "chat", "hello from B")

	gw := func(p ports) *client.Client { return client.New(fmt.Sprintf("http://127.0.0.1:%d", p.health), nil) }
	gwA, gwB, gwC := gw(pa), gw(pb), gw(pc)
	alice, bob, carol := newWallet(t), newWallet(t), newWallet(t)
	for _, l := range []struct {
		c *client.Client
		w walletKey
	}{{gwA, alice}, {gwB, alice}, {gwC, carol}} {
		_, err := l.c.Login(ctx, l.w.did, l.w.key)
		require.NoError(t, err)
	}
	for _, g := range []*client.Client{gwB, gwC} {
		stream, err := g.Events(ctx, "chat", "")
		require.NoError(t, err)
		t.Cleanup(func() { stream.Close() })
		go func() {
			for {
				if _, err := stream.Next(); err != nil {
					return
				}
			}
		}()
	}
	issuer, err := did.Parse(idA.DID)
	require.NoError(t, err)
	hours := ledger.CurrencyID{Symbol: "hours", Issuer: issuer}
	_, err = gwA.Pay(ctx, alice.did, alice.key, client.Transfer{To: bob.did, Currency: hours, Units: 1250, Memo: "bread"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		bs, err := gwB.Balances(ctx, bob.did, "hours")
		return err == nil && len(bs) == 1 && bs[0].Balance == "12.50"
	}, 30*time.Second, 200*time.Millisecond, "B never showed bob's balance")
	_, err = gwA.Status(ctx)
	require.NoError(t, err)
	_, err = gwA.Currencies(ctx)
	require.NoError(t, err)
	badTokens(t, pa, 3)
	for _, d := range []*daemon{b, c} {
		require.Eventually(t, func() bool { return d.metric(t, "icn_ledger_sync_last_success_timestamp_seconds") > 0 },
			45*time.Second, 200*time.Millisecond, "a node never completed a ledger sync")
	}

	queries := dashboardQueries(t, prom, repo, start)
	var baseline, evented []dashQuery
	needHits, exemptHits := make([]int, len(needsEvent)), make([]int, len(notExported))
	for _, q := range queries {
		switch i, j := q.category(); {
		case j >= 0:
			exemptHits[j]++
		case i >= 0:
			needHits[i]++
			evented = append(evented, q)
		default:
			baseline = append(baseline, q)
		}
	}
	for i, n := range needHits {
		require.NotZero(t, n, "needsEvent entry %q matches no dashboard expression: drop it", needsEvent[i].match)
	}
	for j, n := range exemptHits {
		require.NotZero(t, n, "notExported entry %q matches no dashboard expression: drop it", notExported[j].match)
	}
	t.Logf("%d dashboard expressions: %d must have data now, %d after an event, %d cannot exist here", len(queries), len(baseline), len(evented), len(queries)-len(baseline)-len(evented))
	for j, e := range notExported {
		t.Logf("not exported (%d expressions matching %s): %s", exemptHits[j], e.match, e.reason)
	}
	requireData(t, prom, start, baseline, 60*time.Second, "before any event")
	// Which of the expressions said to need an event already show data
	// (a refusal or a redial on the way up): not an error, but worth seeing.
	for _, q := range evented {
		if e, err := q.expand(start); err == nil {
			if res, err := prom.queryRange(e, start); err == nil && hasData(res) {
				t.Logf("shows data before its event: %s", q)
			}
		}
	}

	// Events. A dead address first (its dial times out in the background).
	dead := exec.Command(bins.icnctl, "--data-dir", dirA, "network", "dial", idD.DID, fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)))
	dead.Env = withPass(passphrase)
	var deadOut bytes.Buffer
	dead.Stdout, dead.Stderr = &deadOut, &deadOut
	require.NoError(t, dead.Start())
	deadDone := make(chan error, 1)
	go func() { deadDone <- dead.Wait() }()
	t.Cleanup(func() { _ = dead.Process.Kill() })

	// alice signs two entries with one seq, one on A and one on B: the
	// loser of the equivocation is quarantined everywhere.
	equivocate(t, ctx, dirA, dirB, gwA, gwB, alice, bob, carol, hours, []*daemon{b, c})

	// A floods gossip through its gateway (C's bucket for A is 5/s) until
	// C's drops fire IcnMessagesRateLimited, however fast this machine is.
	rateLimited := fmt.Sprintf(`ALERTS{alertname="IcnMessagesRateLimited", alertstate="firing", instance=%q}`, instance["C"])
	sent := flood(ctx, gwA, alice, func() bool {
		res, err := prom.query(rateLimited, time.Now())
		return err == nil && len(res) > 0
	}, 40*time.Second)
	t.Logf("flood: %d messages published on A, %.0f dropped by C's rate limiter", sent, c.metric(t, "icn_network_messages_rate_limited_total"))

	// Someone guessing tokens on A's gateway.
	badTokens(t, pa, 30)

	// A rotates its key: its old host's connections close, and the new
	// host pushes identify to the peers it reconnected to.
	// C (trusted mode) refuses A's new key until it holds A's new binding:
	// docs/trust.md's known limit, and its way out, a DHT lookup.
	ok(t, dirA, "id", "rotate")
	require.Eventually(t, func() bool {
		if len(peers(t, dirA)) == 2 {
			return true
		}
		ctl(t, dirC, "network", "resolve", idA.DID)
		ctl(t, dirA, "network", "dial", dialAddr(t, dirC))
		ctl(t, dirA, "network", "dial", dialAddr(t, dirB))
		return len(peers(t, dirA)) == 2
	}, 45*time.Second, time.Second, "A never reconnected after its key rotation")
	// A's connection to B is B's one inbound connection.
	require.Eventually(t, func() bool {
		ctl(t, dirA, "network", "disconnect", idB.DID)
		ctl(t, dirA, "network", "dial", dialAddr(t, dirB))
		for _, p := range peers(t, dirB) {
			if p.DID == idA.DID && p.Direction == "inbound" {
				return true
			}
		}
		return false
	}, 30*time.Second, 500*time.Millisecond, "B never held A's connection as inbound")

	// The stranger D: refused by B's resource manager (B's one inbound
	// connection is A's), and by C's trust policy, again and again.
	startDaemon(t, dirD, cfgD, pd)
	blockedOnB := fmt.Sprintf(`sum(icn_network_resource_blocked_total{instance=%q})`, instance["B"])
	for i := 0; i < 3; i++ {
		r := ctl(t, dirD, "network", "dial", dialAddr(t, dirB))
		require.NotEqual(t, 0, r.code, "B admitted a second inbound connection: %s", r.stdout)
		// Each refusal in its own scrape: increase() needs two samples
		// (the series is born with the first refusal).
		want := b.metric(t, "icn_network_resource_blocked_total")
		require.Eventually(t, func() bool {
			v, err := prom.value(blockedOnB)
			return err == nil && v >= want
		}, 15*time.Second, 100*time.Millisecond, "Prometheus never scraped B's refusal")
	}
	for i := 0; i < 5; i++ {
		r := ctl(t, dirD, "network", "dial", dialAddr(t, dirC))
		require.NotEqual(t, 0, r.code, "C admitted a stranger: %s", r.stdout)
	}
	holdPeerMemory(t, ctx, dialAddr(t, dirA), 5*time.Second)
	select {
	case err := <-deadDone:
		require.Error(t, err, "the dial of a dead address succeeded: %s", deadOut.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("icnctl network dial of a dead address hung: %s", deadOut.String())
	}
	require.Positive(t, b.metric(t, "icn_network_resource_blocked_total"), "B's resource manager refused nothing")
	require.Positive(t, c.metric(t, "icn_network_connections_rejected_untrusted_total"), "C refused no stranger")

	for i, e := range needsEvent {
		t.Logf("needs an event (%d expressions matching %s): %s", needHits[i], e.match, e.event)
	}
	requireData(t, prom, start, evented, 45*time.Second, "after the events")
	// An expression on the notExported list that shows data after all
	// means its entry is wrong (or timing let it through once): look at it.
	for _, q := range queries {
		if _, j := q.category(); j >= 0 {
			e, err := q.expand(start)
			require.NoError(t, err)
			res, err := prom.queryRange(e, start)
			require.NoError(t, err, "Prometheus refuses %s (as %s)", q, e)
			if hasData(res) {
				t.Logf("listed as not exported, yet shows values (see the reason of %s): %s", notExported[j].match, q)
			}
		}
	}

	// Alerts: each one fired, or at least reads series that exist.
	proofs := map[string]alertProof{
		"IcndDown":                        {fires: []string{"A", "B", "C"}, why: "no daemon ran yet"},
		"IcnNoConnections":                {fires: []string{"A", "B", "C"}, why: "the daemons ran before they were connected"},
		"IcnMessagesRateLimited":          {fires: []string{"C"}, why: "A's gateway flooded C"},
		"IcnResourceLimitHit":             {fires: []string{"B"}, why: "B refused D's connections"},
		"IcnLedgerEntriesQuarantined":     {fires: []string{"A", "B", "C"}, why: "alice equivocated"},
		"IcnGatewayAuthFailures":          {fires: []string{"A"}, why: "bad tokens on A's gateway"},
		"IcnUntrustedConnectionsRejected": {fires: []string{"C"}, why: "C refused the stranger D"},
		"IcnTracingSpansDropped":          {fires: []string{"A"}, why: "A exports to a collector that is not there"},
		"IcnLedgerQuarantineHigh":         {why: "needs over 100 quarantined entries"},
		"IcnLedgerSyncStalled":            {why: "needs a node with peers that cannot sync for minutes"},
		"IcnLedgerSyncLagging":            {why: "needs a catch-up of over 10,000 entries that lasts"},
	}
	alerts := parseAlerts(t, filepath.Join(repo, "configs", "alerts.yml"))
	require.NotEmpty(t, alerts)
	for _, a := range alerts {
		p, known := proofs[a.name]
		require.True(t, known, "alert %s of configs/alerts.yml has no proof here: provoke it, or name the series it needs, in TestPrometheusScrapesDevnet", a.name)
		// The shipped expression, unshortened, evaluates on the real data.
		_, err := prom.query(a.expr, time.Now())
		require.NoError(t, err, "alert %s: %s", a.name, a.expr)
		if len(p.fires) > 0 {
			requireFiring(t, prom, start, a.name, nodes, p.fires...)
			t.Logf("alert %s fired for %v (%s)", a.name, p.fires, p.why)
			continue
		}
		names := seriesNames(a.expr)
		require.NotEmpty(t, names, "alert %s: no series in %s", a.name, a.expr)
		for _, m := range names {
			res, err := prom.query(fmt.Sprintf(`count by (instance) (%s{job="icn"})`, m), time.Now())
			require.NoError(t, err)
			require.Len(t, res, 3, "alert %s reads %s, which not every node exports", a.name, m)
		}
		t.Logf("alert %s not provoked (%s); its series %v exist on every node", a.name, p.why, names)
	}
	for name := range proofs {
		found := false
		for _, a := range alerts {
			found = found || a.name == name
		}
		require.True(t, found, "alert %s is no longer in configs/alerts.yml: drop it from the proofs", name)
	}
	requireRulesHealthy(t, prom)
	t.Logf("the whole proof took %s", time.Since(began).Round(time.Second))
}

// promServer is a running Prometheus.
type promServer struct {
	url     string
	started time.Time
}

// startPrometheus runs Prometheus scraping targets (job "icn") every second
// and evaluating rulesFile every second; it is killed at cleanup.
func startPrometheus(t *testing.T, targets []string, rulesFile string) *promServer {
	t.Helper()
	dir := tempDir(t)
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: icn
    static_configs:
      - targets: [%s]
`, rulesFile, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	logs := &syncBuffer{}
	started := time.Now()
	cmd := exec.Command(prometheusBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		killUnlessDone(cmd, done)
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs)
		}
	})
	p := &promServer{url: "http://" + addr, started: started}
	hc := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		resp, err := hc.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "prometheus never became ready")
	select {
	case <-done:
		t.Fatalf("prometheus exited:\n%s", logs)
	default:
	}
	return p
}

// promSeries is one series of a query answer.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

// api calls a Prometheus HTTP API endpoint (POST, or GET for the
// endpoints that take no POST) and returns its data.
func (p *promServer) api(path string, form url.Values) (json.RawMessage, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	var resp *http.Response
	var err error
	if strings.HasPrefix(path, "/api/v1/label/") {
		resp, err = hc.Get(p.url + path + "?" + form.Encode())
	} else {
		resp, err = hc.PostForm(p.url+path, form)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s answered %d: %s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r.Data, nil
}

func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// promResult decodes a query's data; a scalar or string answer counts as one
// series.
func promResult(data json.RawMessage) ([]promSeries, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	if d.ResultType == "scalar" || d.ResultType == "string" {
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		return []promSeries{{Value: v}}, nil
	}
	var out []promSeries
	return out, json.Unmarshal(d.Result, &out)
}

// query is an instant query at at.
func (p *promServer) query(expr string, at time.Time) ([]promSeries, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}, "time": {promTime(at)}})
	if err != nil {
		return nil, err
	}
	return promResult(data)
}

// value is the value of an instant query that answers one series (now).
func (p *promServer) value(expr string) (float64, error) {
	res, err := p.query(expr, time.Now())
	if err != nil {
		return 0, err
	}
	if len(res) != 1 {
		return 0, fmt.Errorf("%s answered %d series, want 1", expr, len(res))
	}
	str, _ := res[0].Value[1].(string)
	return strconv.ParseFloat(str, 64)
}

// queryRange is a range query from start to now, every queryStep.
func (p *promServer) queryRange(expr string, start time.Time) ([]promSeries, error) {
	data, err := p.api("/api/v1/query_range", url.Values{"query": {expr}, "start": {promTime(start)}, "end": {promTime(time.Now())},
		"step": {strconv.Itoa(int(queryStep / time.Second))}})
	if err != nil {
		return nil, err
	}
	return promResult(data)
}

// labelValues is what Grafana's label_values(match, label) lists.
func (p *promServer) labelValues(label, match string, start time.Time) ([]string, error) {
	form := url.Values{"start": {promTime(start)}, "end": {promTime(time.Now())}}
	if match != "" {
		form.Set("match[]", match)
	}
	data, err := p.api("/api/v1/label/"+label+"/values", form)
	if err != nil {
		return nil, err
	}
	var vs []string
	return vs, json.Unmarshal(data, &vs)
}

// hasData says whether a range answer holds a value Grafana would draw.
func hasData(series []promSeries) bool {
	for _, s := range series {
		for _, v := range s.Values {
			if str, ok := v[1].(string); ok && str != "NaN" {
				return true
			}
		}
		if str, ok := s.Value[1].(string); ok && str != "NaN" {
			return true
		}
	}
	return false
}

// dashQuery is one expression of a dashboard panel's target.
type dashQuery struct {
	file, panel, expr string
	vars              map[string]string
}

func (q dashQuery) String() string {
	return fmt.Sprintf("%s %q: %s", q.file, q.panel, strings.TrimSpace(q.expr))
}

// category returns the needsEvent and notExported entries q matches (-1:
// none); notExported wins.
func (q dashQuery) category() (need, exempt int) {
	need, exempt = -1, -1
	for i, e := range needsEvent {
		if e.match.MatchString(q.expr) {
			need = i
			break
		}
	}
	for j, e := range notExported {
		if e.match.MatchString(q.expr) {
			exempt = j
			break
		}
	}
	return need, exempt
}

// expand substitutes the dashboard's variables and Grafana's own into the
// expression, for a dashboard showing the time since start.
func (q dashQuery) expand(start time.Time) (string, error) {
	rng := time.Since(start).Round(time.Second)
	step := queryStep
	out := q.expr
	for _, b := range [][2]string{
		{"${__rate_interval}", rateInterval}, {"$__rate_interval", rateInterval},
		{"${__interval_ms}", strconv.FormatInt(step.Milliseconds(), 10)}, {"$__interval_ms", strconv.FormatInt(step.Milliseconds(), 10)},
		{"${__interval}", step.String()}, {"$__interval", step.String()},
		{"${__range_ms}", strconv.FormatInt(rng.Milliseconds(), 10)}, {"$__range_ms", strconv.FormatInt(rng.Milliseconds(), 10)},
		{"${__range_s}", strconv.Itoa(int(rng.Seconds()))}, {"$__range_s", strconv.Itoa(int(rng.Seconds()))},
		{"${__range}", fmt.Sprintf("%ds", int(rng.Seconds()))}, {"$__range", fmt.Sprintf("%ds", int(rng.Seconds()))},
	} {
		out = strings.ReplaceAll(out, b[0], b[1])
	}
	names := make([]string, 0, len(q.vars))
	for n := range q.vars {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		v := q.vars[n]
		out = strings.ReplaceAll(out, "${"+n+"}", v)
		out = strings.ReplaceAll(out, "[["+n+"]]", v)
		out = regexp.MustCompile(`\$`+regexp.QuoteMeta(n)+`\b`).ReplaceAllLiteralString(out, v)
	}
	if i := strings.IndexByte(out, '$'); i >= 0 {
		return "", fmt.Errorf("%s: unknown variable at %q (teach TestPrometheusScrapesDevnet its value)", q, out[i:])
	}
	return out, nil
}

// templateVar is a dashboard's template variable.
type templateVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
	Options []struct {
		Value string `json:"value"`
	} `json:"options"`
}

var labelValuesRe = regexp.MustCompile(`^label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// resolve gives a variable the value Grafana substitutes with "All"
// selected: a query variable's allValue, or the regex of every value its
// query lists (which must list some: an empty dropdown is a broken
// dashboard); another variable its current value or first option.
func (v templateVar) resolve(p *promServer, start time.Time) (string, error) {
	first := func() string {
		var s string
		if json.Unmarshal(v.Current.Value, &s) == nil && s != "" {
			return s
		}
		var l []string
		if json.Unmarshal(v.Current.Value, &l) == nil && len(l) > 0 {
			return l[0]
		}
		if len(v.Options) > 0 {
			return v.Options[0].Value
		}
		return ""
	}
	switch v.Type {
	case "datasource":
		return dashboards.DatasourceUID, nil
	case "custom", "interval", "textbox", "constant":
		if s := first(); s != "" {
			return s, nil
		}
		var s string
		if json.Unmarshal(v.Query, &s) == nil && s != "" {
			return s, nil
		}
		return "", fmt.Errorf("variable %s (%s) has no value", v.Name, v.Type)
	case "query":
		q := v.Definition
		var s string
		var o struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &s) == nil && s != "" {
			q = s
		} else if json.Unmarshal(v.Query, &o) == nil && o.Query != "" {
			q = o.Query
		}
		m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			return "", fmt.Errorf("variable %s: query %q is not label_values(...) (teach TestPrometheusScrapesDevnet)", v.Name, q)
		}
		vals, err := p.labelValues(m[2], m[1], start)
		if err != nil {
			return "", fmt.Errorf("variable %s: %s: %w", v.Name, q, err)
		}
		if len(vals) == 0 {
			return "", fmt.Errorf("variable %s: %s lists nothing: the dashboard's dropdown would be empty", v.Name, q)
		}
		if !v.IncludeAll {
			return vals[0], nil
		}
		if v.AllValue != "" {
			return v.AllValue, nil
		}
		// Grafana joins the values into a regex, escaped for a PromQL string.
		esc := make([]string, len(vals))
		for i, s := range vals {
			esc[i] = strings.ReplaceAll(regexp.QuoteMeta(s), `\`, `\\`)
		}
		return "(" + strings.Join(esc, "|") + ")", nil
	}
	return "", fmt.Errorf("variable %s has type %q, which TestPrometheusScrapesDevnet does not know", v.Name, v.Type)
}

// dashboardQueries reads every expression of every panel target (rows'
// panels included) of every provisioned dashboard, with its dashboard's
// variables resolved.
func dashboardQueries(t *testing.T, p *promServer, repo string, start time.Time) []dashQuery {
	t.Helper()
	files := []string{filepath.Join(repo, "configs", "grafana", "icn-dashboard.json")}
	libp2p, err := filepath.Glob(filepath.Join(repo, "configs", "grafana", "dashboards", "libp2p", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, libp2p, "no libp2p dashboards: run `make dashboards`")
	files = append(files, libp2p...)
	var out []dashQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var d struct {
			Panels     []json.RawMessage `json:"panels"`
			Templating struct {
				List []templateVar `json:"list"`
			} `json:"templating"`
		}
		require.NoError(t, json.Unmarshal(b, &d), f)
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			val, err := v.resolve(p, start)
			require.NoError(t, err, f)
			vars[v.Name] = val
		}
		var walk func(raw []json.RawMessage)
		walk = func(raw []json.RawMessage) {
			for _, r := range raw {
				var panel struct {
					Title   string            `json:"title"`
					Panels  []json.RawMessage `json:"panels"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				}
				require.NoError(t, json.Unmarshal(r, &panel), f)
				for _, tg := range panel.Targets {
					if strings.TrimSpace(tg.Expr) != "" {
						out = append(out, dashQuery{file: filepath.Base(f), panel: panel.Title, expr: tg.Expr, vars: vars})
					}
				}
				walk(panel.Panels)
			}
		}
		walk(d.Panels)
	}
	return out
}

// requireData waits until every query shows data over the time since start;
// a query Prometheus refuses fails at once.
func requireData(t *testing.T, p *promServer, start time.Time, qs []dashQuery, within time.Duration, when string) {
	t.Helper()
	left := qs
	deadline := time.Now().Add(within)
	for {
		var still []dashQuery
		for _, q := range left {
			e, err := q.expand(start)
			require.NoError(t, err)
			res, err := p.queryRange(e, start)
			require.NoError(t, err, "Prometheus refuses %s (as %s)", q, e)
			if !hasData(res) {
				still = append(still, q)
			}
		}
		left = still
		if len(left) == 0 {
			t.Logf("%d dashboard expressions show data %s", len(qs), when)
			return
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, q := range left {
				lines = append(lines, "  "+q.String())
			}
			t.Fatalf("%d dashboard expressions show no data %s (provoke what they need, or list them in needsEvent or notExported with the reason):\n%s",
				len(left), when, strings.Join(lines, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// requireFiring waits until alert has fired (since start) for each of the
// named nodes.
func requireFiring(t *testing.T, p *promServer, start time.Time, alert string, nodes map[string]string, want ...string) {
	t.Helper()
	var got map[string]bool
	var qerr error
	okay := assertEventually(func() bool {
		res, err := p.queryRange(fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, alert), start)
		if err != nil {
			qerr = err
			return false
		}
		got = map[string]bool{}
		for _, s := range res {
			if hasData([]promSeries{s}) {
				got[nodes[s.Metric["instance"]]] = true
			}
		}
		for _, n := range want {
			if !got[n] {
				return false
			}
		}
		return true
	}, 45*time.Second, 500*time.Millisecond)
	require.NoError(t, qerr)
	require.True(t, okay, "alert %s never fired for all of %v (fired for %v)", alert, want, got)
}

// assertEventually is require.Eventually without failing: the caller says
// what went wrong.
func assertEventually(cond func() bool, within, tick time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(tick)
	}
}

// requireRulesHealthy checks that Prometheus evaluated every loaded rule
// without an error.
func requireRulesHealthy(t *testing.T, p *promServer) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(p.url + "/api/v1/rules")
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	n := 0
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			require.Equal(t, "ok", rule.Health, "rule %s (group %s): %s", rule.Name, g.Name, rule.LastError)
		}
	}
	require.Positive(t, n, "Prometheus loaded no rules")
}

// alertRule is an alert of configs/alerts.yml.
type alertRule struct{ name, expr string }

// parseAlerts reads the alert names and expressions of a rules file (plain
// or folded `expr:` values, as configs/alerts.yml writes them).
func parseAlerts(t *testing.T, path string) []alertRule {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []alertRule
	lines := strings.Split(string(b), "\n")
	alertRe := regexp.MustCompile(`^\s*- alert:\s*(\S+)\s*$`)
	exprRe := regexp.MustCompile(`^(\s*)expr:\s*(.*)$`)
	for i := 0; i < len(lines); i++ {
		if m := alertRe.FindStringSubmatch(lines[i]); m != nil {
			out = append(out, alertRule{name: m[1]})
			continue
		}
		m := exprRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		require.NotEmpty(t, out, "%s:%d: expr before any alert", path, i+1)
		expr := m[2]
		if expr == ">-" || expr == ">" || expr == "|" || expr == "|-" {
			var parts []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > len(m[1])) {
				i++
				if s := strings.TrimSpace(lines[i]); s != "" {
					parts = append(parts, s)
				}
			}
			expr = strings.Join(parts, " ")
		}
		out[len(out)-1].expr = expr
	}
	for _, a := range out {
		require.NotEmpty(t, a.expr, "%s: alert %s has no expr", path, a.name)
	}
	return out
}

var seriesNameRe = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// seriesNames are the metric names an expression selects.
func seriesNames(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range seriesNameRe.FindAllStringSubmatch(expr, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// alertsCopy writes the rules of path with every range selector made
// alertWindow and every `for:` 0s, so each alert can fire within the test.
func alertsCopy(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := regexp.MustCompile(`\[\d+[smhd]\]`).ReplaceAllString(string(b), "["+alertWindow+"]")
	s = regexp.MustCompile(`(?m)^(\s*)for:\s*\S+\s*$`).ReplaceAllString(s, "${1}for: 0s")
	out := filepath.Join(tempDir(t), "alerts.yml")
	require.NoError(t, os.WriteFile(out, []byte(s), 0o600))
	return out
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// badTokens sends n gateway requests with a token that is not one.
func badTokens(t *testing.T, p ports, n int) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", p.health, gatewayapi.RouteStatus), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
}

// flood publishes gossip through gw as w from four workers until enough()
// or within has passed, and returns how many were published.
func flood(ctx context.Context, gw *client.Client, w walletKey, enough func() bool, within time.Duration) int64 {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var sent atomic.Int64
	var wg sync.WaitGroup
	payload := bytes.Repeat([]byte("flood "), 700)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := gw.Publish(ctx, "chat", w.did, w.key, "text/plain", payload); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	for ctx.Err() == nil && !enough() {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	return sent.Load()
}

// equivocate has w sign two transfers with the same seq and submits one to
// each gateway at once, until some entry is quarantined on A and on every
// one of others. A node that already holds one twin refuses the other
// unless it wins, so an attempt may end with one twin only; then it tries
// again on the next seq.
func equivocate(t *testing.T, ctx context.Context, dirA, dirB string, gwA, gwB *client.Client, w, to1, to2 walletKey, cur ledger.CurrencyID, others []*daemon) {
	t.Helper()
	quarantined := func(dir string) bool {
		return decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json")).Quarantined > 0
	}
	twin := func(n gatewayapi.Next, to walletKey, memo string) []byte {
		j := gatewayapi.Entry{Author: w.did.String(), Seq: n.Seq, Prev: n.Prev, Parents: n.Parents, Timestamp: time.Now().UnixMilli(),
			Kind: ledger.KindTransfer.String(), Memo: memo, Postings: []gatewayapi.Posting{
				{Account: w.did.String(), Symbol: cur.Symbol, Issuer: cur.Issuer.String(), Units: -100},
				{Account: to.did.String(), Symbol: cur.Symbol, Issuer: cur.Issuer.String(), Units: 100},
			}}
		e, err := j.Ledger()
		require.NoError(t, err)
		block, _, err := ledger.Sign(e, w.key)
		require.NoError(t, err)
		return block
	}
	for attempt := 1; attempt <= 3; attempt++ {
		require.Eventually(t, func() bool {
			ha := decode[controlapi.Head](t, ok(t, dirA, "ledger", "head", "--json"))
			hb := decode[controlapi.Head](t, ok(t, dirB, "ledger", "head", "--json"))
			return ha.StateHash == hb.StateHash
		}, 30*time.Second, 200*time.Millisecond, "A and B never agreed on the ledger")
		n, err := gwA.Next(ctx, w.did)
		require.NoError(t, err)
		b1, b2 := twin(n, to1, fmt.Sprintf("twin a %d", attempt)), twin(n, to2, fmt.Sprintf("twin b %d", attempt))
		var wg sync.WaitGroup
		var err1, err2 error
		wg.Add(2)
		go func() { defer wg.Done(); _, err1 = gwA.Submit(ctx, b1) }()
		go func() { defer wg.Done(); _, err2 = gwB.Submit(ctx, b2) }()
		wg.Wait()
		done := assertEventually(func() bool {
			if !quarantined(dirA) {
				return false
			}
			for _, d := range others {
				if !quarantined(d.dataDir) {
					return false
				}
			}
			return true
		}, 20*time.Second, 200*time.Millisecond)
		if done {
			return
		}
		var ge *client.Error
		require.True(t, err1 == nil || errors.As(err1, &ge), "%v", err1)
		require.True(t, err2 == nil || errors.As(err2, &ge), "%v", err2)
		var counts []int
		for _, dir := range append([]string{dirA}, func() (ds []string) {
			for _, d := range others {
				ds = append(ds, d.dataDir)
			}
			return ds
		}()...) {
			counts = append(counts, decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json")).Quarantined)
		}
		t.Logf("equivocation attempt %d: quarantined on A and the others %v (A: %v, B: %v); again", attempt, counts, err1, err2)
	}
	t.Fatal("no equivocation was ever quarantined")
}

// holdPeerMemory connects a bare libp2p client to the node at addr and
// opens a gossip request stream without sending a request, so the node
// holds the request's memory reservation (in the client's peer scope) until
// the client goes after hold or the node's request timeout.
func holdPeerMemory(t *testing.T, ctx context.Context, addr string, hold time.Duration) {
	t.Helper()
	h, err := libp2p.New(libp2p.Transport(quic.NewTransport), libp2p.NoListenAddrs, libp2p.DisableRelay(), libp2p.DisableMetrics())
	require.NoError(t, err)
	defer h.Close()
	ai, err := peer.AddrInfoFromString(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(ctx, hold+10*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, *ai))
	st, err := h.NewStream(ctx, ai.ID, gossip.ID)
	require.NoError(t, err)
	defer st.Reset()
	// Reading negotiates the protocol, so the node's handler starts; it
	// then waits for a request that never comes.
	_ = st.SetReadDeadline(time.Now().Add(hold))
	_, _ = st.Read(make([]byte, 1))
}
