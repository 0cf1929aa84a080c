package car

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/require"
)

func block(i int) ([]byte, cid.Cid) {
	b := []byte(fmt.Sprintf("block %d", i))
	h, err := mh.Sum(b, mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return b, cid.NewCidV1(0x71, h)
}

func archive(t testing.TB, roots []cid.Cid, n int) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, roots)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		b, c := block(i)
		require.NoError(t, w.Write(c, b))
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func readAll(r *Reader) ([]cid.Cid, [][]byte, error) {
	var cs []cid.Cid
	var bs [][]byte
	for {
		c, b, err := r.Next()
		if err == io.EOF {
			return cs, bs, nil
		}
		if err != nil {
			return cs, bs, err
		}
		cs, bs = append(cs, c), append(bs, b)
	}
}

func TestRoundTrip(t *testing.T) {
	_, r1 := block(100)
	_, r2 := block(101)
	for _, roots := range [][]cid.Cid{nil, {r1}, {r1, r2}} {
		data := archive(t, roots, 50)
		r, err := NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		if len(roots) == 0 {
			require.Empty(t, r.Roots())
		} else {
			require.Equal(t, roots, r.Roots())
		}
		cs, bs, err := readAll(r)
		require.NoError(t, err)
		require.Len(t, cs, 50)
		skipped, err := NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		n := 0
		for ; skipped.Skip() == nil; n++ {
		}
		require.Equal(t, 50, n, "Skip passes over every block")
		for i := range cs {
			b, c := block(i)
			require.Equal(t, c, cs[i])
			require.Equal(t, b, bs[i])
		}
	}
}

// The header is the DAG-CBOR map the CARv1 specification gives, written out
// by hand here from the spec: {"roots": [CID], "version": 1} with map keys
// in length-first order and the CID as tag 42 over a byte string with a
// leading zero.
func TestHeaderVector(t *testing.T) {
	_, root := block(7)
	data := archive(t, []cid.Cid{root}, 0)
	cb := root.Bytes()
	want := "a2" + "65" + hex.EncodeToString([]byte("roots")) + "81" + "d82a" + "58" + fmt.Sprintf("%02x", len(cb)+1) + "00" + hex.EncodeToString(cb) +
		"67" + hex.EncodeToString([]byte("version")) + "01"
	n, k := binary.Uvarint(data)
	require.Equal(t, len(want)/2, int(n))
	require.Equal(t, want, hex.EncodeToString(data[k:]))
	require.Len(t, data, k+int(n), "no blocks follow")
}

func TestTruncatedArchives(t *testing.T) {
	_, root := block(7)
	data := archive(t, []cid.Cid{root}, 3)
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	hlen := len(data) - r.r.Buffered()
	for cut := 0; cut < len(data); cut++ {
		r, err := NewReader(bytes.NewReader(data[:cut]))
		if cut < hlen {
			require.Error(t, err, "cut at %d inside the header", cut)
			continue
		}
		require.NoError(t, err)
		cs, _, err := readAll(r)
		switch {
		case err == nil:
			// Only a cut between sections reads cleanly, with fewer blocks.
			require.Less(t, len(cs), 3, "cut at %d", cut)
		default:
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d", cut)
		}
	}
	_, err = NewReader(bytes.NewReader(nil))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestTamperedBlock(t *testing.T) {
	data := archive(t, nil, 3)
	data[len(data)-1] ^= 1
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	cs, _, err := readAll(r)
	require.ErrorIs(t, err, ErrHashMismatch)
	require.Len(t, cs, 2)
}

func TestLimits(t *testing.T) {
	var buf bytes.Buffer
	var v [binary.MaxVarintLen64]byte
	buf.Write(v[:binary.PutUvarint(v[:], MaxHeaderSize+1)])
	_, err := NewReader(&buf)
	require.ErrorIs(t, err, ErrMalformed)

	data := archive(t, nil, 0)
	data = append(data, v[:binary.PutUvarint(v[:], MaxSectionSize+1)]...)
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	_, _, err = r.Next()
	require.ErrorIs(t, err, ErrMalformed)

	for name, h := range map[string]string{
		"not a map":       "01",
		"root not a CID":  "a265726f6f74738101" + "6776657273696f6e01",
		"root tag not 42": "a265726f6f747381d82b420001" + "6776657273696f6e01",
		"version 2":       "a265726f6f7473806776657273696f6e02",
	} {
		hb, err := hex.DecodeString(h)
		require.NoError(t, err)
		in := append(v[:binary.PutUvarint(v[:], uint64(len(hb)))], hb...)
		_, err = NewReader(bytes.NewReader(in))
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

func FuzzReader(f *testing.F) {
	_, root := block(1)
	f.Add(archive(f, nil, 0))
	f.Add(archive(f, []cid.Cid{root}, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		cs, bs, err := readAll(r)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrHashMismatch) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("undocumented error: %v", err)
		}
		// What was read writes back to an archive that reads the same.
		var buf bytes.Buffer
		w, err := NewWriter(&buf, r.Roots())
		require.NoError(t, err)
		for i := range cs {
			require.NoError(t, w.Write(cs[i], bs[i]))
		}
		require.NoError(t, w.Close())
		r2, err := NewReader(&buf)
		require.NoError(t, err)
		cs2, bs2, err := readAll(r2)
		require.NoError(t, err)
		require.Equal(t, len(cs), len(cs2))
		for i := range cs {
			require.True(t, cs[i].Equals(cs2[i]))
			require.Equal(t, bs[i], bs2[i])
		}
	})
}
