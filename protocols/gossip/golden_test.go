package gossip

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// Golden vectors of the gossip envelope: a fixed message, its signing bytes,
// its encoding and its message ID, as literal hex.
//
// How they were produced: the author is the RFC 8032 section 7.1 TEST 1
// key; the message is seq 300 (a two-byte varint), timestamp
// 1700000000123, type text/plain, payload "hello, co-op", on the wire
// topic icn/icn-default/chat:general. Sign was run on it (Ed25519 is
// deterministic) and SigningBytes, Marshal and IDOf printed. The signing
// bytes read as: the domain "icn-gossip-envelope-v1\x00", the topic's
// length (0x1c) and the topic, then the body (version 0x01, the 32-byte
// author key, seq, timestamp, type length and type, payload length and
// payload); the encoding is the body and the 64-byte signature.
//
// A failure here is a break of the envelope format: peers running another
// build would refuse every message (bad signature or malformed), and
// message IDs, which GossipSub deduplicates on, would differ. Do not update
// the vectors to make it pass; a deliberate change needs a new
// EnvelopeVersion and signature domain.
const (
	goldenEnvelopeSeed  = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	goldenEnvelopeTopic = "icn/icn-default/chat:general"

	goldenEnvelopeSigning = "69636e2d676f737369702d656e76656c6f70652d763100" + // "icn-gossip-envelope-v1\x00"
		"1c" + "69636e2f69636e2d64656661756c742f636861743a67656e6572616c" + // topic
		"01" + "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" + // version, author
		"ac02" + "fbd095ffbc31" + // seq 300, timestamp 1700000000123
		"0a" + "746578742f706c61696e" + // type
		"0c" + "68656c6c6f2c20636f2d6f70" // payload
	goldenEnvelopeEncoded = "01d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" +
		"ac02fbd095ffbc310a746578742f706c61696e0c68656c6c6f2c20636f2d6f70" +
		"64a15763c41cd4a946baac2f2d1369a4fb0e6979fe756bd486445d71c65da48f" + // signature
		"4e4d41c104bfbe922c18952b694ee44ecee01c164483ab645f19fc2afdb3010e"
	goldenEnvelopeID = "5158b8c0b672e90885d07febdf49554c6232944f904c5ee7a6a0cd35aa12c56a"
)

func TestGoldenEnvelope(t *testing.T) {
	seed, err := hex.DecodeString(goldenEnvelopeSeed)
	require.NoError(t, err)
	key := ed25519.NewKeyFromSeed(seed)
	author, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.Equal(t, goldenEnvelopeTopic, WireTopic("icn-default", "chat:general"))

	e := &Envelope{Author: author, Seq: 300, Timestamp: 1_700_000_000_123, Type: TypeText, Payload: []byte("hello, co-op")}
	require.Equal(t, goldenEnvelopeSigning, hex.EncodeToString(e.SigningBytes(goldenEnvelopeTopic)), "the signing bytes changed: the format broke")
	e.Sign(goldenEnvelopeTopic, func(m []byte) []byte { return ed25519.Sign(key, m) })
	raw, err := e.Marshal()
	require.NoError(t, err)
	require.Equal(t, goldenEnvelopeEncoded, hex.EncodeToString(raw), "the encoding changed: the format broke")
	require.Equal(t, goldenEnvelopeID, IDOf(raw).String())

	// The golden bytes decode to the message and verify on its topic only.
	want, err := hex.DecodeString(goldenEnvelopeEncoded)
	require.NoError(t, err)
	back, err := Decode(want, 1<<10)
	require.NoError(t, err)
	require.Equal(t, e, back)
	require.NoError(t, back.Verify(goldenEnvelopeTopic))
	require.Error(t, back.Verify(WireTopic("icn-default", "chat:other")))
}
