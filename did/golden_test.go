package did

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

// Golden vectors of the DID text form, DID → peer ID and the binding record.
//
// How they were produced: the DID key is the RFC 8032 section 7.1 TEST 1
// key and the node key the TEST 2 key (as a libp2p Ed25519 key); the
// binding says seq 3, created at unix 1700000000. NewBinding was run on
// them and its DID, peer IDs, SigningBytes, signature (Ed25519 is
// deterministic) and Marshal output printed.
//
// A failure here is a break of the identity format: DIDs would name other
// keys, or every binding ever signed (in keystores, in the DHT, exchanged
// over /icn/id/1.0.0) would stop verifying. Do not update the vectors to
// make it pass; a deliberate change needs a new binding domain
// ("icn-binding-v2\n") and a migration.
const (
	goldenDIDSeed  = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	goldenNodeSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"

	goldenDID        = "did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"
	goldenDIDPeerID  = "12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV" // the DID key used as the node key
	goldenNodePeerID = "12D3KooWDwTirQce1RRKnasT5fPVFgzXCy6SiRgSwrwPGLC7zE91"

	goldenBindingSigningBytes = "icn-binding-v1\n" +
		"did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z\n" +
		"12D3KooWDwTirQce1RRKnasT5fPVFgzXCy6SiRgSwrwPGLC7zE91\n" +
		"3\n" +
		"1700000000"
	goldenBindingSignature = "6467db35bdfb992b6f185e83ce0e6120453a9a5c41147fdcfcf6f79c655721f8" +
		"3a07debe3991d7f006bcdb8323d989b1a3d0fb9601eaee10ebfbeae42a11ac01"
	goldenBindingJSON = `{"did":"did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z",` +
		`"peer_id":"12D3KooWDwTirQce1RRKnasT5fPVFgzXCy6SiRgSwrwPGLC7zE91","seq":3,"created_at":1700000000,` +
		`"signature":"ZGfbNb37mStvGF6Dzg5hIEU6mlxBFH/c/Pb3nGVXIfg6B96+OZHX8Aa824Mj2Ymxo9D7lgHq7hDr++rkKhGsAQ=="}`
)

func goldenSeedKey(t *testing.T, seedHex string) ed25519.PrivateKey {
	t.Helper()
	seed, err := hex.DecodeString(seedHex)
	require.NoError(t, err)
	return ed25519.NewKeyFromSeed(seed)
}

func TestGoldenDID(t *testing.T) {
	key := goldenSeedKey(t, goldenDIDSeed)
	d, err := FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.Equal(t, goldenDID, d.String())
	require.Equal(t, goldenDIDPeerID, d.PeerID().String())
	back, err := Parse(goldenDID)
	require.NoError(t, err)
	require.Equal(t, d, back)
	pid, err := peer.Decode(goldenDIDPeerID)
	require.NoError(t, err)
	fromPeer, err := FromPeerID(pid)
	require.NoError(t, err)
	require.Equal(t, d, fromPeer)
}

func TestGoldenBinding(t *testing.T) {
	didKey := goldenSeedKey(t, goldenDIDSeed)
	nodeKey, err := crypto.UnmarshalEd25519PrivateKey(goldenSeedKey(t, goldenNodeSeed))
	require.NoError(t, err)
	pid, err := peer.IDFromPrivateKey(nodeKey)
	require.NoError(t, err)
	require.Equal(t, goldenNodePeerID, pid.String())

	b, err := NewBinding(didKey, pid, 3, time.Unix(1_700_000_000, 0))
	require.NoError(t, err)
	require.Equal(t, goldenBindingSigningBytes, string(b.SigningBytes()), "the binding signing bytes changed: the format broke")
	require.Equal(t, goldenBindingSignature, hex.EncodeToString(b.Signature))
	j, err := b.Marshal()
	require.NoError(t, err)
	require.Equal(t, goldenBindingJSON, string(j))

	// The golden record parses and verifies as it is.
	back, err := UnmarshalBinding([]byte(goldenBindingJSON))
	require.NoError(t, err)
	require.Equal(t, b, back)
}
