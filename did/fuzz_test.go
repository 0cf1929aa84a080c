package did

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"filippo.io/age/armor"
	"github.com/stretchr/testify/require"
)

// fuzzMaxWorkFactor keeps scrypt cheap while fuzzing the age layer.
const fuzzMaxWorkFactor = 4

func FuzzParse(f *testing.F) {
	pub, _ := newTestKey(f)
	valid := encodeDID(pub)
	for _, s := range []string{
		valid,
		"did:icn:z11111111111111111111111111111111", // y = 0
		"did:icn:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
		"did:icn:abc",
		"DID:icn:z" + valid[len(Prefix):],
		" " + valid,
		valid + "\n",
		Prefix,
		Prefix + "0OIl",
		encodeDID(pub[:31]),
		encodeDID(append([]byte{1}, pub...)),
		encodeDID(nonPoint()),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !d.IsZero() {
				t.Fatalf("Parse(%q) failed but returned a non-zero DID", s)
			}
			return
		}
		if got := d.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		if _, err := FromPublicKey(d.PublicKey()); err != nil {
			t.Fatalf("parsed DID %q has an invalid key: %v", s, err)
		}
		back, err := FromPeerID(d.PeerID())
		if err != nil || back != d {
			t.Fatalf("peer ID round trip of %q: %v", s, err)
		}
	})
}

func FuzzDecodeBundle(f *testing.F) {
	id, err := Generate(time.Unix(1700000000, 0))
	require.NoError(f, err)
	plain, err := encodeBundle(id)
	require.NoError(f, err)
	require.NoError(f, id.Rotate(time.Unix(1700000100, 0)))
	rotated, err := encodeBundle(id)
	require.NoError(f, err)

	f.Add(plain)
	f.Add(rotated)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeBundle(data)
		if err != nil {
			return
		}
		// Anything accepted must re-encode to an equivalent valid bundle.
		again, err := encodeBundle(got)
		if err != nil {
			t.Fatalf("accepted bundle does not re-encode: %v", err)
		}
		back, err := decodeBundle(again)
		if err != nil {
			t.Fatalf("re-encoded bundle rejected: %v", err)
		}
		if back.DID != got.DID || back.PeerID() != got.PeerID() || back.Binding.Seq != got.Binding.Seq {
			t.Fatalf("bundle changed across re-encoding")
		}
		var v map[string]any
		if err := json.Unmarshal(again, &v); err != nil {
			t.Fatalf("re-encoded bundle is not JSON: %v", err)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	id, err := Generate(time.Unix(1700000000, 0))
	require.NoError(f, err)
	good, err := Encrypt(id, testPass, 2)
	require.NoError(f, err)
	var armored bytes.Buffer
	w := armor.NewWriter(&armored)
	_, err = w.Write(good)
	require.NoError(f, err)
	require.NoError(f, w.Close())

	f.Add(good)
	f.Add(armored.Bytes())
	f.Add(good[:len(good)/2])
	f.Add([]byte("age-encryption.org/v1\n-> scrypt AAAAAAAAAAAAAAAAAAAAAA 2\n\n--- AAAA\n"))
	f.Add([]byte("not an age file"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decrypt(data, testPass, fuzzMaxWorkFactor)
		if err != nil {
			if got != nil {
				t.Fatal("error with a non-nil identity")
			}
			return
		}
		if got.DID.IsZero() || got.Binding.Verify() != nil {
			t.Fatal("accepted an invalid identity")
		}
	})
}
