package gossip

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/intercooperative/icn/did"
)

// EnvelopeVersion is the only envelope encoding version understood.
const EnvelopeVersion = 1

const (
	// MaxTypeLen bounds a payload type name.
	MaxTypeLen = 64
	// signatureDomain separates envelope signatures from every other
	// signature the DID key makes (bindings, ledger entries).
	signatureDomain = "icn-gossip-envelope-v1\x00"
	// minEnvelopeSize is version + author + seq + timestamp + type length + one
	// type byte + payload length + signature.
	minEnvelopeSize = 1 + ed25519.PublicKeySize + 1 + 1 + 1 + 1 + 1 + ed25519.SignatureSize
)

// Envelope is one gossip message as its author signed it.
//
// Wire format (docs/gossip.md), every integer an unsigned LEB128 varint in
// its shortest form:
//
//	version    1 byte, 0x01
//	author     32 bytes, the author DID's Ed25519 public key
//	seq        uvarint, > 0, increasing per author
//	timestamp  uvarint, unix milliseconds
//	type       uvarint length (1..64) + printable ASCII
//	payload    uvarint length + bytes
//	signature  64 bytes, Ed25519 by the author over SigningBytes(topic)
type Envelope struct {
	Author    did.DID
	Seq       uint64
	Timestamp uint64 // unix milliseconds
	Type      string
	Payload   []byte
	Signature []byte
}

// Time is the envelope's timestamp as a time.Time.
func (e *Envelope) Time() time.Time { return time.UnixMilli(int64(e.Timestamp)) }

