// Package did owns ICN decentralized identifiers, binding records and the age-encrypted keystore.
//
// An ICN DID has the form "did:icn:z" followed by the base58btc (bitcoin
// alphabet) encoding of a raw 32-byte Ed25519 public key, with no multicodec
// prefix; the "z" is the multibase prefix for base58btc. The DID key signs
// binding records that authorise a libp2p node key (see [Binding]). Freshly
// generated identities use the DID key as the node key, so the DID converts
// to a peer ID without any lookup ([DID.PeerID]).
package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"filippo.io/edwards25519"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
)

// Prefix is the fixed prefix of every ICN DID: the method "did:icn:" and the
// multibase prefix "z" (base58btc).
const Prefix = "did:icn:z"

const (
	// base58Alphabet is the bitcoin base58 alphabet used by base58btc.
	base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	// maxEncodedKeyLen bounds the base58 text we are willing to decode. A
	// 32-byte key needs at most 44 characters; a little slack lets errors
	// report the decoded length for near misses.
	maxEncodedKeyLen = 128
	// maxEchoLen bounds how much of a rejected input is echoed in errors.
	maxEchoLen = 80
)

// DID is an ICN decentralized identifier: an Ed25519 public key. The zero
// value is the "no DID" value; see [DID.IsZero].
//
// DIDs are comparable with ==.
type DID struct {
	key [ed25519.PublicKeySize]byte
}

