package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

const (
	testPass = "correct horse battery staple"
	testWF   = 10
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)

func testKeystore(t *testing.T) Keystore {
	t.Helper()
	k := Open(filepath.Join(t.TempDir(), "data"))
	k.WorkFactor = testWF
	return k
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

func requireMode0600(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), path)
}

func TestGenerate(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	require.Equal(t, id.DID.PeerID(), id.PeerID(), "node key is the DID key after Generate")
	require.Equal(t, id.PeerID(), id.Binding.PeerID)
	require.Equal(t, uint64(1), id.Binding.Seq)
	require.Equal(t, testNow.Unix(), id.Binding.CreatedAt)
	require.NoError(t, id.Binding.Verify())
	require.Empty(t, id.Rotations)

	raw, err := id.NodeKey.Raw()
	require.NoError(t, err)
	require.Equal(t, []byte(id.DIDKey), raw)

	sig := id.Sign([]byte("m"))
	require.True(t, id.DID.Verify([]byte("m"), sig))
}

func TestIdentityFormatRedacts(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		for _, arg := range []any{id, *id} {
			out := fmt.Sprintf(verb, arg)
			require.Contains(t, out, id.DID.String(), verb)
			require.NotContains(t, out, hex.EncodeToString(id.DIDKey[:32]), verb)
			require.NotContains(t, out, fmt.Sprint([]byte(id.DIDKey[:8])), verb)
		}
	}
}

func TestIdentityRotate(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	first := id.Binding
	firstPID := id.PeerID()

	for i := 2; i <= 4; i++ {
		require.NoError(t, id.Rotate(testNow.Add(time.Duration(i)*time.Hour)))
		require.Equal(t, uint64(i), id.Binding.Seq)
		require.Equal(t, id.PeerID(), id.Binding.PeerID)
		require.NoError(t, id.Binding.Verify())
		require.Len(t, id.Rotations, i-1)
		require.True(t, id.Binding.Newer(id.Rotations[len(id.Rotations)-1]))
	}
	require.Equal(t, first, id.Rotations[0])
	require.NotEqual(t, firstPID, id.PeerID())
	require.Equal(t, first.DID, id.DID)
}

func TestKeystoreCreateUnlock(t *testing.T) {
	k := testKeystore(t)
	ok, err := k.Exists()
	require.NoError(t, err)
	require.False(t, ok)

	id, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	ok, err = k.Exists()
	require.NoError(t, err)
	require.True(t, ok)
	requireMode0600(t, k.Path)
	fi, err := os.Stat(filepath.Dir(k.Path))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	require.True(t, bytes.HasPrefix(mustRead(t, k.Path), []byte("age-encryption.org/v1\n")))

	got, err := k.Unlock(testPass)
	require.NoError(t, err)
	require.Equal(t, id.DID, got.DID)
	require.Equal(t, id.DIDKey, got.DIDKey)
	require.True(t, id.NodeKey.Equals(got.NodeKey))
	require.Equal(t, id.Binding, got.Binding)
	require.True(t, id.CreatedAt.Equal(got.CreatedAt))
	require.Empty(t, got.Rotations)
	require.Equal(t, id.PeerID(), got.PeerID())

	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(k.Path))
	require.NoError(t, err)
	require.Len(t, entries, 1)
}

func TestKeystoreCreateRefusesExisting(t *testing.T) {
	k := testKeystore(t)
	_, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	before := mustRead(t, k.Path)

	_, err = k.Create("another passphrase", testNow)
	require.ErrorIs(t, err, ErrKeystoreExists)
	require.Equal(t, before, mustRead(t, k.Path))
}

func TestKeystoreWrongPassphrase(t *testing.T) {
	k := testKeystore(t)
	_, err := k.Create(testPass, testNow)
	require.NoError(t, err)

	for _, pass := range []string{"wrong", testPass + " ", ""} {
		_, err = k.Unlock(pass)
		require.ErrorIs(t, err, ErrWrongPassphrase, "passphrase %q", pass)
		require.ErrorContains(t, err, "Failed to unlock keystore")
		require.NotErrorIs(t, err, ErrNotKeystore)
	}
}

func TestKeystoreUnlockMissing(t *testing.T) {
	k := testKeystore(t)
	_, err := k.Unlock(testPass)
	require.ErrorIs(t, err, ErrNoKeystore)
	require.ErrorContains(t, err, k.Path)
	require.ErrorContains(t, err, "icnctl id init")
}