// appendBody appends everything but the signature.
func (e *Envelope) appendBody(b []byte) []byte {
	b = append(b, EnvelopeVersion)
	b = append(b, e.Author.PublicKey()...)
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendUvarint(b, e.Timestamp)
	b = binary.AppendUvarint(b, uint64(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

func (e *Envelope) bodySize() int {
	return 1 + ed25519.PublicKeySize + uvarintLen(e.Seq) + uvarintLen(e.Timestamp) +
		uvarintLen(uint64(len(e.Type))) + len(e.Type) + uvarintLen(uint64(len(e.Payload))) + len(e.Payload)
}

// SigningBytes is what the author signs: a domain tag, the full wire topic
// (so a message cannot be replayed onto another topic) and the envelope
// without its signature.
func (e *Envelope) SigningBytes(topic string) []byte {
	b := make([]byte, 0, len(signatureDomain)+binary.MaxVarintLen64+len(topic)+e.bodySize())
	b = append(b, signatureDomain...)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	return e.appendBody(b)
}

// Sign sets the signature using sign, which signs with the author's DID key
// (for example (*did.Identity).Sign).
func (e *Envelope) Sign(topic string, sign func([]byte) []byte) {
	e.Signature = sign(e.SigningBytes(topic))
}

// Verify checks the author's signature for topic.
func (e *Envelope) Verify(topic string) error {
	if len(e.Signature) != ed25519.SignatureSize {
		return errors.New("signature is not 64 bytes")
	}
	if !e.Author.Verify(e.SigningBytes(topic), e.Signature) {
		return fmt.Errorf("signature does not verify for author %s on topic %q", e.Author, topic)
	}
	return nil
}

// Marshal encodes the envelope. It checks the fields the decoder checks,
// except the signature's validity.
func (e *Envelope) Marshal() ([]byte, error) {
	if e.Author.IsZero() {
		return nil, errors.New("envelope has no author")
	}
	if e.Seq == 0 {
		return nil, errors.New("envelope seq is 0")
	}
	if err := checkTypeName(e.Type); err != nil {
		return nil, err
	}
	if len(e.Signature) != ed25519.SignatureSize {
		return nil, errors.New("envelope is not signed")
	}
	b := make([]byte, 0, e.bodySize()+ed25519.SignatureSize)
	b = e.appendBody(b)
	return append(b, e.Signature...), nil
}

// DecodeError says why bytes are not an envelope.
type DecodeError struct {
	Oversize bool // the bytes exceed the size limit
	Reason   string
}

func (e *DecodeError) Error() string { return "bad envelope: " + e.Reason }

func malformed(format string, args ...any) error {
	return &DecodeError{Reason: fmt.Sprintf(format, args...)}
}

// Decode parses an envelope strictly: version 1, shortest-form varints,
// a valid author key, a payload type of printable ASCII, lengths that fit,
// no trailing bytes, and at most maxSize bytes in all. The signature is not
// checked (see Verify). The returned envelope's slices do not alias data.
func Decode(data []byte, maxSize int) (*Envelope, error) {
	return decode(data, maxSize, did.FromPublicKey)
}

// decode is Decode with the author key check supplied (the service caches it).
func decode(data []byte, maxSize int, authorOf func(ed25519.PublicKey) (did.DID, error)) (*Envelope, error) {
	if len(data) > maxSize {
		return nil, &DecodeError{Oversize: true, Reason: fmt.Sprintf("%d bytes exceed the %d-byte limit", len(data), maxSize)}
	}
	if len(data) < minEnvelopeSize {
		return nil, malformed("%d bytes is too short", len(data))
	}
	if data[0] != EnvelopeVersion {
		return nil, malformed("unknown version %d", data[0])
	}
	r := reader{b: data[1:]}
	key := r.next(ed25519.PublicKeySize)
	author, err := authorOf(key)
	if err != nil {
		return nil, malformed("author: %v", err)
	}
	e := &Envelope{Author: author}
	e.Seq = r.uvarint()
	e.Timestamp = r.uvarint()
	if r.err == nil && e.Seq == 0 {
		return nil, malformed("seq is 0")
	}
	if r.err == nil && e.Timestamp > 1<<62 {
		return nil, malformed("timestamp out of range")
	}
	typeLen := r.uvarint()
	if r.err == nil && (typeLen == 0 || typeLen > MaxTypeLen) {
		return nil, malformed("type length %d is not 1..%d", typeLen, MaxTypeLen)
	}
	typ := r.next(int(min(typeLen, MaxTypeLen)))
	payloadLen := r.uvarint()
	if r.err == nil && payloadLen > uint64(len(r.b)) {
		return nil, malformed("payload length %d exceeds the %d bytes left", payloadLen, len(r.b))
	}
	payload := r.next(int(min(payloadLen, uint64(len(r.b)))))
	sig := r.next(ed25519.SignatureSize)
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, malformed("%d trailing bytes", len(r.b))
	}
	e.Type = string(typ)
	if err := checkTypeName(e.Type); err != nil {
		return nil, malformed("%v", err)
	}
	e.Payload = append([]byte{}, payload...)
	e.Signature = append([]byte{}, sig...)
	return e, nil
}

// reader consumes a byte slice; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = malformed("truncated: need %d bytes, have %d", n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = malformed("bad varint")
		return 0
	}
	if n != uvarintLen(v) {
		r.err = malformed("varint not in shortest form")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// checkTypeName accepts 1..64 printable ASCII bytes without spaces.
func checkTypeName(t string) error {
	if len(t) == 0 || len(t) > MaxTypeLen {
		return fmt.Errorf("payload type %q is not 1..%d bytes", t, MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= 0x20 || t[i] >= 0x7f {
			return fmt.Errorf("payload type %q has a byte that is not printable ASCII", t)
		}
	}
	return nil
}

// envelopeLen is the length of the envelope at the start of data, found
// from its length fields alone (nothing is checked but that they fit):
// what follows it on GossipSub is the extension block
// (protocols/internal/wiretrace), which is not part of the message ID.
func envelopeLen(data []byte) (int, bool) {
	if len(data) < minEnvelopeSize || data[0] != EnvelopeVersion {
		return 0, false
	}
	i := 1 + ed25519.PublicKeySize
	for k := 0; k < 4; k++ {
		v, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return 0, false
		}
		i += n
		if k >= 2 { // type and payload: a length, then the bytes
			if v > uint64(len(data)-i) {
				return 0, false
			}
			i += int(v)
		}
	}
	i += ed25519.SignatureSize
	if i > len(data) {
		return 0, false
	}
	return i, true
}

// SplitWire splits GossipSub message data into the envelope and the
// extension block that follows it (empty when there is none).
func SplitWire(data []byte) (envelope, ext []byte, ok bool) {
	n, ok := envelopeLen(data)
	if !ok {
		return nil, nil, false
	}
	return data[:n], data[n:], true
}

// MessageID identifies an envelope: the SHA-256 of its encoding (without
// any extension block). It is also the GossipSub message ID.
type MessageID [sha256.Size]byte

// IDOf returns the ID of an encoded envelope.
func IDOf(raw []byte) MessageID { return sha256.Sum256(raw) }

// String is the lowercase hex form.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID parses the hex form.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%q is not a 64-digit hex message ID", s)
	}
	copy(id[:], b)
	return id, nil
}
