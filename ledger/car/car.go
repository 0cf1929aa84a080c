// Package car reads and writes ledger backups as CARv1 archives (the IPFS
// "content-addressable archive" format): a DAG-CBOR header naming root CIDs,
// then each block as varint(len(cid)+len(block)) ‖ cid ‖ block. Other CAR
// tools can read these files (ipfs dag import, go-car); this package reads
// only what it writes plus any CARv1 whose sections fit its limits.
//
// Errors: a malformed archive is an error wrapping ErrMalformed; a block
// whose bytes do not hash to its CID wraps ErrHashMismatch. Reader.Next
// returns io.EOF at a clean end and io.ErrUnexpectedEOF inside a section.
package car

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// Limits on what a Reader accepts. Ledger blocks are at most a few KiB.
const (
	MaxHeaderSize  = 4 << 20
	MaxSectionSize = 1 << 20
)

var (
	// ErrMalformed means the bytes are not a CARv1 archive within limits.
	ErrMalformed = errors.New("not a valid CARv1 archive")
	// ErrHashMismatch means a block's bytes do not hash to its CID.
	ErrHashMismatch = errors.New("block does not match its CID")
)

// cidTag is the CBOR tag of a CID in DAG-CBOR.
const cidTag = 42

type header struct {
	Roots   []cbor.RawTag `cbor:"roots"`
	Version uint64        `cbor:"version"`
}

// Writer writes an archive. Close flushes it; the underlying writer is not
// closed.
type Writer struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
}

// NewWriter writes the header with roots and returns a Writer for the
// blocks.
func NewWriter(w io.Writer, roots []cid.Cid) (*Writer, error) {
	tags := make([]cbor.Tag, len(roots))
	for i, r := range roots {
		tags[i] = cbor.Tag{Number: cidTag, Content: append([]byte{0}, r.Bytes()...)}
	}
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		return nil, err
	}
	h, err := em.Marshal(struct {
		Roots   []cbor.Tag `cbor:"roots"`
		Version uint64     `cbor:"version"`
	}{tags, 1})
	if err != nil {
		return nil, fmt.Errorf("encode CAR header: %w", err)
	}
	cw := &Writer{w: bufio.NewWriterSize(w, 64<<10)}
	if err := cw.section(h); err != nil {
		return nil, err
	}
	return cw, nil
}

func (w *Writer) section(parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if _, err := w.w.Write(w.buf[:binary.PutUvarint(w.buf[:], uint64(n))]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// Write appends a block stored under c.
func (w *Writer) Write(c cid.Cid, block []byte) error {
	return w.section(c.Bytes(), block)
}

// Close flushes what is buffered.
func (w *Writer) Close() error { return w.w.Flush() }

// Reader reads an archive block by block.
type Reader struct {
	r     *bufio.Reader
	roots []cid.Cid
	buf   []byte
}

// NewReader reads the header.
func NewReader(r io.Reader) (*Reader, error) {
	cr := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	h, err := cr.section(MaxHeaderSize)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty", ErrMalformed)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: the header is cut short", ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("CAR header: %w", err)
	}
	var hd header
	if err := cbor.Unmarshal(h, &hd); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if hd.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrMalformed, hd.Version)
	}
	for _, t := range hd.Roots {
		var b []byte
		if t.Number != cidTag || cbor.Unmarshal(t.Content, &b) != nil || len(b) < 2 || b[0] != 0 {
			return nil, fmt.Errorf("%w: a root is not a CID", ErrMalformed)
		}
		c, err := cid.Cast(b[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: root: %v", ErrMalformed, err)
		}
		cr.roots = append(cr.roots, c)
	}
	return cr, nil
}

// Roots are the root CIDs the header names.
func (r *Reader) Roots() []cid.Cid { return r.roots }

// section reads one varint-prefixed section into r.buf.
func (r *Reader) section(limit int) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n == 0 || n > uint64(limit) {
		return nil, fmt.Errorf("%w: a section of %d bytes (the limit is %d)", ErrMalformed, n, limit)
	}
	if uint64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, unexpected(err)
	}
	return r.buf, nil
}

// uvarint reads a section length: io.EOF before its first byte, and
// ErrMalformed for a varint longer than 64 bits.
func (r *Reader) uvarint() (uint64, error) {
	var x uint64
	for i := 0; ; i++ {
		b, err := r.r.ReadByte()
		if err != nil {
			if i > 0 {
				return 0, unexpected(err)
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, fmt.Errorf("%w: a section length overflows 64 bits", ErrMalformed)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, nil
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Skip passes over the next block without reading its CID or checking it,
// for counting an archive's blocks. At the end it returns io.EOF.
func (r *Reader) Skip() error {
	_, err := r.section(MaxSectionSize)
	return err
}

// Next returns the next block and its CID, having checked that the block
// hashes to it. The block is a fresh copy. At the end it returns io.EOF.
func (r *Reader) Next() (cid.Cid, []byte, error) {
	s, err := r.section(MaxSectionSize)
	if err != nil {
		return cid.Undef, nil, err
	}
	n, c, err := cid.CidFromReader(bytes.NewReader(s))
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: a block's CID: %v", ErrMalformed, err)
	}
	block := bytes.Clone(s[n:])
	got, err := c.Prefix().Sum(block)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: block %s: %v", ErrMalformed, c, err)
	}
	if !got.Equals(c) {
		return c, nil, fmt.Errorf("%w: block %s hashes to %s", ErrHashMismatch, c, got)
	}
	return c, block, nil
}
