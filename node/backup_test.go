package node_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/ledgertest"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/car"
	"github.com/intercooperative/icn/node/controlapi"
)

// A backup taken over the control socket while the node pays restores, on
// a node that never saw the ledger, to the state the backup reported.
func TestBackupWhilePayingRestoresElsewhere(t *testing.T) {
	nodes := harness.Start(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	_, err := a.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "hours", CreditLimit: "100000"})
	require.NoError(t, err)
	for i := 0; i < 50; i++ {
		pay(t, a, b, "1", "hours")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.Client.Pay(ctx, controlapi.PayRequest{To: b.Identity.DID.String(), Amount: "1", Currency: "hours"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf bytes.Buffer
	var calls int
	rep, err := a.Client.Backup(ctx, &buf, func(done, total int) {
		calls++
		require.LessOrEqual(t, done, total)
	})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep.Entries, 51)
	require.Equal(t, int64(buf.Len()), rep.Bytes)
	require.Positive(t, calls)
	require.Len(t, rep.Heads, 1)

	c := harness.Start(t, 1)[0]
	res, err := c.Client.Restore(ctx, &buf, rep.Entries, nil)
	require.NoError(t, err)
	require.Equal(t, rep.Entries, res.Read)
	require.Equal(t, rep.Entries, res.New)
	require.Equal(t, rep.StateHash, res.StateHash)
	require.Equal(t, rep.Heads, c.LedgerHead().Heads)
}

// Restore counts every refusal and lists the first ten: blocks altered in
// the archive (caught by their CIDs) and blocks that are well-formed but
// badly signed (caught by the node).
func TestRestoreRefusals(t *testing.T) {
	n := harness.Start(t, 1)[0]
	ctx := context.Background()
	blocks := ledgertest.History(t, 3, 30)
	var buf bytes.Buffer
	w, err := car.NewWriter(&buf, nil)
	require.NoError(t, err)
	for i, bl := range blocks {
		c := ledger.BlockCID(bl)
		switch {
		case i%3 == 1 && i < 10: // altered after its CID was taken (3 blocks)
			bl = append([]byte(nil), bl...)
			bl[len(bl)-1] ^= 1
		case i%3 == 2: // re-addressed: the CID matches, the signature does not (10)
			bl = append([]byte(nil), bl...)
			bl[len(bl)-1] ^= 1
			c = ledger.BlockCID(bl)
		}
		require.NoError(t, w.Write(c, bl))
	}
	require.NoError(t, w.Close())
	res, err := n.Client.Restore(ctx, &buf, 0, nil)
	require.NoError(t, err)
	require.Equal(t, 30, res.Read)
	require.Equal(t, 17, res.New)
	require.Equal(t, 13, res.Refused)
	require.Len(t, res.Refusals, 10)
	var mismatch, signature int
	for _, r := range res.Refusals {
		_, err := cid.Decode(r.CID)
		require.NoError(t, err)
		switch {
		case bytes.Contains([]byte(r.Reason), []byte("does not match its CID")):
			mismatch++
		case bytes.Contains([]byte(r.Reason), []byte("signature")):
			signature++
		default:
			t.Errorf("unexpected reason %q", r.Reason)
		}
	}
	require.Equal(t, 3, mismatch)
	require.Equal(t, 7, signature, fmt.Sprint(res.Refusals))
}
