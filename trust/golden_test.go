package trust

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// Golden vectors of the attestation format (docs/trust.md shows the first).
//
// How they were produced: the issuer is the RFC 8032 section 7.1 TEST 1
// key, the subject the TEST 2 key; Sign was run on the attestations below
// and SigningBytes, the signature (Ed25519 is deterministic) and the block
// printed. The first vector's signing bytes were also built by hand from
// the table in docs/trust.md and signed with Python's cryptography package,
// which gave the same signature.
//
// A failure here is a break of the attestation format: every stored and
// gossiped attestation would stop verifying. Do not update the vectors to
// make it pass; a deliberate change needs a new signing domain
// ("icn-trust-attestation-v2\n") and version.
const (
	goldenIssuerSeed  = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	goldenSubjectSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
	goldenIssuer      = "did:icn:zFVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"
	goldenSubject     = "did:icn:z586Z7H2vpX9qNhN2T4e9Utugie3ogjbxzGaMtM3E6HR5"
)

type goldenAttestation struct {
	name      string
	att       func(iss, sub did.DID) *Attestation
	signing   string // hex, checked when set
	signature string // hex, checked when set
	block     string // hex
}

var goldenAttestations = []goldenAttestation{
	{
		name: "0.8 with two labels, expiring",
		att: func(iss, sub did.DID) *Attestation {
			return &Attestation{Issuer: iss, Subject: sub, Score: 0.8, Labels: []string{"coop:bakery", "member"},
				IssuedAt: time.Unix(1_700_000_000, 0), ExpiresAt: time.Unix(1_731_536_000, 0), Seq: 1}
		},
		// The domain, then the map without key 8 (8 pairs, 0xa8).
		signing: "69636e2d74727573742d6174746573746174696f6e2d76310a" +
			"a80001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0258203d4017c3e843895a92b70aa7" +
			"4d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c03191f4004826b636f6f703a62616b657279666d656d626572051a6553f100061a" +
			"673524800701",
		signature: "5f52b2df0121089eea1a4d1a1e36783bcf830091144d5aa9431a7622e32aeb15" +
			"54420bf38b26f48a11be7ed3a8525266f024961f6ab50fda6b63158161229d03",
		block: "a90001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0258203d4017c3e843895a92b70aa7" +
			"4d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c03191f4004826b636f6f703a62616b657279666d656d626572051a6553f100061a" +
			"6735248007010858405f52b2df0121089eea1a4d1a1e36783bcf830091144d5aa9431a7622e32aeb1554420bf38b26f48a11be7e" +
			"d3a8525266f024961f6ab50fda6b63158161229d03",
	},
	{
		name: "revocation (score 0, seq 2)",
		att: func(iss, sub did.DID) *Attestation {
			return &Attestation{Issuer: iss, Subject: sub, Score: 0, IssuedAt: time.Unix(1_700_086_400, 0), Seq: 2}
		},
		block: "a70001015820d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0258203d4017c3e843895a92b70aa7" +
			"4d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c0300051a655542800702085840f1fb0c133657ac69c4cc50ce8cb79fe9ade40c21" +
			"a72283d5d159b35a9c515a1e32621bf3e1c0eaf54e339795717f78fae1d3c52c52a158f7f75284a6ae633c0a",
	},
}

func goldenKey(t *testing.T, seedHex string) (ed25519.PrivateKey, did.DID) {
	t.Helper()
	seed, err := hex.DecodeString(seedHex)
	require.NoError(t, err)
	key := ed25519.NewKeyFromSeed(seed)
	d, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return key, d
}

func TestGoldenAttestations(t *testing.T) {
	key, iss := goldenKey(t, goldenIssuerSeed)
	_, sub := goldenKey(t, goldenSubjectSeed)
	require.Equal(t, goldenIssuer, iss.String())
	require.Equal(t, goldenSubject, sub.String())
	for _, g := range goldenAttestations {
		t.Run(g.name, func(t *testing.T) {
			a := g.att(iss, sub)
			if g.signing != "" {
				msg, err := a.SigningBytes()
				require.NoError(t, err)
				require.Equal(t, g.signing, hex.EncodeToString(msg))
			}
			block, err := Sign(a, key)
			require.NoError(t, err)
			require.Equal(t, g.block, hex.EncodeToString(block))
			if g.signature != "" {
				require.Equal(t, g.signature, hex.EncodeToString(a.Signature))
			}
			// The literal block decodes, verifies and re-encodes as itself.
			want, err := hex.DecodeString(g.block)
			require.NoError(t, err)
			got, err := Decode(want)
			require.NoError(t, err)
			require.NoError(t, got.Verify())
			require.Equal(t, a.Score, got.Score)
			require.Equal(t, a.Seq, got.Seq)
			again, err := got.Encode()
			require.NoError(t, err)
			require.Equal(t, want, again)
		})
	}
}
