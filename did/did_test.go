package did

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
	"github.com/stretchr/testify/require"
)

// newTestKey returns a fresh Ed25519 key pair.
func newTestKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

// encodeDID builds DID text from arbitrary key bytes, bypassing validation.
func encodeDID(key []byte) string {
	return Prefix + base58.Encode(key)
}

// nonPoint is y = 2, which is not on the curve: (y²-1)/(dy²+1) is not a square.
func nonPoint() []byte {
	b := make([]byte, 32)
	b[0] = 2
	return b
}

func TestParseRoundTrip(t *testing.T) {
	for i := 0; i < 20; i++ {
		pub, _ := newTestKey(t)
		d, err := FromPublicKey(pub)
		require.NoError(t, err)
		s := d.String()
		require.True(t, strings.HasPrefix(s, Prefix))
		parsed, err := Parse(s)
		require.NoError(t, err)
		require.Equal(t, d, parsed)
		require.Equal(t, s, parsed.String())
		require.Equal(t, pub, parsed.PublicKey())
	}
}

func TestParseErrors(t *testing.T) {
	pub, _ := newTestKey(t)
	valid := encodeDID(pub)
	suffix := valid[len(Prefix):]

	yEqualsP := make([]byte, 32) // 2^255-19, little endian: non-canonical y
	for i := range yEqualsP {
		yEqualsP[i] = 0xff
	}
	yEqualsP[0] = 0xed
	yEqualsP[31] = 0x7f
	negZeroX := make([]byte, 32) // y = 1 (x = 0) with the sign bit set
	negZeroX[0] = 1
	negZeroX[31] = 0x80
	identity := make([]byte, 32) // y = 1: the neutral element
	identity[0] = 1

	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"other method", "did:key:z" + suffix, `must start with "did:icn:z"`},
		{"short prefix", "did:icn:abc", `must start with "did:icn:z"`},
		{"upper DID", "DID:icn:z" + suffix, `must start with "did:icn:z"`},
		{"upper method", "did:ICN:z" + suffix, `must start with "did:icn:z"`},
		{"upper multibase", "did:icn:Z" + suffix, `must start with "did:icn:z"`},
		{"leading space", " " + valid, "whitespace"},
		{"trailing newline", valid + "\n", "whitespace"},
		{"inner tab", Prefix + "\t" + suffix, "whitespace"},
		{"no key", Prefix, "key is missing"},
		{"zero digit", Prefix + "0" + suffix[1:], "not base58: invalid character '0'"},
		{"capital O", Prefix + "O" + suffix[1:], "not base58: invalid character 'O'"},
		{"lower l", Prefix + suffix[1:] + "l", "not base58: invalid character 'l'"},
		{"non ascii", Prefix + "é" + suffix, "not base58: invalid character 'é'"},
		{"31 bytes", encodeDID(pub[:31]), "key is 31 bytes, want 32"},
		{"33 bytes", encodeDID(append([]byte{0x42}, pub...)), "key is 33 bytes, want 32"},
		{"1 byte", Prefix + "2", "key is 1 bytes, want 32"},
		{"very long", Prefix + strings.Repeat("2", 500), "too long"},
		{"not a point", encodeDID(nonPoint()), "not a valid Ed25519 public key"},
		{"non-canonical y", encodeDID(yEqualsP), "not a valid Ed25519 public key"},
		{"negative zero x", encodeDID(negZeroX), "not a valid Ed25519 public key"},
		{"all zero (low order)", encodeDID(make([]byte, 32)), "low-order point"},
		{"identity (low order)", encodeDID(identity), "low-order point"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(tc.in)
			require.Error(t, err)
			require.True(t, d.IsZero())
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "invalid DID ")
			require.Less(t, len(err.Error()), 250, "input must be truncated in errors")
		})
	}
}

func TestParseErrorEchoesInput(t *testing.T) {
	_, err := Parse("did:icn:abc")
	require.EqualError(t, err, `invalid DID "did:icn:abc": must start with "did:icn:z"`)
}

func TestFromPublicKeyErrors(t *testing.T) {
	pub, _ := newTestKey(t)
	tests := []struct {
		name string
		key  ed25519.PublicKey
	}{
		{"nil", nil},
		{"short", pub[:31]},
		{"long", append(append(ed25519.PublicKey{}, pub...), 0)},
		{"not a point", nonPoint()},
		{"all zero", make(ed25519.PublicKey, 32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromPublicKey(tc.key)
			require.Error(t, err)
		})
	}
}

