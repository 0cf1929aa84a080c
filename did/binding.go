package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// bindingDomain separates binding signatures from any other use of the DID key.
const bindingDomain = "icn-binding-v1\n"

// MaxBindingSize is the largest JSON binding record [UnmarshalBinding] accepts.
const MaxBindingSize = 4 << 10

// Binding says: the holder of DID's key authorises PeerID as its node key, as of Seq.
//
// In JSON the DID and peer ID are plain strings ("did:icn:z...", "12D3...")
// and the signature is standard base64.
type Binding struct {
	DID       DID     `json:"did"`
	PeerID    peer.ID `json:"peer_id"`
	Seq       uint64  `json:"seq"`
	CreatedAt int64   `json:"created_at"` // unix seconds
	Signature []byte  `json:"signature"`  // Ed25519 by the DID key over SigningBytes
}

// NewBinding returns a binding of the DID of didKey to pid, signed by didKey.
func NewBinding(didKey ed25519.PrivateKey, pid peer.ID, seq uint64, createdAt time.Time) (Binding, error) {
	if len(didKey) != ed25519.PrivateKeySize {
		return Binding{}, fmt.Errorf("DID private key is %d bytes, want %d", len(didKey), ed25519.PrivateKeySize)
	}
	d, err := FromPublicKey(didKey.Public().(ed25519.PublicKey))
	if err != nil {
		return Binding{}, fmt.Errorf("DID private key: %w", err)
	}
	if err := validatePeerID(pid); err != nil {
		return Binding{}, err
	}
	b := Binding{DID: d, PeerID: pid, Seq: seq, CreatedAt: createdAt.Unix()}
	b.Signature = ed25519.Sign(didKey, b.SigningBytes())
	return b, nil
}

// SigningBytes returns the canonical, domain-separated bytes the signature
// covers:
//
//	"icn-binding-v1\n" + did + "\n" + peer_id + "\n" + seq + "\n" + created_at
//
// with seq and created_at in decimal. None of the fields can contain a
// newline, so the encoding is unambiguous.
func (b Binding) SigningBytes() []byte {
	var buf bytes.Buffer
	buf.WriteString(bindingDomain)
	buf.WriteString(b.DID.String())
	buf.WriteByte('\n')
	buf.WriteString(b.PeerID.String())
	buf.WriteByte('\n')
	buf.WriteString(strconv.FormatUint(b.Seq, 10))
	buf.WriteByte('\n')
	buf.WriteString(strconv.FormatInt(b.CreatedAt, 10))
	return buf.Bytes()
}

// Verify checks that the binding names a DID and a well-formed peer ID and
// that its signature was made by the DID key.
func (b Binding) Verify() error {
	if b.DID.IsZero() {
		return errors.New("binding has no DID")
	}
	if err := validatePeerID(b.PeerID); err != nil {
		return err
	}
	if len(b.Signature) == 0 {
		return errors.New("binding is not signed")
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("binding signature is %d bytes, want %d", len(b.Signature), ed25519.SignatureSize)
	}
	if !b.DID.Verify(b.SigningBytes(), b.Signature) {
		return fmt.Errorf("binding signature is not valid for %s", b.DID)
	}
	return nil
}

// Marshal returns the JSON form of the binding.
func (b Binding) Marshal() ([]byte, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal binding: %w", err)
	}
	return data, nil
}

// UnmarshalBinding parses a JSON binding strictly (no unknown fields, no
// trailing data, at most [MaxBindingSize] bytes) and verifies its signature
// before returning it.
func UnmarshalBinding(data []byte) (Binding, error) {
	if len(data) > MaxBindingSize {
		return Binding{}, fmt.Errorf("binding is %d bytes, limit is %d", len(data), MaxBindingSize)
	}
	var b Binding
	if err := strictUnmarshal(data, &b); err != nil {
		return Binding{}, fmt.Errorf("parse binding: %w", err)
	}
	if err := b.Verify(); err != nil {
		return Binding{}, err
	}
	return b, nil
}

// Newer reports whether b supersedes o: a higher Seq wins; for equal Seq the
// later CreatedAt wins; for equal CreatedAt the lexicographically larger
// peer ID string wins, so the order is deterministic. Identical bindings are
// not newer than each other.
func (b Binding) Newer(o Binding) bool {
	if b.Seq != o.Seq {
		return b.Seq > o.Seq
	}
	if b.CreatedAt != o.CreatedAt {
		return b.CreatedAt > o.CreatedAt
	}
	return b.PeerID.String() > o.PeerID.String()
}

// validatePeerID checks that pid is a non-empty, well-formed multihash.
func validatePeerID(pid peer.ID) error {
	if pid == "" {
		return errors.New("peer ID is empty")
	}
	if _, err := peer.IDFromBytes([]byte(pid)); err != nil {
		return fmt.Errorf("peer ID is not a valid multihash: %w", err)
	}
	return nil
}

// strictUnmarshal decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
