// Command libp2p-dashboards copies go-libp2p's Grafana dashboards into
// configs/grafana/dashboards/libp2p and points the ones that hard-code a
// datasource UID at the provisioned Prometheus datasource. `make dashboards`
// runs it with -src set to the go-libp2p module named in go.mod.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/intercooperative/icn/internal/dashboards"
)

func main() {
	src := flag.String("src", "", "go-libp2p's dashboards/ directory (go list -m -f '{{.Dir}}' github.com/libp2p/go-libp2p)/dashboards")
	dst := flag.String("dst", "configs/grafana/dashboards/libp2p", "where to write the dashboards")
	flag.Parse()
	if *src == "" {
		fmt.Fprintln(os.Stderr, "libp2p-dashboards: error: -src is required")
		fmt.Fprintln(os.Stderr, "libp2p-dashboards: hint: run `make dashboards`, which finds it from go.mod")
		os.Exit(2)
	}
	fixed, err := dashboards.Sync(*src, *dst, dashboards.DatasourceUID)
	if err != nil {
		fmt.Fprintf(os.Stderr, "libp2p-dashboards: error: %v\n", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(fixed))
	for n := range fixed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("%s: datasource UID %s replaced with %s\n", n, strings.Join(fixed[n], ", "), dashboards.DatasourceUID)
	}
}