func TestZeroDID(t *testing.T) {
	var d DID
	require.True(t, d.IsZero())
	require.Empty(t, d.String())
	require.Nil(t, d.PublicKey())
	require.Nil(t, d.Libp2pPublicKey())
	require.Empty(t, d.PeerID())
	require.False(t, d.Verify([]byte("msg"), make([]byte, ed25519.SignatureSize)))
	text, err := d.MarshalText()
	require.NoError(t, err)
	require.Empty(t, text)

	var back DID
	require.NoError(t, back.UnmarshalText(nil))
	require.True(t, back.IsZero())
}

func TestDIDJSON(t *testing.T) {
	pub, _ := newTestKey(t)
	d, err := FromPublicKey(pub)
	require.NoError(t, err)

	type doc struct {
		Owner    DID `json:"owner"`
		Optional DID `json:"optional"`
	}
	data, err := json.Marshal(doc{Owner: d})
	require.NoError(t, err)
	require.JSONEq(t, `{"owner":"`+d.String()+`","optional":""}`, string(data))

	var back doc
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, d, back.Owner)
	require.True(t, back.Optional.IsZero())

	err = json.Unmarshal([]byte(`{"owner":"did:icn:zbad0"}`), &back)
	require.ErrorContains(t, err, "not base58")
}

func TestVerify(t *testing.T) {
	pub, priv := newTestKey(t)
	d, err := FromPublicKey(pub)
	require.NoError(t, err)
	msg := []byte("hello")
	sig := ed25519.Sign(priv, msg)
	require.True(t, d.Verify(msg, sig))
	require.False(t, d.Verify([]byte("hellO"), sig))
	require.False(t, d.Verify(msg, sig[:63]))
	bad := append([]byte{}, sig...)
	bad[0] ^= 1
	require.False(t, d.Verify(msg, bad))
}

func TestPeerIDRoundTrip(t *testing.T) {
	priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	pid, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)

	d, err := FromPeerID(pid)
	require.NoError(t, err)
	require.Equal(t, pid, d.PeerID())
	require.True(t, d.Libp2pPublicKey().Equals(pub))

	fromKey, err := FromLibp2pKey(pub)
	require.NoError(t, err)
	require.Equal(t, d, fromKey)

	// The DID key verifies libp2p signatures made by the node key.
	sig, err := priv.Sign([]byte("m"))
	require.NoError(t, err)
	require.True(t, d.Verify([]byte("m"), sig))

	// And the other direction: DID -> peer ID -> DID.
	edPub, _ := newTestKey(t)
	d2, err := FromPublicKey(edPub)
	require.NoError(t, err)
	back, err := FromPeerID(d2.PeerID())
	require.NoError(t, err)
	require.Equal(t, d2, back)
}

func TestFromPeerIDRejectsOtherKeys(t *testing.T) {
	_, rsaPub, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	require.NoError(t, err)
	rsaID, err := peer.IDFromPublicKey(rsaPub)
	require.NoError(t, err)
	_, secpPub, err := crypto.GenerateSecp256k1Key(rand.Reader)
	require.NoError(t, err)
	secpID, err := peer.IDFromPublicKey(secpPub)
	require.NoError(t, err)
	_, ecdsaPub, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	require.NoError(t, err)
	ecdsaID, err := peer.IDFromPublicKey(ecdsaPub)
	require.NoError(t, err)

	tests := []struct {
		name string
		id   peer.ID
		want string
	}{
		{"empty", "", "empty"},
		{"rsa", rsaID, "does not embed a public key"},
		{"secp256k1", secpID, "not Ed25519"},
		{"ecdsa", ecdsaID, "does not embed a public key"},
		{"garbage", peer.ID("garbage"), "does not embed a public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromPeerID(tc.id)
			require.ErrorContains(t, err, tc.want)
		})
	}

	_, err = FromLibp2pKey(secpPub)
	require.ErrorContains(t, err, "not Ed25519")
	_, err = FromLibp2pKey(nil)
	require.Error(t, err)
}

// TestIsCanonicalPointKnownValues pins a few encodings checked against
// filippo.io/edwards25519 (SetBytes plus canonical re-encoding).
func TestIsCanonicalPointKnownValues(t *testing.T) {
	tests := []struct {
		y    byte
		want bool
	}{
		{0, true}, {1, true}, {2, false}, {3, true}, {4, true},
		{5, true}, {6, true}, {7, false}, {8, false}, {9, true},
	}
	for _, tc := range tests {
		var b [32]byte
		b[0] = tc.y
		require.Equal(t, tc.want, isCanonicalPoint(b), "y=%d", tc.y)
	}
	for i := 0; i < 50; i++ {
		pub, _ := newTestKey(t)
		require.True(t, isCanonicalPoint([32]byte(pub)))
		require.False(t, isLowOrder([32]byte(pub)))
	}
}
