package streams

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// Errors of the parse over data that arrived are violations; errors the
// transport returned are not, whatever the parse makes of them.
func TestReaderTellsViolationsFromTransportFailures(t *testing.T) {
	parse := func(r io.Reader) error {
		br := bufio.NewReader(r)
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		_, err = io.ReadFull(br, make([]byte, n))
		return err
	}
	timeout := errors.New("i/o timeout")
	for name, tc := range map[string]struct {
		r         io.Reader
		violation bool
	}{
		"overflowing varint":  {strings.NewReader("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), true},
		"ends cleanly early":  {strings.NewReader("\x05ab"), true},
		"ends before a byte":  {strings.NewReader(""), true},
		"transport fails":     {io.MultiReader(strings.NewReader("\x05ab"), iotest.ErrReader(timeout)), false},
		"fails straight away": {iotest.ErrReader(timeout), false},
	} {
		in := NewReader(tc.r)
		err := parse(in)
		require.Error(t, err, name)
		require.Equal(t, tc.violation, in.Violation(err), "%s: %v", name, err)
		if !tc.violation {
			require.ErrorIs(t, in.Failed(), timeout, name)
		}
	}
	in := NewReader(strings.NewReader("\x02ab"))
	require.NoError(t, parse(in))
	require.False(t, in.Violation(nil))
	require.NoError(t, in.Failed())
}