func TestKeystoreUnlockGarbage(t *testing.T) {
	k := testKeystore(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(k.Path), 0o700))
	require.NoError(t, os.WriteFile(k.Path, []byte("hello, not age"), 0o600))
	_, err := k.Unlock(testPass)
	require.ErrorIs(t, err, ErrNotKeystore)
	require.NotErrorIs(t, err, ErrWrongPassphrase)
}

func TestDecryptClassification(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	good, err := Encrypt(id, testPass, testWF)
	require.NoError(t, err)

	ageEncrypt := func(plaintext []byte, r age.Recipient) []byte {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		require.NoError(t, err)
		_, err = w.Write(plaintext)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	scrypt := func(plaintext []byte) []byte {
		r, err := age.NewScryptRecipient(testPass)
		require.NoError(t, err)
		r.SetWorkFactor(testWF)
		return ageEncrypt(plaintext, r)
	}
	x25519, err := age.GenerateX25519Identity()
	require.NoError(t, err)

	var armored bytes.Buffer
	aw := armor.NewWriter(&armored)
	_, err = aw.Write(good)
	require.NoError(t, err)
	require.NoError(t, aw.Close())

	truncated := good[:len(good)-5]
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-3] ^= 1

	tests := []struct {
		name    string
		data    []byte
		pass    string
		wantErr error
		detail  string
	}{
		{"good", good, testPass, nil, ""},
		{"armored", armored.Bytes(), testPass, nil, ""},
		{"wrong passphrase", good, "nope", ErrWrongPassphrase, "Failed to unlock keystore"},
		{"empty", nil, testPass, ErrNotKeystore, ""},
		{"garbage", []byte("garbage garbage garbage"), testPass, ErrNotKeystore, ""},
		{"x25519 age file", ageEncrypt([]byte("{}"), x25519.Recipient()), testPass, ErrNotKeystore, "not passphrase-encrypted"},
		{"scrypt but not json", scrypt([]byte("hello")), testPass, ErrNotKeystore, "parse bundle"},
		{"scrypt but wrong json", scrypt([]byte(`{"version":1}`)), testPass, ErrNotKeystore, ""},
		{"truncated", truncated, testPass, ErrNotKeystore, ""},
		{"flipped payload", flipped, testPass, ErrNotKeystore, ""},
		{"too big", make([]byte, MaxKeystoreSize+1), testPass, ErrNotKeystore, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decrypt(tc.data, tc.pass)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, id.DID, got.DID)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.detail)
			require.Nil(t, got)
		})
	}
}

func TestDecryptWorkFactorLimit(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	data, err := Encrypt(id, testPass, 12)
	require.NoError(t, err)
	_, err = decrypt(data, testPass, 11)
	require.ErrorIs(t, err, ErrNotKeystore)
	require.ErrorContains(t, err, "work factor too large")
	_, err = decrypt(data, testPass, 12)
	require.NoError(t, err)

	_, err = Encrypt(id, testPass, MaxWorkFactor+1)
	require.Error(t, err)
	_, err = Encrypt(id, testPass, -1)
	require.Error(t, err)
	_, err = Encrypt(id, "", testWF)
	require.Error(t, err)
}

// validBundle returns a valid plaintext bundle as a generic JSON map.
func validBundle(t *testing.T, rotations int) (*Identity, map[string]any) {
	t.Helper()
	id, err := Generate(testNow)
	require.NoError(t, err)
	for i := 0; i < rotations; i++ {
		require.NoError(t, id.Rotate(testNow.Add(time.Duration(i+1)*time.Minute)))
	}
	data, err := encodeBundle(id)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return id, m
}

