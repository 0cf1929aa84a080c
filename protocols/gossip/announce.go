package gossip

import (
	"encoding/binary"
	"fmt"
)

const (
	// MaxHeads bounds the heads in one announce (and the keys in one request).
	MaxHeads = 512
	// MaxKeyLen bounds one head or request key.
	MaxKeyLen       = 64
	announceVersion = 1
)

// encodeKeys writes version 1, a uvarint count, then each key as a uvarint
// length and its bytes. Announce payloads and request bodies share it.
func encodeKeys(keys [][]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, k := range keys {
		n += binary.MaxVarintLen64 + len(k)
	}
	b := make([]byte, 0, n)
	b = append(b, announceVersion)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}

// decodeKeys parses what encodeKeys writes, strictly.
func decodeKeys(data []byte) ([][]byte, error) {
	if len(data) < 2 {
		return nil, malformed("key list of %d bytes is too short", len(data))
	}
	if data[0] != announceVersion {
		return nil, malformed("key list version %d", data[0])
	}
	r := reader{b: data[1:]}
	count := r.uvarint()
	if r.err == nil && count > MaxHeads {
		return nil, malformed("%d keys; at most %d", count, MaxHeads)
	}
	keys := make([][]byte, 0, min(count, MaxHeads))
	for i := uint64(0); i < count && r.err == nil; i++ {
		l := r.uvarint()
		if r.err == nil && (l == 0 || l > MaxKeyLen) {
			return nil, malformed("key %d is %d bytes; want 1..%d", i, l, MaxKeyLen)
		}
		k := r.next(int(min(l, MaxKeyLen)))
		if r.err == nil {
			keys = append(keys, append([]byte{}, k...))
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, malformed("%d trailing bytes after the keys", len(r.b))
	}
	return keys, nil
}

// encodeAnnounce is the payload of an icn/announce envelope.
func encodeAnnounce(heads [][]byte) ([]byte, error) {
	if len(heads) > MaxHeads {
		return nil, fmt.Errorf("%d heads; at most %d", len(heads), MaxHeads)
	}
	for _, h := range heads {
		if len(h) == 0 || len(h) > MaxKeyLen {
			return nil, fmt.Errorf("head of %d bytes; want 1..%d", len(h), MaxKeyLen)
		}
	}
	return encodeKeys(heads), nil
}

func decodeAnnounce(payload []byte) ([][]byte, error) { return decodeKeys(payload) }
