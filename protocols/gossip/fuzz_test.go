package gossip

import (
	"bytes"
	"testing"
	"time"

	"github.com/intercooperative/icn/did"
)

// FuzzDecodeEnvelope: Decode never panics, never accepts more than the size
// limit, and whatever it accepts re-encodes to exactly the same bytes (so
// every envelope has one encoding and one message ID).
func FuzzDecodeEnvelope(f *testing.F) {
	id, err := did.Generate(time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0}, 300)} {
		e := &Envelope{Author: id.DID, Seq: 42, Timestamp: 1700000000000, Type: TypeText, Payload: p}
		e.Sign(testTopic, id.Sign)
		raw, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Add([]byte{1})
	f.Add(bytes.Repeat([]byte{0x80}, 120))
	const limit = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data, limit)
		if err != nil {
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		if len(data) > limit {
			t.Fatalf("accepted %d bytes over the %d limit", len(data), limit)
		}
		again, err := e.Marshal()
		if err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", data, again)
		}
		_ = e.Verify(testTopic)
	})
}

// FuzzDecodeKeys covers announce payloads and request bodies.
func FuzzDecodeKeys(f *testing.F) {
	f.Add(encodeKeys([][]byte{{1, 2, 3}, bytes.Repeat([]byte{9}, 32)}))
	f.Add(encodeRequest(testTopic, [][]byte{{1}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if keys, err := decodeKeys(data); err == nil {
			if !bytes.Equal(encodeKeys(keys), data) {
				t.Fatal("key list re-encodes differently")
			}
		}
		_, _, _ = decodeRequest(data)
	})
}
