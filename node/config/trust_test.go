package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrustDefaults(t *testing.T) {
	c := Default()
	require.Equal(t, TrustOpen, c.Trust.Mode)
	require.Equal(t, []string{"isolated", "known", "partner", "federated"}, TrustClassNames())
	require.Equal(t, RateLimiting{MessagesPerSecond: 10, Burst: 2}, c.Trust.RateLimits.Isolated)
	require.Equal(t, RateLimiting{MessagesPerSecond: 200, Burst: 50}, c.Trust.RateLimits.Federated)
	require.Equal(t, 0.1, c.MinConnectScore(), "known starts at 0.1")
}

// network.min_trust_threshold, the reference implementation's key, sets
// the connect bar by score when given.
func TestMinTrustThreshold(t *testing.T) {
	c, err := Parse([]byte("[network]\nmin_trust_threshold = 0.55\n[trust]\nmode = \"trusted\"\nmin_connect_class = \"federated\"\n"))
	require.NoError(t, err)
	require.Equal(t, 0.55, c.MinConnectScore())
	c, err = Parse([]byte("[trust]\nmin_connect_class = \"partner\"\n"))
	require.NoError(t, err)
	require.Equal(t, 0.4, c.MinConnectScore())
}

func TestTrustBadValuesNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		body, key, contains string
	}{
		{"[trust]\nmode = \"closed\"", "trust.mode", `"closed" is not one of open, trusted`},
		{"[trust]\nmin_connect_class = \"friend\"", "trust.min_connect_class", "isolated, known, partner, federated"},
		{"[trust]\nmin_ledger_class = \"knwon\"", "trust.min_ledger_class", "is not one of"},
		{"[trust]\nmin_gossip_class = \"\"", "trust.min_gossip_class", "is not one of"},
		{"[trust.rate_limits.known]\nmessages_per_second = 0.0", "trust.rate_limits.known.messages_per_second", "0 is not above 0"},
		{"[trust.rate_limits.partner]\nburst = 0", "trust.rate_limits.partner.burst", "0 is not from 1"},
		{"[network]\nmin_trust_threshold = 1.5", "network.min_trust_threshold", "1.5 is not from 0 to 1"},
		{"[network]\nmin_trust_threshold = -0.1", "network.min_trust_threshold", "is not from 0 to 1"},
		{"[trust]\nbogus = 1", "trust.bogus", "unknown key"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			_, err := Parse([]byte(tc.body + "\n"))
			var ce *Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.key, ce.Key, "%v", err)
			require.Contains(t, err.Error(), tc.contains)
		})
	}
}
