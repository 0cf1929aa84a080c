package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// The chaos suite (chaos_test.go, TestChaosKill9DuringPayments in
// ledger_test.go) drives real daemons through faults. Each scenario is
// bounded in count and time; ICN_CHAOS_ROUNDS and ICN_CHAOS_PARTITION make
// the long runs of `make bench` (docs/benchmarks.md, Chaos).

// chaosRounds is ICN_CHAOS_ROUNDS, else def (2 under -short).
func chaosRounds(t *testing.T, def int) int {
	t.Helper()
	if v := os.Getenv("ICN_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "ICN_CHAOS_ROUNDS")
		require.Positive(t, n, "ICN_CHAOS_ROUNDS")
		return n
	}
	if testing.Short() {
		return min(def, 2)
	}
	return def
}

// chaosDuration is the duration in the environment variable env, else def.
func chaosDuration(t *testing.T, env string, def time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, env)
		return d
	}
	return def
}

// load pays from a daemon in several goroutines until stopped, going on
// through errors (a full disk, a restart, a rotation): it keeps the CIDs
// acknowledged and counts the errors by HTTP status (0: no answer).
type load struct {
	mu      sync.Mutex
	acked   []string
	errs    map[int]int
	lastErr error
	stopc   chan struct{}
	wg      sync.WaitGroup
}

func startLoad(t *testing.T, dir, to, currency, memo string, workers int) *load {
	return startLoadEvery(t, dir, to, currency, memo, workers, 0)
}

// startLoadEvery is startLoad with each worker waiting gap between
// payments.
func startLoadEvery(t *testing.T, dir, to, currency, memo string, workers int, gap time.Duration) *load {
	l := &load{errs: map[int]int{}, stopc: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := controlapi.NewClient(controlapi.SocketPath(dir))
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				e, err := c.Pay(ctx, controlapi.PayRequest{To: to, Amount: "1", Currency: currency, Memo: memo})
				cancel()
				l.mu.Lock()
				if err == nil {
					l.acked = append(l.acked, e.CID)
				} else {
					var ce *controlapi.Error
					status := 0
					if errors.As(err, &ce) {
						status = ce.Status
					}
					l.errs[status]++
					l.lastErr = err
				}
				l.mu.Unlock()
				wait := gap
				if err != nil {
					// Not a hot loop against a daemon that is away.
					wait = max(gap, 20*time.Millisecond)
				}
				if wait > 0 {
					select {
					case <-l.stopc:
						return
					case <-time.After(wait):
					}
				}
			}
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// errorsWith is how many payments failed with HTTP status (0: no answer).
func (l *load) errorsWith(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[status]
}

func (l *load) lastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// stop stops paying and returns the CIDs acknowledged; it may be called
// more than once.
func (l *load) stop() []string {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

// checkLedger requires of the daemon on dir that every acknowledged entry
// is in the history of the node's DID or of one of accounts, and accepted;
// that `ledger verify` is clean and that each currency's balances sum to
// zero. It returns the head.
func checkLedger(t *testing.T, dir string, acked []string, what string, accounts ...string) controlapi.Head {
	t.Helper()
	have := map[string]string{}
	for _, args := range append([][]string{{}}, wrapEach(accounts)...) {
		hist := decode[[]controlapi.Entry](t, ok(t, dir, append(append([]string{"ledger", "history"}, args...), "--json")...))
		for _, e := range hist {
			have[e.CID] = e.Status
		}
	}
	for _, c := range acked {
		st, found := have[c]
		require.True(t, found, "%s: acknowledged entry %s lost", what, c)
		require.Equal(t, "accepted", st, "%s: entry %s", what, c)
	}
	rep := decode[controlapi.VerifyReport](t, ok(t, dir, "ledger", "verify", "--json"))
	require.True(t, rep.OK, "%s: %s", what, strings.Join(rep.Problems, "; "))
	sums := map[string]int64{}
	for _, b := range decode[[]controlapi.Balance](t, ok(t, dir, "ledger", "balance", "--json")) {
		sums[b.Currency+"@"+b.Issuer] += b.Units
	}
	for cur, sum := range sums {
		require.Zero(t, sum, "%s: balances in %s do not sum to zero", what, cur)
	}
	head := decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json"))
	require.Equal(t, rep.StateHash, head.StateHash, what)
	return head
}

func wrapEach(ss []string) [][]string {
	out := make([][]string, len(ss))
	for i, s := range ss {
		out[i] = []string{s}
	}
	return out
}

// headOf is a daemon's ledger head, or false when it does not answer; safe
// inside require.Eventually.
func headOf(t *testing.T, dir string) (controlapi.Head, bool) {
	r := ctl(t, dir, "ledger", "head", "--json")
	if r.code != 0 {
		return controlapi.Head{}, false
	}
	var h controlapi.Head
	if json.Unmarshal([]byte(r.stdout), &h) != nil {
		return controlapi.Head{}, false
	}
	return h, true
}

// converged says whether every daemon answers with the same state hash
// over at least entries entries.
func converged(t *testing.T, dirs []string, entries int) bool {
	var hash string
	for i, dir := range dirs {
		h, ok := headOf(t, dir)
		if !ok || h.Entries < entries || (i > 0 && h.StateHash != hash) {
			return false
		}
		hash = h.StateHash
	}
	return true
}

// goroutines is the daemon's go_goroutines gauge.
func goroutines(t *testing.T, d *daemon) float64 {
	t.Helper()
	code, metrics := d.get("/metrics")
	require.Equal(t, 200, code)
	return metricValue(t, metrics, "go_goroutines")
}

// chatter publishes on a gossip topic of a daemon every gap until stopped,
// going on through errors; it counts what was published and what failed.
type chatter struct {
	mu        sync.Mutex
	published int
	failed    int
	stopc     chan struct{}
	done      chan struct{}
}

func startChatter(t *testing.T, dir, topic string, gap time.Duration) *chatter {
	c := &chatter{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		cl := controlapi.NewClient(controlapi.SocketPath(dir))
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := cl.GossipPublish(ctx, controlapi.GossipPublishRequest{Topic: topic, Data: []byte("chatter " + strconv.Itoa(i))})
			cancel()
			c.mu.Lock()
			if err == nil {
				c.published++
			} else {
				c.failed++
			}
			c.mu.Unlock()
			select {
			case <-c.stopc:
				return
			case <-time.After(gap):
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *chatter) counts() (published, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.published, c.failed
}

func (c *chatter) stop() {
	select {
	case <-c.stopc:
	default:
		close(c.stopc)
	}
	<-c.done
}

// receives waits until the subscriber prints a line holding text.
func (s *subscriber) receives(t *testing.T, text string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-s.lines:
			require.True(t, ok, "subscriber exited: %s", s.stderr)
			if strings.Contains(l, text) {
				return
			}
		case <-deadline:
			t.Fatalf("no message with %q within %s; stderr: %s", text, within, s.stderr)
		}
	}
}