func TestDecodeBundleValidation(t *testing.T) {
	id, base := validBundle(t, 2)
	other, otherMap := validBundle(t, 0)
	marshalKey := func(k crypto.PrivKey) string {
		b, err := crypto.MarshalPrivateKey(k)
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(b)
	}
	corruptDIDKey := append([]byte{}, id.DIDKey...)
	corruptDIDKey[40] ^= 1

	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"valid", func(map[string]any) {}, ""},
		{"version 2", func(m map[string]any) { m["version"] = 2 }, "unsupported bundle version 2"},
		{"version missing", func(m map[string]any) { delete(m, "version") }, "unsupported bundle version 0"},
		{"unknown field", func(m map[string]any) { m["extra"] = true }, "unknown field"},
		{"no did", func(m map[string]any) { m["did"] = "" }, "no DID"},
		{"other did", func(m map[string]any) { m["did"] = other.DID.String() }, "does not match DID key"},
		{"short did key", func(m map[string]any) { m["did_key"] = base64.StdEncoding.EncodeToString(id.DIDKey[:32]) }, "DID key is 32 bytes"},
		{"corrupt did key", func(m map[string]any) { m["did_key"] = base64.StdEncoding.EncodeToString(corruptDIDKey) }, "corrupt"},
		{"other did key", func(m map[string]any) { m["did_key"] = otherMap["did_key"] }, "does not match DID key"},
		{"node key garbage", func(m map[string]any) { m["node_key"] = "AAAA" }, "node key"},
		{"other node key", func(m map[string]any) { m["node_key"] = marshalKey(other.NodeKey) }, "binding names peer"},
		{"binding of other did", func(m map[string]any) { m["binding"] = otherMap["binding"] }, "binding"},
		{"tampered binding", func(m map[string]any) { m["binding"].(map[string]any)["seq"] = 99 }, "binding: binding signature is not valid"},
		{"bad created_at", func(m map[string]any) { m["created_at"] = "yesterday" }, "created_at"},
		{"rotations reordered", func(m map[string]any) {
			r := m["rotations"].([]any)
			r[0], r[1] = r[1], r[0]
		}, "rotation 0 has seq 2"},
		{"rotation of other did", func(m map[string]any) {
			m["rotations"].([]any)[0] = otherMap["binding"] // also seq 1
		}, "rotation 0 is for"},
		{"rotation tampered", func(m map[string]any) {
			m["rotations"].([]any)[0].(map[string]any)["created_at"] = 1
		}, "rotation 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			data, err := json.Marshal(base)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &m))
			tc.mutate(m)
			data, err = json.Marshal(m)
			require.NoError(t, err)

			got, err := decodeBundle(data)
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, id.DID, got.DID)
				require.Equal(t, id.Rotations, got.Rotations)
				require.Equal(t, id.PeerID(), got.PeerID())
				return
			}
			require.ErrorIs(t, err, ErrNotKeystore)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestEncryptRejectsInvalidIdentity(t *testing.T) {
	id, err := Generate(testNow)
	require.NoError(t, err)
	other, err := Generate(testNow)
	require.NoError(t, err)

	bad := *id
	bad.NodeKey = other.NodeKey // binding no longer matches
	_, err = Encrypt(&bad, testPass, testWF)
	require.ErrorContains(t, err, "binding names peer")

	_, err = Encrypt(nil, testPass, testWF)
	require.Error(t, err)
}

