package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gateway/client"
)

// The gateway against the control socket, on the same node in the same
// run (docs/gateway.md, "Performance"):
//
//	for i in 1 2 3; do go test -run '^$' -bench 'Balances|Entries' -benchtime 3s ./node/gateway/; done
//
// Three runs of -count 1 rather than one of -count 3, which would run all
// three rounds of one sub-benchmark before the next: here each gateway
// figure is measured seconds after its control counterpart, on the same
// node, and each run starts a fresh node.
//
// benchWorkers is a fixed number of concurrent clients, the same for every
// sub-benchmark, rather than b.RunParallel: RunParallel's goroutine count
// follows GOMAXPROCS (2 on a small node, so the numbers would not compare
// across machines) and it hands iterations out in an order no goroutine
// owns, while a member's pre-signed entries must go in seq order, one chain
// per client. Four independent clients (four apps, or four icnctl calls)
// is a modest, fixed load on any machine.
const benchWorkers = 4

// benchCurrency has a credit limit far beyond any run's length (one unit a
// payment), so no payment is refused.
const (
	benchCurrency    = "bench"
	benchCreditLimit = "1000000000000"
)

// runWorkers runs op b.N times, split evenly over benchWorkers goroutines
// (op(w, i) is worker w's i-th call), times only that, and reports the
// rate as unit/s and the CPU time the whole process (clients, server and
// node: all in this process) used per call. On a shared machine the rate
// follows what the neighbours do; the CPU per call hardly does, and when
// the node is CPU-bound it is what the rate would be on an idle one.
func runWorkers(b *testing.B, unit string, op func(ctx context.Context, w, i int) error) {
	b.Helper()
	ctx := context.Background()
	errs := make(chan error, benchWorkers)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu := cpuTime(b)
	for w := range benchWorkers {
		n := share(b.N, w)
		wg.Go(func() {
			for i := range n {
				if err := op(ctx, w, i); err != nil {
					errs <- fmt.Errorf("worker %d, call %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	used := cpuTime(b) - cpu
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// share is worker w's part of n calls.
func share(n, w int) int {
	s := n / benchWorkers
	if w < n%benchWorkers {
		s++
	}
	return s
}

// benchNode starts a node with the bench currency and a gateway over it,
// and returns a gateway client factory whose clients share one transport
// that keeps a connection per worker alive (the default keeps 2, so 4
// workers would dial a new TCP connection every few requests: not what a
// long-lived app does).
func benchNode(b *testing.B) (*harness.Node, *gw, func(token string) *client.Client) {
	b.Helper()
	n := harness.Start(b, 1)[0]
	g := startGateway(b, n)
	_, err := n.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: benchCurrency, CreditLimit: benchCreditLimit})
	require.NoError(b, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = benchWorkers
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return n, g, func(token string) *client.Client {
		c := client.New(g.url, hc)
		c.SetToken(token)
		return c
	}
}

// BenchmarkBalances reads one DID's balance in one currency: through the
// gateway (HTTP on loopback, a member's token parsed and checked on every
// request, the JSON page decoded by the Go client) and over the control
// socket (controlapi.Client, a fresh unix connection a request as icnctl
// makes them).
func BenchmarkBalances(b *testing.B) {
	n, _, newClient := benchNode(b)
	ctx := context.Background()
	// A ledger with some accounts, so the read filters a real list.
	members := make([]member, 20)
	for i := range members {
		members[i] = newMember(b)
		_, err := n.Pay(ctx, controlapi.PayRequest{To: members[i].DID.String(), Amount: fmt.Sprint(i + 1), Currency: benchCurrency})
		require.NoError(b, err)
	}
	who := members[6]
	const want = "7"

	clients := make([]*client.Client, benchWorkers)
	for w := range clients {
		clients[w] = newClient("")
		_, err := clients[w].Login(ctx, who.DID, who.Key)
		require.NoError(b, err)
	}
	check := func(bs []controlapi.Balance, err error) error {
		if err != nil {
			return err
		}
		if len(bs) != 1 || bs[0].Balance != want {
			return fmt.Errorf("balances %+v, want one of %s", bs, want)
		}
		return nil
	}
	b.Run("gateway", func(b *testing.B) {
		runWorkers(b, "req", func(ctx context.Context, w, _ int) error {
			return check(clients[w].Balances(ctx, who.DID, benchCurrency))
		})
	})
	b.Run("control", func(b *testing.B) {
		runWorkers(b, "req", func(ctx context.Context, _, _ int) error {
			return check(n.Client.Balances(ctx, who.DID.String(), benchCurrency))
		})
	})
}

// BenchmarkEntries makes durable payments (each stored with a synced
// write before its answer): over the control socket (the node signs),
// through the gateway as members' own pre-signed entries (CBOR), and
// through the gateway as the node (POST /v1/ledger/pay with an admin
// token: the same operation as the control socket's).
func BenchmarkEntries(b *testing.B) {
	n, g, newClient := benchNode(b)
	ctx := context.Background()
	payee := newMember(b)
	pay := controlapi.PayRequest{To: payee.DID.String(), Amount: "1", Currency: benchCurrency}
	accepted := func(e controlapi.Entry, err error) error {
		if err != nil {
			return err
		}
		if e.Status != ledger.StatusAccepted.String() {
			return fmt.Errorf("entry %s is %s (%s)", e.CID, e.Status, e.Reason)
		}
		return nil
	}

	b.Run("control", func(b *testing.B) {
		runWorkers(b, "entries", func(ctx context.Context, _, _ int) error {
			return accepted(n.Client.Pay(ctx, pay))
		})
	})

	// One member a worker, each submitting its own chain in seq order.
	members := make([]member, benchWorkers)
	clients := make([]*client.Client, benchWorkers)
	for w := range members {
		members[w] = newMember(b)
		clients[w] = newClient("")
		_, err := clients[w].Login(ctx, members[w].DID, members[w].Key)
		require.NoError(b, err)
	}
	cur := ledger.CurrencyID{Symbol: benchCurrency, Issuer: n.DID()}
	b.Run("gateway-entries", func(b *testing.B) {
		chains := make([][][]byte, benchWorkers)
		for w, m := range members {
			chains[w] = signChain(b, clients[w], m, cur, payee, share(b.N, w))
		}
		runWorkers(b, "entries", func(ctx context.Context, w, i int) error {
			s, err := clients[w].Submit(ctx, chains[w][i])
			if err == nil && s.Duplicate {
				return fmt.Errorf("entry %s was already stored", s.CID)
			}
			return accepted(s.Entry, err)
		})
	})

	admin := newClient(g.token(newMember(b).DID, auth.ScopeAdmin))
	b.Run("gateway-pay", func(b *testing.B) {
		runWorkers(b, "entries", func(ctx context.Context, _, _ int) error {
			return accepted(admin.PayAsNode(ctx, pay))
		})
	})
}

// signChain signs m's next k transfers of one unit to payee, in order:
// the first carries the seq, prev and parents Next reports, each later
// one the next seq with the one before as prev (and no other parents, so
// the chain stays valid whatever other authors write meanwhile).
func signChain(b *testing.B, c *client.Client, m member, cur ledger.CurrencyID, payee member, k int) [][]byte {
	b.Helper()
	nx, err := c.Next(context.Background(), m.DID)
	require.NoError(b, err)
	var prev cid.Cid
	if nx.Prev != "" {
		prev, err = cid.Decode(nx.Prev)
		require.NoError(b, err)
	}
	var parents []cid.Cid
	for _, p := range nx.Parents {
		pc, err := cid.Decode(p)
		require.NoError(b, err)
		parents = append(parents, pc)
	}
	chain := make([][]byte, k)
	for i := range chain {
		e := &ledger.Entry{Author: m.DID, Seq: nx.Seq + uint64(i), Prev: prev, Parents: parents, Timestamp: time.Now().UnixMilli(), Kind: ledger.KindTransfer,
			Postings: []ledger.Posting{{Account: m.DID, Currency: cur, Amount: -1}, {Account: payee.DID, Currency: cur, Amount: 1}}}
		chain[i], prev, err = ledger.Sign(e, m.Key)
		require.NoError(b, err)
		parents = nil
	}
	return chain
}
