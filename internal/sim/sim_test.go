package sim

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

func TestSmallNetworkConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := Start(t, Config{Nodes: 5, RTT: 100 * time.Millisecond})
		require.NoError(t, err)
		defer func() { require.NoError(t, nw.Stop()) }()
		for _, n := range nw.Nodes[1:] {
			_, err := n.Dial(context.Background(), controlapi.DialRequest{Addr: nw.Nodes[0].Addr})
			require.NoError(t, err)
		}
		began := time.Now()
		_, err = nw.Nodes[0].CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hours", Decimals: 2, CreditLimit: "100"})
		require.NoError(t, err)
		want := nw.Nodes[0].LedgerHead().StateHash
		for _, n := range nw.Nodes {
			for n.LedgerHead().StateHash != want {
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Logf("converged in %s (virtual)", time.Since(began))
	})
}
