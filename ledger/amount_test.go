package ledger

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseAmount(t *testing.T) {
	good := []struct {
		s    string
		dec  uint8
		want int64
	}{
		{"12.50", 2, 1250}, {"12.5", 2, 1250}, {"12", 2, 1200}, {"0.01", 2, 1}, {"0.1", 2, 10},
		{"7", 0, 7}, {"007", 0, 7}, {"1.000000000000000001", 18, 1_000_000_000_000_000_001},
		{"9223372036854775807", 0, math.MaxInt64},
	}
	for _, g := range good {
		got, err := ParseAmount(g.s, g.dec)
		require.NoError(t, err, g.s)
		require.Equal(t, g.want, got, g.s)
	}
	bad := map[string]uint8{"": 2, "-1": 2, "+1": 2, "1.": 2, ".5": 2, "1.234": 2, "1e3": 2, "0": 2, "0.00": 2,
		"12,50": 2, " 1": 2, "1.5": 0, "9223372036854775808": 0, "92233720368547758.08": 2, "NaN": 2}
	for s, dec := range bad {
		_, err := ParseAmount(s, dec)
		require.Error(t, err, "%q", s)
	}
}

func TestFormatAmount(t *testing.T) {
	cases := []struct {
		units int64
		dec   uint8
		want  string
	}{
		{-1250, 2, "-12.50"}, {1250, 2, "12.50"}, {1, 2, "0.01"}, {-1, 2, "-0.01"}, {0, 2, "0.00"},
		{7, 0, "7"}, {math.MinInt64, 0, "-9223372036854775808"}, {5, 3, "0.005"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, FormatAmount(c.units, c.dec))
		if c.units > 0 {
			back, err := ParseAmount(c.want, c.dec)
			require.NoError(t, err)
			require.Equal(t, c.units, back)
		}
	}
}

func FuzzAmount(f *testing.F) {
	f.Add("12.50", uint8(2))
	f.Fuzz(func(t *testing.T, s string, dec uint8) {
		dec %= MaxDecimals + 1
		u, err := ParseAmount(s, dec)
		if err != nil {
			return
		}
		require.Positive(t, u)
		back, err := ParseAmount(FormatAmount(u, dec), dec)
		require.NoError(t, err)
		require.Equal(t, u, back)
	})
}
