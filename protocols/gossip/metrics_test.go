package gossip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/protocols/identity"
)

// icn_gossip_entries_held is what the memory holds now; icn_gossip_entries_total
// counts deliveries since start. Leaving a topic drops its cache from the
// first, never from the second.
func TestEntriesHeldIsAGaugeOfTheMemory(t *testing.T) {
	id := testIdentity(t)
	mem := NewMemory(Config{NetworkID: testNet})
	n := newNodeWith(t, id, newHost(t, id.NodeKey), identity.NewBook(), mem)
	require.NoError(t, RegisterMemoryMetrics(n.reg, mem))
	sub, err := n.svc.Subscribe(chatTopic, 0)
	require.NoError(t, err)
	for i := range 3 {
		_, err := n.svc.Publish(context.Background(), chatTopic, TypeText, fmt.Appendf(nil, "m%d", i))
		require.NoError(t, err)
		recv(t, sub)
	}
	require.Eventually(t, func() bool { return n.svc.Topics()[0].Cached == 3 }, 10*time.Second, 10*time.Millisecond)
	want := func(cache, window int) string {
		return fmt.Sprintf(`
# HELP icn_gossip_entries_held Entries held in the gossip memory now, by store: cache (envelopes in the per-topic caches of recent messages, at most 256 per topic) and replay_window (author and sequence-number records of the replay window). Ledger entries are not included.
# TYPE icn_gossip_entries_held gauge
icn_gossip_entries_held{store="cache"} %d
icn_gossip_entries_held{store="replay_window"} %d
`, cache, window)
	}
	require.NoError(t, testutil.GatherAndCompare(n.reg, strings.NewReader(want(3, 3)), "icn_gossip_entries_held"))
	st := mem.Stats()
	require.Positive(t, st.CachedBytes)
	require.NoError(t, testutil.GatherAndCompare(n.reg, strings.NewReader(fmt.Sprintf(`
# HELP icn_gossip_entries_held_bytes Bytes of the envelopes in the per-topic caches (icn_gossip_entries_held{store="cache"}).
# TYPE icn_gossip_entries_held_bytes gauge
icn_gossip_entries_held_bytes %d
`, st.CachedBytes)), "icn_gossip_entries_held_bytes"))
	require.Equal(t, 3.0, testutil.ToFloat64(n.m.entries))

	require.NoError(t, n.svc.Leave(chatTopic))
	require.NoError(t, testutil.GatherAndCompare(n.reg, strings.NewReader(want(0, 3)), "icn_gossip_entries_held"),
		"the cache goes with the topic; the replay window keeps its records until they age out")
	require.Equal(t, 3.0, testutil.ToFloat64(n.m.entries), "the delivery count never goes down")
}
