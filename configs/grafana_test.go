package configs

import (
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
