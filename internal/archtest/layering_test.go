// Package archtest checks the import rules of docs/architecture.md: the pure
// packages (did, ledger) import neither protocols nor node, protocols import
// no node, and icnctl stays free of libp2p hosts.
package archtest

import (
	"os/exec"
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
	// icnctl talks to the daemon through node/controlapi only.
	forbid(t, "cmd/icnctl", "github.com/libp2p/go-libp2p/p2p/host/basic", mod+"protocols")
	forbid(t, "node/controlapi", "github.com/libp2p/go-libp2p")
}
