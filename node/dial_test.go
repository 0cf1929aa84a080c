package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDialFailureReason(t *testing.T) {
	cases := map[string]error{
		"timeout":          fmt.Errorf("dial: %w", context.DeadlineExceeded),
		"refused":          errors.New("CRYPTO_ERROR (remote): CONNECTION_REFUSED (remote)"),
		"resource_limit":   errors.New("resource limit exceeded"),
		"gated":            errors.New("gater disallows connection to peer"),
		"unreachable":      errors.New("no good addresses"),
		"peer_id_mismatch": errors.New("peer id mismatch: expected X, but remote key matches Y"),
		"other":            errors.New("something else"),
	}
	for want, err := range cases {
		require.Equal(t, want, dialFailureReason(err), err.Error())
	}
}
