package dashboards

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFixupReplacesOnlyHardCodedUIDs(t *testing.T) {
	src := []byte(`{
  "annotations": {"list": [{"datasource": {"type": "grafana", "uid": "-- Grafana --"}}]},
  "panels": [
    {"datasource": {"type": "prometheus", "uid": "abc123"}, "targets": [{"datasource": {"type": "prometheus", "uid": "abc123"}}]},
    {"datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}},
    {"datasource": "$ds"}
  ],
  "templating": {"list": [{"name": "ds", "type": "datasource", "query": "prometheus", "current": {"value": "zzz9"}}]}
}`)
	out, replaced, err := Fixup(src, "icn-prometheus")
	require.NoError(t, err)
	require.Equal(t, []string{"abc123", "zzz9"}, replaced)
	s := string(out)
	require.NotContains(t, s, "abc123")
	require.NotContains(t, s, "zzz9")
	require.Equal(t, 3, strings.Count(s, `"icn-prometheus"`))
	require.Contains(t, s, `"${DS_PROMETHEUS}"`)
	require.Contains(t, s, `"-- Grafana --"`)
	require.Contains(t, s, `"$ds"`)

	again, replaced, err := Fixup(out, "icn-prometheus")
	require.NoError(t, err)
	require.Empty(t, replaced, "a fixed dashboard needs no second fix")
	require.Equal(t, out, again)
}

func TestFixupRejectsInvalidJSON(t *testing.T) {
	_, _, err := Fixup([]byte(`{"panels": [`), "icn-prometheus")
	require.ErrorContains(t, err, "not valid JSON")
}

// TestCommittedCopiesMatchModule fails when configs/grafana/dashboards/libp2p
// differs from what `make dashboards` writes from the go-libp2p version in
// go.mod: after a go-libp2p upgrade, run `make dashboards` and commit.
func TestCommittedCopiesMatchModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/libp2p/go-libp2p").Output()
	require.NoError(t, err, "go list -m github.com/libp2p/go-libp2p")
	modDir := strings.TrimSpace(string(out))
	require.NotEmpty(t, modDir, "go-libp2p is not in the module cache: go mod download github.com/libp2p/go-libp2p")

	want, fixed, err := Render(filepath.Join(modDir, "dashboards"), DatasourceUID)
	require.NoError(t, err)
	require.Contains(t, want, "swarm.json")
	require.Contains(t, want, "resource-manager.json")
	require.Contains(t, fixed, "host-addrs.json", "go-libp2p's host-addrs dashboard hard-codes a UID; if it no longer does, drop this line")

	committed := filepath.Join("..", "..", "configs", "grafana", "dashboards", "libp2p")
	files, err := filepath.Glob(filepath.Join(committed, "*.json"))
	require.NoError(t, err)
	var have []string
	for _, f := range files {
		have = append(have, filepath.Base(f))
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	require.Equal(t, names, have, "the committed libp2p dashboards are not the module's set: run `make dashboards` and commit")
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(committed, n))
		require.NoError(t, err)
		require.True(t, string(want[n]) == string(b), "%s differs from what `make dashboards` writes from %s: run `make dashboards` and commit", n, modDir)
	}
}

func TestSyncRemovesStaleDashboards(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "a"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a", "a.json"), []byte(`{"panels": [{"datasource": {"uid": "hard"}}]}`), 0o444))
	dst := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst, "gone.json"), []byte(`{}`), 0o644))

	fixed, err := Sync(src, dst, "icn-prometheus")
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"a.json": {"hard"}}, fixed)
	_, err = os.Stat(filepath.Join(dst, "gone.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	b, err := os.ReadFile(filepath.Join(dst, "a.json"))
	require.NoError(t, err)
	require.JSONEq(t, `{"panels": [{"datasource": {"uid": "icn-prometheus"}}]}`, string(b))

	_, err = Sync(t.TempDir(), dst, "icn-prometheus")
	require.ErrorContains(t, err, "no dashboards in")
}