func TestKeystoreImport(t *testing.T) {
	src := testKeystore(t)
	srcID, err := src.Create(testPass, testNow)
	require.NoError(t, err)

	garbage := filepath.Join(t.TempDir(), "garbage.age")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not an age file"), 0o600))

	t.Run("garbage refused, keystore untouched", func(t *testing.T) {
		k := testKeystore(t)
		existing, err := k.Create(testPass, testNow)
		require.NoError(t, err)
		before := mustRead(t, k.Path)
		for _, force := range []bool{false, true} {
			_, err = k.Import(garbage, testPass, force)
			require.ErrorIs(t, err, ErrNotKeystore)
			require.Equal(t, before, mustRead(t, k.Path))
		}
		got, err := k.Unlock(testPass)
		require.NoError(t, err)
		require.Equal(t, existing.DID, got.DID)
	})

	t.Run("wrong passphrase refused, keystore untouched", func(t *testing.T) {
		k := testKeystore(t)
		_, err := k.Create(testPass, testNow)
		require.NoError(t, err)
		before := mustRead(t, k.Path)
		_, err = k.Import(src.Path, "wrong", true)
		require.ErrorIs(t, err, ErrWrongPassphrase)
		require.ErrorContains(t, err, "Failed to unlock keystore")
		require.Equal(t, before, mustRead(t, k.Path))
	})

	t.Run("missing source", func(t *testing.T) {
		k := testKeystore(t)
		_, err := k.Import(filepath.Join(t.TempDir(), "nope.age"), testPass, false)
		require.ErrorIs(t, err, fs.ErrNotExist)
		ok, err := k.Exists()
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("existing without force refused", func(t *testing.T) {
		k := testKeystore(t)
		_, err := k.Create(testPass, testNow)
		require.NoError(t, err)
		before := mustRead(t, k.Path)
		_, err = k.Import(src.Path, testPass, false)
		require.ErrorIs(t, err, ErrKeystoreExists)
		require.Equal(t, before, mustRead(t, k.Path))
	})

	t.Run("existing with force replaced", func(t *testing.T) {
		k := testKeystore(t)
		old, err := k.Create(testPass, testNow)
		require.NoError(t, err)
		got, err := k.Import(src.Path, testPass, true)
		require.NoError(t, err)
		require.Equal(t, srcID.DID, got.DID)
		require.NotEqual(t, old.DID, got.DID)
		requireMode0600(t, k.Path)
		unlocked, err := k.Unlock(testPass)
		require.NoError(t, err)
		require.Equal(t, srcID.DID, unlocked.DID)
		require.Equal(t, srcID.PeerID(), unlocked.PeerID())
	})

	t.Run("fresh dir", func(t *testing.T) {
		k := testKeystore(t)
		got, err := k.Import(src.Path, testPass, false)
		require.NoError(t, err)
		require.Equal(t, srcID.DID, got.DID)
		requireMode0600(t, k.Path)
	})
}

func TestKeystoreExportImport(t *testing.T) {
	k := testKeystore(t)
	_, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	_, err = k.Rotate(testPass, testNow.Add(time.Hour))
	require.NoError(t, err)
	id, err := k.Unlock(testPass)
	require.NoError(t, err)

	dest := filepath.Join(t.TempDir(), "backup.age")
	require.ErrorIs(t, k.Export("wrong", dest), ErrWrongPassphrase)
	_, err = os.Stat(dest)
	require.ErrorIs(t, err, fs.ErrNotExist)

	require.NoError(t, k.Export(testPass, dest))
	requireMode0600(t, dest)
	exported := mustRead(t, dest)

	err = k.Export(testPass, dest)
	require.ErrorIs(t, err, fs.ErrExist)
	require.ErrorContains(t, err, "refusing to overwrite")
	require.Equal(t, exported, mustRead(t, dest))

	fresh := testKeystore(t)
	got, err := fresh.Import(dest, testPass, false)
	require.NoError(t, err)
	require.Equal(t, id.DID, got.DID)
	require.Equal(t, id.PeerID(), got.PeerID())
	require.Equal(t, id.Rotations, got.Rotations)

	unlocked, err := fresh.Unlock(testPass)
	require.NoError(t, err)
	require.Equal(t, id.DID, unlocked.DID)
	require.Equal(t, id.PeerID(), unlocked.PeerID())
}

func TestKeystoreRotate(t *testing.T) {
	k := testKeystore(t)
	id, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	firstPID := id.PeerID()

	_, err = k.Rotate("wrong", testNow)
	require.ErrorIs(t, err, ErrWrongPassphrase)

	rotated, err := k.Rotate(testPass, testNow.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, id.DID, rotated.DID)
	require.NotEqual(t, firstPID, rotated.PeerID())
	require.Equal(t, uint64(2), rotated.Binding.Seq)
	require.Equal(t, []Binding{id.Binding}, rotated.Rotations)
	requireMode0600(t, k.Path)

	unlocked, err := k.Unlock(testPass)
	require.NoError(t, err)
	require.Equal(t, id.DID, unlocked.DID)
	require.Equal(t, rotated.PeerID(), unlocked.PeerID())
	require.Equal(t, rotated.Binding, unlocked.Binding)
	require.Equal(t, []Binding{id.Binding}, unlocked.Rotations)

	// The DID no longer converts to the node's peer ID, but the binding links them.
	require.NotEqual(t, unlocked.DID.PeerID(), unlocked.PeerID())
	require.Equal(t, unlocked.DID, unlocked.Binding.DID)

	again, err := k.Rotate(testPass, testNow.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, uint64(3), again.Binding.Seq)
	require.Len(t, again.Rotations, 2)

	entries, err := os.ReadDir(filepath.Dir(k.Path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files left")
}

func TestKeystoreSaveAtomicReplace(t *testing.T) {
	k := testKeystore(t)
	_, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	other, err := Generate(testNow)
	require.NoError(t, err)
	require.NoError(t, k.Save(other, "new passphrase"))
	requireMode0600(t, k.Path)
	_, err = k.Unlock(testPass)
	require.ErrorIs(t, err, ErrWrongPassphrase)
	got, err := k.Unlock("new passphrase")
	require.NoError(t, err)
	require.Equal(t, other.DID, got.DID)

	// A failed save (invalid identity) leaves the old file in place.
	before := mustRead(t, k.Path)
	bad := *other
	bad.DIDKey = nil
	require.Error(t, k.Save(&bad, "new passphrase"))
	require.Equal(t, before, mustRead(t, k.Path))
}

// secretForms returns the encodings of secret key material that must never
// appear in a file.
func secretForms(t *testing.T, id *Identity) [][]byte {
	t.Helper()
	var raw [][]byte
	raw = append(raw, id.DIDKey, id.DIDKey.Seed())
	nodeRaw, err := id.NodeKey.Raw()
	require.NoError(t, err)
	raw = append(raw, nodeRaw, nodeRaw[:ed25519.SeedSize])
	marshalled, err := crypto.MarshalPrivateKey(id.NodeKey)
	require.NoError(t, err)
	raw = append(raw, marshalled)

	var forms [][]byte
	for _, r := range raw {
		forms = append(forms,
			r,
			[]byte(base64.StdEncoding.EncodeToString(r)),
			[]byte(base64.RawStdEncoding.EncodeToString(r)),
			[]byte(base64.URLEncoding.EncodeToString(r)),
			[]byte(base64.RawURLEncoding.EncodeToString(r)),
			[]byte(hex.EncodeToString(r)),
			[]byte(strings.ToUpper(hex.EncodeToString(r))),
		)
	}
	return forms
}

func TestNoSecretsOnDisk(t *testing.T) {
	root := t.TempDir()
	k := Open(filepath.Join(root, "data"))
	k.WorkFactor = testWF
	id, err := k.Create(testPass, testNow)
	require.NoError(t, err)
	secrets := secretForms(t, id)

	rotated, err := k.Rotate(testPass, testNow.Add(time.Hour))
	require.NoError(t, err)
	secrets = append(secrets, secretForms(t, rotated)...)

	require.NoError(t, k.Export(testPass, filepath.Join(root, "backup.age")))
	imported := Open(filepath.Join(root, "other"))
	imported.WorkFactor = testWF
	_, err = imported.Import(filepath.Join(root, "backup.age"), testPass, false)
	require.NoError(t, err)

	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				return fmt.Errorf("%s contains secret key material", path)
			}
		}
		requireMode0600(t, path)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, files)
}

func TestExistsErrors(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	require.NoError(t, os.Mkdir(locked, 0o000))
	t.Cleanup(func() { _ = os.Chmod(locked, 0o700) })
	_, err := Open(filepath.Join(locked, "data")).Exists()
	require.Error(t, err)
	require.False(t, errors.Is(err, fs.ErrNotExist))
}

// TestPeerIDOfIdentityWithoutNodeKey covers the defensive nil case.
func TestPeerIDOfIdentityWithoutNodeKey(t *testing.T) {
	require.Equal(t, peer.ID(""), (&Identity{}).PeerID())
}

// A keystore this process may not read is an *AccessError naming the
// owner, with a hint; as root every file is readable, so the end-to-end
// tests cover another user's keystore by running the binaries as nobody.
func TestKeystoreAccessError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file; internal/e2e covers this as nobody")
	}
	dir := t.TempDir()
	ks := Keystore{Path: filepath.Join(dir, KeystoreFile), WorkFactor: 10}
	_, err := ks.Create("a passphrase long enough", time.Now())
	require.NoError(t, err)
	require.NoError(t, os.Chmod(ks.Path, 0))
	t.Cleanup(func() { os.Chmod(ks.Path, 0o600) })
	_, err = ks.Unlock("a passphrase long enough")
	var ae *AccessError
	require.True(t, errors.As(err, &ae), "%T: %v", err, err)
	require.ErrorIs(t, err, fs.ErrPermission)
	require.Equal(t, ks.Path, ae.At)
	require.Equal(t, ae.User, ae.Owner)
	require.Contains(t, ae.Hint(), "chmod 600 "+ks.Path)
}
