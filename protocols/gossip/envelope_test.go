package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

const testTopic = "icn/test/chat:general"

func testIdentity(t testing.TB) *did.Identity {
	t.Helper()
	id, err := did.Generate(time.Now())
	require.NoError(t, err)
	return id
}

func signedEnvelope(t testing.TB, id *did.Identity, topic string, seq uint64, typ string, payload []byte) (*Envelope, []byte) {
	t.Helper()
	e := &Envelope{Author: id.DID, Seq: seq, Timestamp: uint64(time.Now().UnixMilli()), Type: typ, Payload: payload}
	e.Sign(topic, id.Sign)
	raw, err := e.Marshal()
	require.NoError(t, err)
	return e, raw
}

func TestEnvelopeRoundTripAndVerify(t *testing.T) {
	id := testIdentity(t)
	for _, payload := range [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{0xff}, 70_000)} {
		e, raw := signedEnvelope(t, id, testTopic, 1<<40+3, TypeBinary, payload)
		got, err := Decode(raw, 1<<20)
		require.NoError(t, err)
		require.Equal(t, e.Author, got.Author)
		require.Equal(t, e.Seq, got.Seq)
		require.Equal(t, e.Timestamp, got.Timestamp)
		require.Equal(t, e.Type, got.Type)
		require.Equal(t, payload, got.Payload)
		require.NoError(t, got.Verify(testTopic))
		again, err := got.Marshal()
		require.NoError(t, err)
		require.Equal(t, raw, again, "encoding is deterministic")
		require.Equal(t, IDOf(raw), IDOf(again))
	}
}

func TestEnvelopeWireLayout(t *testing.T) {
	id := testIdentity(t)
	e := &Envelope{Author: id.DID, Seq: 300, Timestamp: 5, Type: "text/plain", Payload: []byte("hi")}
	e.Sign(testTopic, id.Sign)
	raw, err := e.Marshal()
	require.NoError(t, err)
	want := []byte{1}
	want = append(want, id.DID.PublicKey()...)
	want = append(want, 0xac, 0x02) // 300
	want = append(want, 5)
	want = append(want, 10)
	want = append(want, "text/plain"...)
	want = append(want, 2, 'h', 'i')
	want = append(want, e.Signature...)
	require.Equal(t, want, raw)

	sb := e.SigningBytes(testTopic)
	require.True(t, bytes.HasPrefix(sb, []byte("icn-gossip-envelope-v1\x00")))
	require.True(t, bytes.HasSuffix(sb, raw[:len(raw)-ed25519.SignatureSize]))
	require.Contains(t, string(sb), testTopic)
}

func TestEnvelopeSignatureBindsTopicAndFields(t *testing.T) {
	id := testIdentity(t)
	other := testIdentity(t)
	e, _ := signedEnvelope(t, id, testTopic, 7, TypeText, []byte("pay 5"))
	require.NoError(t, e.Verify(testTopic))
	require.Error(t, e.Verify("icn/test/chat:other"), "replayed onto another topic")
	require.Error(t, e.Verify("icn/othernet/chat:general"), "replayed onto another network")

	for name, mutate := range map[string]func(*Envelope){
		"seq":       func(e *Envelope) { e.Seq++ },
		"timestamp": func(e *Envelope) { e.Timestamp++ },
		"type":      func(e *Envelope) { e.Type = TypeBinary },
		"payload":   func(e *Envelope) { e.Payload = []byte("pay 500") },
		"author":    func(e *Envelope) { e.Author = other.DID },
		"signature": func(e *Envelope) { e.Signature = append([]byte{}, e.Signature...); e.Signature[0] ^= 1 },
	} {
		c := *e
		mutate(&c)
		require.Error(t, c.Verify(testTopic), name)
	}
	// Signed by someone else's key, claiming id as author.
	forged := *e
	forged.Sign(testTopic, other.Sign)
	require.Error(t, forged.Verify(testTopic))
}

