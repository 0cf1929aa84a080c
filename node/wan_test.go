package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUDPBufferAdvice(t *testing.T) {
	read := func(v string, err error) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			require.Equal(t, "/proc/sys/net/core/rmem_max", path)
			return []byte(v), err
		}
	}
	require.Empty(t, udpBufferAdvice(read("", errors.New("no /proc"))), "non-Linux: no advice")
	require.Empty(t, udpBufferAdvice(read("4194304\n", nil)), "4 MiB doubles to 8 MiB: enough")
	require.Empty(t, udpBufferAdvice(read("7500000\n", nil)))
	adv := udpBufferAdvice(read("212992\n", nil)) // the usual distribution default
	require.Contains(t, adv, "sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000")
	require.True(t, strings.Contains(adv, "212992"), adv)
}
