package configs

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/dashboards"
)

// provisionedUIDs reads the datasource UIDs, and their types, from the
// Grafana datasource provisioning file.
func provisionedUIDs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "provisioning", "datasources", "prometheus.yml"))
	require.NoError(t, err)
	uidRe := regexp.MustCompile(`(?m)^\s+uid:\s*"?([^"\s#]+)"?`)
	typeRe := regexp.MustCompile(`(?m)^\s+type:\s*"?([^"\s#]+)"?`)
	uids, types := uidRe.FindAllStringSubmatch(string(b), -1), typeRe.FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, uids, "the datasource provisioning file names no uid: give the datasource a fixed uid")
	require.Len(t, types, len(uids), "every provisioned datasource needs a uid and a type")
	out := map[string]string{}
	for i := range uids {
		out[uids[i][1]] = types[i][1]
	}
	return out
}

func TestProvisionedDatasourceIsTheDashboardsUID(t *testing.T) {
	require.Equal(t, "prometheus", provisionedUIDs(t)[dashboards.DatasourceUID],
		"grafana/provisioning/datasources/prometheus.yml must provision a prometheus datasource with uid %s", dashboards.DatasourceUID)
}

// TestDashboardsReferenceOnlyProvisionedDatasources walks every dashboard
// under configs/grafana: each datasource a panel, a target or a datasource
// variable names is a provisioned one, one of Grafana's own, or a datasource
// variable of the same dashboard whose plugin is provisioned.
func TestDashboardsReferenceOnlyProvisionedDatasources(t *testing.T) {
	uids := provisionedUIDs(t)
	types := map[string]bool{}
	for _, ty := range uids {
		types[ty] = true
	}
	var n int
	err := filepath.WalkDir("grafana", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		n++
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		dash, err := dashboards.Parse(b)
		require.NoError(t, err, path)
		for name, q := range dash.DatasourceVars {
			require.True(t, types[q], "%s: datasource variable %s wants plugin %q, which no datasource provisions", path, name, q)
		}
		for _, r := range dash.Refs {
			if dashboards.IsBuiltin(r.UID) {
				continue
			}
			if v, ok := dashboards.IsVariable(r.UID); ok {
				_, isDS := dash.DatasourceVars[v]
				require.True(t, isDS, "%s: datasource %q names no datasource variable of the dashboard", path, r.UID)
				continue
			}
			_, ok := uids[r.UID]
			require.True(t, ok, "%s: datasource uid %q is not provisioned (provisioned: %v); use %s or a datasource variable, or run `make dashboards`", path, r.UID, uids, dashboards.DatasourceUID)
		}
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 11, "expected the ICN dashboard and go-libp2p's under grafana/")
}

// icnPanel is what TestICNDashboard reads of a panel.
type icnPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

var (
	// selectorRe finds a series selector: a metric name and its matchers.
	selectorRe = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	// metricRe finds the metric names the ICN dashboard reads.
	metricRe = regexp.MustCompile(`\b((?:icn|libp2p)_[a-z0-9_]+|up)\b`)
	// rangeRe finds range selectors.
	rangeRe = regexp.MustCompile(`\[([^\]]*)\]`)
)

// TestICNDashboard checks the ICN dashboard's structure: unique panel IDs,
// panels that do not overlap, every query on the dashboard's datasource
// variable, scoped to job "icn" and the $instance variable, with
// $__rate_interval for its ranges; the guide's Key Metrics and the
// ledger-sync, quarantine, gateway and trust series each on a panel; and
// every icn_* name it reads documented in docs/metrics.md.
func TestICNDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "icn-dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []icnPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	require.NoError(t, err)

	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		require.NotZero(t, p.ID, "panel %q has no id", p.Title)
		prev, dup := ids[p.ID]
		require.False(t, dup, "panels %q and %q share id %d", prev, p.Title, p.ID)
		ids[p.ID] = p.Title
		g := p.GridPos
		require.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q: gridPos %+v is outside the 24 columns", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				other, ok := taken[cell{x, y}]
				require.False(t, ok, "panels %q and %q overlap at x=%d y=%d", other, p.Title, x, y)
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			e := tg.Expr
			require.Equal(t, "${datasource}", tg.Datasource.UID, "panel %q: %s", p.Title, e)
			sels := selectorRe.FindAllStringSubmatch(e, -1)
			require.NotEmpty(t, sels, "panel %q: %s has no series selector", p.Title, e)
			for _, s := range sels {
				require.Contains(t, s[2], `job="icn"`, "panel %q: %s must select job=\"icn\"", p.Title, s[0])
				require.Contains(t, s[2], `instance=~"$instance"`, "panel %q: %s must follow the Node variable (instance=~\"$instance\")", p.Title, s[0])
			}
			for _, m := range metricRe.FindAllStringIndex(e, -1) {
				require.True(t, m[1] < len(e) && e[m[1]] == '{', "panel %q: %s in %s has no selector: scope it to job and $instance", p.Title, e[m[0]:m[1]], e)
				name := e[m[0]:m[1]]
				used[name] = true
				if base, ok := strings.CutSuffix(name, "_bucket"); ok && strings.HasPrefix(name, "icn_") {
					name = base
				}
				if strings.HasPrefix(name, "icn_") {
					require.Contains(t, string(doc), "`"+name, "panel %q reads %s, which docs/metrics.md does not document", p.Title, name)
				}
			}
			for _, r := range rangeRe.FindAllStringSubmatch(e, -1) {
				require.Equal(t, "$__rate_interval", r[1], "panel %q: %s: use [$__rate_interval], which follows the scrape interval and the zoom", p.Title, e)
			}
		}
	}
	for _, m := range []string{
		// The deployment guide's Key Metrics.
		"icn_network_connections_total", "icn_network_connections_active", "icn_network_messages_rate_limited_total",
		"icn_network_messages_received_total",
		"icn_gossip_announces_received_total", "icn_gossip_requests_received_total", "icn_gossip_entries_total", "icn_gossip_subscriptions_total",
		"icn_ledger_transactions_total", "icn_ledger_accounts_total", "icn_ledger_currencies_total",
		// Ledger, sync, quarantine.
		"icn_ledger_entries_accepted", "icn_ledger_sync_lag_entries", "icn_ledger_sync_last_success_timestamp_seconds",
		"icn_ledger_entries_quarantined", "icn_ledger_entries_pending",
		// Gateway.
		"icn_gateway_requests_total", "icn_gateway_request_duration_seconds_bucket", "icn_gateway_auth_failures_total", "icn_gateway_sse_streams",
		// Trust.
		"icn_trust_edges_total", "icn_trust_attestations_received_total", "icn_network_connections_rejected_untrusted_total",
		"icn_ledger_entries_refused_untrusted_total", "icn_network_messages_rate_limited_by_class_total",
	} {
		require.True(t, used[m], "no panel of the ICN dashboard shows %s", m)
	}
}
