package did

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

func newTestPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	pid, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	return pid
}

func TestBindingSignVerify(t *testing.T) {
	pub, priv := newTestKey(t)
	pid := newTestPeerID(t)
	at := time.Unix(1700000000, 123)

	b, err := NewBinding(priv, pid, 7, at)
	require.NoError(t, err)
	require.NoError(t, b.Verify())
	require.Equal(t, pub, b.DID.PublicKey())
	require.Equal(t, pid, b.PeerID)
	require.Equal(t, uint64(7), b.Seq)
	require.Equal(t, int64(1700000000), b.CreatedAt)

	want := "icn-binding-v1\n" + b.DID.String() + "\n" + pid.String() + "\n7\n1700000000"
	require.Equal(t, want, string(b.SigningBytes()))
}

func TestNewBindingErrors(t *testing.T) {
	_, priv := newTestKey(t)
	_, err := NewBinding(priv[:32], newTestPeerID(t), 1, time.Now())
	require.Error(t, err)
	_, err = NewBinding(priv, "", 1, time.Now())
	require.ErrorContains(t, err, "peer ID is empty")
	_, err = NewBinding(priv, peer.ID("not a multihash"), 1, time.Now())
	require.ErrorContains(t, err, "not a valid multihash")
}

func TestBindingTampered(t *testing.T) {
	_, priv := newTestKey(t)
	otherPub, otherPriv := newTestKey(t)
	otherDID, err := FromPublicKey(otherPub)
	require.NoError(t, err)
	good, err := NewBinding(priv, newTestPeerID(t), 3, time.Unix(1000, 0))
	require.NoError(t, err)
	resigned, err := NewBinding(otherPriv, good.PeerID, 3, time.Unix(1000, 0))
	require.NoError(t, err)

	tests := []struct {
		name   string
		mutate func(*Binding)
		want   string
	}{
		{"did", func(b *Binding) { b.DID = otherDID }, "not valid"},
		{"zero did", func(b *Binding) { b.DID = DID{} }, "no DID"},
		{"peer id", func(b *Binding) { b.PeerID = newTestPeerID(t) }, "not valid"},
		{"empty peer id", func(b *Binding) { b.PeerID = "" }, "peer ID is empty"},
		{"bad peer id", func(b *Binding) { b.PeerID = "xx" }, "not a valid multihash"},
		{"seq", func(b *Binding) { b.Seq++ }, "not valid"},
		{"created_at", func(b *Binding) { b.CreatedAt-- }, "not valid"},
		{"signature bit", func(b *Binding) { b.Signature[10] ^= 0x40 }, "not valid"},
		{"signature short", func(b *Binding) { b.Signature = b.Signature[:63] }, "63 bytes"},
		{"unsigned", func(b *Binding) { b.Signature = nil }, "not signed"},
		{"other signer", func(b *Binding) { b.Signature = resigned.Signature }, "not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			b.Signature = append([]byte{}, good.Signature...)
			tc.mutate(&b)
			require.ErrorContains(t, b.Verify(), tc.want)
		})
	}
	require.NoError(t, good.Verify())
}

func TestBindingJSON(t *testing.T) {
	_, priv := newTestKey(t)
	b, err := NewBinding(priv, newTestPeerID(t), 2, time.Unix(1234, 0))
	require.NoError(t, err)
	data, err := b.Marshal()
	require.NoError(t, err)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	require.Equal(t, b.DID.String(), raw["did"])
	require.Equal(t, b.PeerID.String(), raw["peer_id"])
	require.True(t, strings.HasPrefix(raw["peer_id"].(string), "12D3"))
	require.EqualValues(t, 2, raw["seq"])
	require.EqualValues(t, 1234, raw["created_at"])
	require.Equal(t, base64.StdEncoding.EncodeToString(b.Signature), raw["signature"])

	back, err := UnmarshalBinding(data)
	require.NoError(t, err)
	require.Equal(t, b, back)
}

func TestUnmarshalBindingRejects(t *testing.T) {
	_, priv := newTestKey(t)
	b, err := NewBinding(priv, newTestPeerID(t), 2, time.Unix(1234, 0))
	require.NoError(t, err)
	data, err := b.Marshal()
	require.NoError(t, err)

	withField := func(key string, val any) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		m[key] = val
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}
	badSig := append([]byte{}, b.Signature...)
	badSig[0] ^= 1

	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown field", withField("extra", 1), "unknown field"},
		{"bad signature", withField("signature", badSig), "not valid"},
		{"bumped seq", withField("seq", 3), "not valid"},
		{"bad did", withField("did", "did:icn:zzz"), "invalid DID"},
		{"bad peer id", withField("peer_id", "nope"), "peer ID"},
		{"trailing data", append(append([]byte{}, data...), []byte(" {}")...), "trailing data"},
		{"not json", []byte("nope"), "parse binding"},
		{"null", []byte("null"), "no DID"},
		{"too big", []byte(strings.Repeat(" ", MaxBindingSize+1)), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalBinding(tc.in)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestBindingNewer(t *testing.T) {
	a := peer.ID("\x00\x01a") // only ordering matters here
	z := peer.ID("\x00\x01z")
	require.Greater(t, z.String(), a.String())

	tests := []struct {
		name string
		b, o Binding
		want bool
	}{
		{"higher seq", Binding{Seq: 2, CreatedAt: 1, PeerID: a}, Binding{Seq: 1, CreatedAt: 9, PeerID: z}, true},
		{"lower seq", Binding{Seq: 1, CreatedAt: 9, PeerID: z}, Binding{Seq: 2, CreatedAt: 1, PeerID: a}, false},
		{"same seq later", Binding{Seq: 2, CreatedAt: 5, PeerID: a}, Binding{Seq: 2, CreatedAt: 4, PeerID: z}, true},
		{"same seq earlier", Binding{Seq: 2, CreatedAt: 4, PeerID: z}, Binding{Seq: 2, CreatedAt: 5, PeerID: a}, false},
		{"tie larger peer", Binding{Seq: 2, CreatedAt: 5, PeerID: z}, Binding{Seq: 2, CreatedAt: 5, PeerID: a}, true},
		{"tie smaller peer", Binding{Seq: 2, CreatedAt: 5, PeerID: a}, Binding{Seq: 2, CreatedAt: 5, PeerID: z}, false},
		{"identical", Binding{Seq: 2, CreatedAt: 5, PeerID: a}, Binding{Seq: 2, CreatedAt: 5, PeerID: a}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.b.Newer(tc.o))
		})
	}
}
