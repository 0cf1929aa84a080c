package archtest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// levels orders the module's packages from the bottom (pure, imported by
// everything) to the top (binaries). A package may import packages of its
// own level or below, never one above it: docs/architecture.md draws the
// same picture. The longest matching prefix decides a package's level, and
// a package that matches none fails the test, so a new package must be
// placed.
var levels = []struct {
	level  int
	prefix string
}{
	{0, "internal/version"},
	{0, "internal/passphrase"},
	{0, "internal/testutil"},
	{0, "internal/fsowner"},
	{0, "internal/dashboards"},
	{0, "internal/tracing"},
	{0, "internal/netem"},
	{1, "did"},
	{2, "ledger"},
	{2, "trust"},
	{3, "ledger/store"},
	{4, "protocols"},
	{5, "node/config"},
	{5, "node/controlapi"},
	{5, "node/limits"},
	{5, "node/blocklist"},
	{5, "node/trustgraph"},
	{5, "node/gateway/auth"},
	{5, "node/gateway/client"},
	{5, "node/gatewayapi"},
	{5, "node/revocation"},
	{5, "internal/logging"},
	{5, "configs"},
	{6, "node"},
	{7, "node/controlserver"},
	{7, "node/gateway"},
	{8, "internal/ledgertest"},
	{8, "internal/harness"},
	{8, "internal/sim"},
	{9, "cmd"},
	{9, "examples"},
	{9, "internal/e2e"},
	{9, "internal/archtest"},
}

func levelOf(pkg string) (int, bool) {
	rel := strings.TrimPrefix(pkg, strings.TrimSuffix(mod, "/"))
	rel = strings.TrimPrefix(rel, "/")
	best, lvl := -1, 0
	for _, l := range levels {
		if (rel == l.prefix || strings.HasPrefix(rel, l.prefix+"/")) && len(l.prefix) > best {
			best, lvl = len(l.prefix), l.level
		}
	}
	return lvl, best >= 0
}

func TestNoPackageImportsOneAboveIt(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...").Output()
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := f[0]
		lp, ok := levelOf(pkg)
		if !ok {
			t.Errorf("%s has no level in internal/archtest: place it in levels (and in docs/architecture.md)", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			if li, ok := levelOf(imp); ok && li > lp {
				t.Errorf("%s (level %d) imports %s (level %d): a package never imports one above it", pkg, lp, imp, li)
			}
		}
	}
}