func TestDecodeRejects(t *testing.T) {
	id := testIdentity(t)
	e := &Envelope{Author: id.DID, Seq: 1, Timestamp: 5, Type: TypeText, Payload: []byte("x")}
	e.Sign(testTopic, id.Sign)
	raw, err := e.Marshal()
	require.NoError(t, err)
	keyEnd := 1 + ed25519.PublicKeySize // then seq (1 byte), timestamp (1 byte), type length

	overlongSeq := append([]byte{}, raw[:keyEnd]...)
	overlongSeq = append(overlongSeq, 0x81, 0x00) // 1, not in shortest form
	overlongSeq = append(overlongSeq, raw[keyEnd+1:]...)

	zeroSeq := append([]byte{}, raw...)
	zeroSeq[keyEnd] = 0

	badVersion := append([]byte{}, raw...)
	badVersion[0] = 2

	zeroKey := append([]byte{}, raw...)
	copy(zeroKey[1:keyEnd], make([]byte, 32))

	lowOrder := append([]byte{}, raw...)
	lowOrder[1] = 1
	copy(lowOrder[2:keyEnd], make([]byte, 31)) // the identity point

	typeAt := keyEnd + 2
	spaceType := append([]byte{}, raw...)
	spaceType[typeAt+1] = ' '

	for name, data := range map[string][]byte{
		"empty":         nil,
		"short":         raw[:10],
		"truncated":     raw[:len(raw)-1],
		"trailing":      append(append([]byte{}, raw...), 0),
		"version":       badVersion,
		"overlong seq":  overlongSeq,
		"zero seq":      zeroSeq,
		"zero key":      zeroKey,
		"low-order key": lowOrder,
		"space in type": spaceType,
		"garbage":       bytes.Repeat([]byte{0xAB}, 200),
		"payload length": func() []byte {
			b := append([]byte{}, raw[:typeAt+1+len(TypeText)]...)
			return binary.AppendUvarint(b, 1<<40)
		}(),
	} {
		_, err := Decode(data, 1<<20)
		var de *DecodeError
		require.ErrorAs(t, err, &de, name)
		require.False(t, de.Oversize, name)
	}
	_, err = Decode(raw, len(raw)-1)
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	require.True(t, de.Oversize)
}

func TestMarshalRefusesIncomplete(t *testing.T) {
	id := testIdentity(t)
	for name, e := range map[string]*Envelope{
		"no author":    {Seq: 1, Type: TypeText, Signature: make([]byte, 64)},
		"zero seq":     {Author: id.DID, Type: TypeText, Signature: make([]byte, 64)},
		"no type":      {Author: id.DID, Seq: 1, Signature: make([]byte, 64)},
		"long type":    {Author: id.DID, Seq: 1, Type: strings.Repeat("a", 65), Signature: make([]byte, 64)},
		"not signed":   {Author: id.DID, Seq: 1, Type: TypeText},
		"control type": {Author: id.DID, Seq: 1, Type: "a\nb", Signature: make([]byte, 64)},
	} {
		_, err := e.Marshal()
		require.Error(t, err, name)
	}
}

func TestCheckTopic(t *testing.T) {
	for _, ok := range []string{"ledger:hours", "chat:general", "trust:attestations", "é", strings.Repeat("a", 128)} {
		require.NoError(t, CheckTopic(ok), ok)
	}
	for _, bad := range []string{"", "a/b", "has space", "tab\t", "nl\n", strings.Repeat("a", 129), "\xff", "\u200b"} {
		require.Error(t, CheckTopic(bad), "%q", bad)
	}
	require.Equal(t, "icn/icn-default/ledger:hours", WireTopic("icn-default", "ledger:hours"))
}

func TestMessageIDHex(t *testing.T) {
	id := IDOf([]byte("x"))
	back, err := ParseMessageID(id.String())
	require.NoError(t, err)
	require.Equal(t, id, back)
	_, err = ParseMessageID("abc")
	require.Error(t, err)
}

func TestAnnounceKeys(t *testing.T) {
	heads := [][]byte{bytes.Repeat([]byte{1}, 32), {2}, bytes.Repeat([]byte{3}, 64)}
	p, err := encodeAnnounce(heads)
	require.NoError(t, err)
	got, err := decodeAnnounce(p)
	require.NoError(t, err)
	require.Equal(t, heads, got)
	_, err = encodeAnnounce([][]byte{{}})
	require.Error(t, err)
	_, err = encodeAnnounce([][]byte{make([]byte, 65)})
	require.Error(t, err)
	for _, bad := range [][]byte{nil, {1}, {2, 0}, {1, 1, 0}, {1, 1, 2, 9}, append(p, 0), binary.AppendUvarint([]byte{1}, MaxHeads+1)} {
		_, err := decodeAnnounce(bad)
		require.Error(t, err, "%x", bad)
	}
	w, keys, err := decodeRequest(encodeRequest(testTopic, heads))
	require.NoError(t, err)
	require.Equal(t, testTopic, w)
	require.Equal(t, heads, keys)
}

func TestPayloadTypes(t *testing.T) {
	tys, err := newTypes(map[string]PayloadCheck{"icn/ledger-entry": nil})
	require.NoError(t, err)
	require.NoError(t, tys.check(TypeText, []byte("héllo")))
	require.Error(t, tys.check(TypeText, []byte{0xff}))
	require.NoError(t, tys.check(TypeJSON, []byte(`{"a":1}`)))
	require.Error(t, tys.check(TypeJSON, []byte(`{`)))
	require.NoError(t, tys.check(TypeBinary, []byte{0xff}))
	require.NoError(t, tys.check("icn/ledger-entry", []byte{0}))
	require.ErrorIs(t, tys.check("video/mp4", nil), errUnknownType)
	_, err = newTypes(map[string]PayloadCheck{TypeText: nil})
	require.Error(t, err, "built-in types cannot be replaced")
	_, err = newTypes(map[string]PayloadCheck{"bad type": nil})
	require.Error(t, err)
}