// Parse parses the textual form of a DID strictly: the input must start with
// exactly [Prefix], contain no whitespace, decode as base58btc to exactly 32
// bytes, and those bytes must be the canonical encoding of a point on the
// Ed25519 curve that is not one of the eight low-order points.
func Parse(s string) (DID, error) {
	fail := func(format string, args ...any) (DID, error) {
		return DID{}, fmt.Errorf("invalid DID %q: %s", echo(s), fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return fail("contains whitespace")
	}
	if !strings.HasPrefix(s, Prefix) {
		return fail("must start with %q", Prefix)
	}
	enc := s[len(Prefix):]
	if enc == "" {
		return fail("key is missing after %q", Prefix)
	}
	for _, r := range enc {
		if r > 127 || strings.IndexByte(base58Alphabet, byte(r)) < 0 {
			return fail("not base58: invalid character %q", r)
		}
	}
	if len(enc) > maxEncodedKeyLen {
		return fail("key is too long (%d base58 characters)", len(enc))
	}
	raw, err := base58.Decode(enc)
	if err != nil {
		return fail("not base58: %v", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return fail("key is %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	var d DID
	copy(d.key[:], raw)
	if err := checkKey(d.key); err != nil {
		return fail("%v", err)
	}
	return d, nil
}

// FromPublicKey returns the DID of an Ed25519 public key. It fails if the key
// is not 32 bytes, not a canonically encoded curve point, or a low-order
// point.
func FromPublicKey(pub ed25519.PublicKey) (DID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return DID{}, fmt.Errorf("ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	var d DID
	copy(d.key[:], pub)
	if err := checkKey(d.key); err != nil {
		return DID{}, err
	}
	return d, nil
}

// FromLibp2pKey returns the DID of a libp2p public key, which must be Ed25519.
func FromLibp2pKey(pub crypto.PubKey) (DID, error) {
	if pub == nil {
		return DID{}, errors.New("libp2p public key is nil")
	}
	if pub.Type() != crypto.Ed25519 {
		return DID{}, fmt.Errorf("libp2p key type %s is not Ed25519", pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return DID{}, fmt.Errorf("reading libp2p public key: %w", err)
	}
	return FromPublicKey(raw)
}

// FromPeerID returns the DID whose key is embedded in an Ed25519 peer ID
// (identity multihash). Peer IDs of other key types, and peer IDs that only
// hash their key, are rejected.
func FromPeerID(id peer.ID) (DID, error) {
	if id == "" {
		return DID{}, errors.New("peer ID is empty")
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return DID{}, fmt.Errorf("peer ID %s does not embed a public key: %w", id, err)
	}
	d, err := FromLibp2pKey(pub)
	if err != nil {
		return DID{}, fmt.Errorf("peer ID %s: %w", id, err)
	}
	return d, nil
}

// String returns the textual form "did:icn:z...", or "" for the zero DID.
func (d DID) String() string {
	if d.IsZero() {
		return ""
	}
	return Prefix + base58.Encode(d.key[:])
}

// IsZero reports whether d is the zero DID (no identifier).
func (d DID) IsZero() bool {
	return d == DID{}
}

// PublicKey returns a copy of the Ed25519 public key, or nil for the zero DID.
func (d DID) PublicKey() ed25519.PublicKey {
	if d.IsZero() {
		return nil
	}
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	copy(pub, d.key[:])
	return pub
}

// Libp2pPublicKey returns the key as a libp2p public key, or nil for the
// zero DID.
func (d DID) Libp2pPublicKey() crypto.PubKey {
	if d.IsZero() {
		return nil
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(d.PublicKey())
	if err != nil { // unreachable: the length is always 32
		return nil
	}
	return pub
}

// PeerID returns the peer ID derived from the DID key: the node's peer ID
// before any key rotation. It returns "" for the zero DID.
func (d DID) PeerID() peer.ID {
	pub := d.Libp2pPublicKey()
	if pub == nil {
		return ""
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil { // unreachable for Ed25519 keys
		return ""
	}
	return id
}

// Verify reports whether sig is a valid Ed25519 signature of msg by the DID
// key. It is always false for the zero DID.
func (d DID) Verify(msg, sig []byte) bool {
	if d.IsZero() || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(d.key[:], msg, sig)
}

// MarshalText implements encoding.TextMarshaler. The zero DID marshals to
// empty text so optional JSON fields work.
func (d DID) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using [Parse]. Empty
// text yields the zero DID.
func (d *DID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*d = DID{}
		return nil
	}
	parsed, err := Parse(string(text))
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// echo shortens s for inclusion in error messages.
func echo(s string) string {
	if len(s) <= maxEchoLen {
		return s
	}
	return s[:maxEchoLen-3] + "..."
}

// checkKey rejects byte strings that are not usable Ed25519 public keys:
// non-points, non-canonical encodings and the eight low-order points (which
// no real key pair produces, and one of which is the all-zero encoding that
// would collide with the zero DID).
func checkKey(key [ed25519.PublicKeySize]byte) error {
	if !isCanonicalPoint(key) {
		return errors.New("not a valid Ed25519 public key")
	}
	if isLowOrder(key) {
		return errors.New("not a valid Ed25519 public key (low-order point)")
	}
	return nil
}

// isLowOrder reports whether b is the canonical encoding of one of the eight
// points of order dividing 8 (checked against filippo.io/edwards25519's
// MultByCofactor). The curve group is Z/8 x Z/l, so the list is complete.
func isLowOrder(b [ed25519.PublicKeySize]byte) bool {
	switch hex.EncodeToString(b[:]) {
	case "0100000000000000000000000000000000000000000000000000000000000000", // identity
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85": // order 8
		return true
	}
	return false
}

// isCanonicalPoint reports whether b is the canonical encoding of a point on
// the Ed25519 curve (RFC 8032 section 5.1.3). filippo.io/edwards25519's
// SetBytes decodes any valid point but also accepts non-canonical encodings
// (y >= p, or x = 0 with the sign bit set); re-encoding and comparing rejects
// those, so that each point has exactly one DID.
func isCanonicalPoint(b [ed25519.PublicKeySize]byte) bool {
	pt, err := new(edwards25519.Point).SetBytes(b[:])
	if err != nil {
		return false
	}
	return bytes.Equal(pt.Bytes(), b[:])
}
