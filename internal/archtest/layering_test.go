// Package archtest checks the import rules of docs/architecture.md: the pure
// packages (did, ledger, trust) import neither protocols nor node, protocols import
// no node, and icnctl stays free of libp2p hosts.
package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/intercooperative/icn/"

func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	byPkg := map[string][]string{}
	list, err := exec.Command("go", "list", pattern).Output()
	require.NoError(t, err)
	for _, p := range strings.Fields(string(list)) {
		o, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", p).Output()
		require.NoError(t, err)
		byPkg[p] = strings.Fields(string(o))
	}
	return byPkg
}

func forbid(t *testing.T, pattern string, forbidden ...string) {
	t.Helper()
	for pkg, ds := range deps(t, mod+pattern) {
		for _, d := range ds {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s imports %s (directly or not); the layering forbids it", pkg, d)
				}
			}
		}
	}
}

func TestLayering(t *testing.T) {
	forbid(t, "did/...", mod+"protocols", mod+"node", mod+"ledger")
	forbid(t, "protocols/...", mod+"node")
	// The ledger core does no I/O: no network, no disk, no libp2p host.
	forbid(t, "ledger", mod+"protocols", mod+"node", "github.com/libp2p/go-libp2p/p2p", "github.com/ipfs/go-datastore")
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", mod+"ledger").Output()
	require.NoError(t, err)
	for _, imp := range strings.Fields(string(out)) {
		switch imp {
		case "os", "net", "net/http", "time", "io/fs", "path/filepath":
			t.Errorf("ledger imports %s itself; the core must stay free of I/O and clocks", imp)
		}
	}
	// The trust core is as pure as the ledger's: it takes the time as an
	// argument (so it imports time for the type) and never reads a clock.
	forbid(t, "trust", mod+"protocols", mod+"node", mod+"ledger", "github.com/libp2p/go-libp2p/p2p", "github.com/ipfs/go-datastore")
	out, err = exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", mod+"trust").Output()
	require.NoError(t, err)
	for _, imp := range strings.Fields(string(out)) {
		switch {
		case imp == "os", imp == "net", imp == "io/fs", imp == "path/filepath", strings.HasPrefix(imp, "net/"),
			strings.HasPrefix(imp, "github.com/libp2p/"):
			t.Errorf("trust imports %s; the core must stay free of I/O and networking", imp)
		}
	}
	files, err := filepath.Glob("../../trust/*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, clock := range []string{"time.Now(", "time.Since(", "time.Until("} {
			if strings.Contains(string(src), clock) {
				t.Errorf("%s calls %s: the trust core takes the time as an argument", f, clock)
			}
		}
	}
	// icnctl talks to the daemon through node/controlapi only.
	forbid(t, "cmd/icnctl", "github.com/libp2p/go-libp2p/p2p/host/basic", mod+"protocols")
	forbid(t, "node/controlapi", "github.com/libp2p/go-libp2p")
}
