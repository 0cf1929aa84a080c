package edverify

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/stretchr/testify/require"
)

func testRand(t testing.TB) *rand.Rand {
	return rand.New(rand.NewChaCha8([32]byte([]byte(t.Name() + "................................"))))
}

func randScalar(r *rand.Rand) *edwards25519.Scalar {
	var b [64]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(b[:])
	if err != nil {
		panic(err)
	}
	return s
}

// same checks that Verify answers what crypto/ed25519 answers, and returns
// that answer.
func same(t *testing.T, v *Verifier, pub, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(pub, msg, sig)
	k, err := v.Prepare(pub)
	if err != nil {
		require.False(t, want, "Prepare refused a key crypto/ed25519 accepts a signature from")
		return false
	}
	require.Equal(t, want, v.Verify(k, msg, sig), "pub %x msg %x sig %x", pub, msg, sig)
	return want
}

func TestValidAndTamperedSignatures(t *testing.T) {
	v := NewVerifier()
	r := testRand(t)
	for i := 0; i < 200; i++ {
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		key := ed25519.NewKeyFromSeed(seed[:])
		pub := key.Public().(ed25519.PublicKey)
		msg := make([]byte, r.IntN(400))
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		sig := ed25519.Sign(key, msg)
		require.True(t, same(t, v, pub, msg, sig))

		bad := append([]byte(nil), sig...)
		bad[r.IntN(len(bad))] ^= 1 << r.IntN(8)
		require.False(t, same(t, v, pub, msg, bad))
		if len(msg) > 0 {
			m := append([]byte(nil), msg...)
			m[r.IntN(len(m))] ^= 1 << r.IntN(8)
			require.False(t, same(t, v, pub, m, sig))
		}
		require.False(t, same(t, v, pub, msg, sig[:63]))
	}
}

// S + l encodes the same scalar as S, not canonically: both refuse it.
func TestNonCanonicalS(t *testing.T) {
	v := NewVerifier()
	pub, key, _ := ed25519.GenerateKey(nil)
	msg := []byte("pay 10")
	sig := ed25519.Sign(key, msg)
	l, _ := hex.DecodeString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	bad := append([]byte(nil), sig...)
	var carry uint16
	for i := 0; i < 32; i++ {
		x := uint16(bad[32+i]) + uint16(l[i]) + carry
		bad[32+i], carry = byte(x), x>>8
	}
	if bad[63]&224 == 0 { // still below 2^253: only SetCanonicalBytes refuses it
		require.False(t, same(t, v, pub, msg, bad))
	}
	require.True(t, same(t, v, pub, msg, sig))
}

// eightTorsion is a point of order 8.
func eightTorsion(t *testing.T) *edwards25519.Point {
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	p, err := new(edwards25519.Point).SetBytes(b)
	require.NoError(t, err)
	var eight, four [32]byte
	eight[0], four[0] = 8, 4
	s8, _ := edwards25519.NewScalar().SetCanonicalBytes(eight[:])
	s4, _ := edwards25519.NewScalar().SetCanonicalBytes(four[:])
	id := edwards25519.NewIdentityPoint()
	require.Equal(t, 1, new(edwards25519.Point).ScalarMult(s8, p).Equal(id))
	require.Equal(t, 0, new(edwards25519.Point).ScalarMult(s4, p).Equal(id))
	return p
}

// Keys with a small-order component: the cofactorless equation holds for
// some signatures and not others, depending on k mod 8. The pieces of k must
// add up to k exactly for Verify to agree on every one.
func TestMixedOrderKeys(t *testing.T) {
	v := NewVerifier()
	r := testRand(t)
	t8 := eightTorsion(t)
	accepted, refused := 0, 0
	for i := 0; i < 400; i++ {
		a := randScalar(r)
		pubPoint := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), t8)
		pub := pubPoint.Bytes()
		msg := []byte{byte(i), byte(i >> 8)}

		// R = [rr]B + [tt]T8, S = rr + k a: valid when [k]T8 + [tt]T8 = 0.
		rr := randScalar(r)
		var ttb [32]byte
		ttb[0] = byte(r.IntN(8))
		tt, _ := edwards25519.NewScalar().SetCanonicalBytes(ttb[:])
		R := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(rr), new(edwards25519.Point).ScalarMult(tt, t8))
		h := sha512.New()
		h.Write(R.Bytes())
		h.Write(pub)
		h.Write(msg)
		k, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
		s := edwards25519.NewScalar().MultiplyAdd(k, a, rr)
		sig := append(R.Bytes(), s.Bytes()...)
		if same(t, v, pub, msg, sig) {
			accepted++
		} else {
			refused++
		}
	}
	t.Logf("accepted %d, refused %d", accepted, refused)
	require.Positive(t, accepted)
	require.Positive(t, refused)
}

// Small-order keys: [k]A is the identity or a torsion point.
func TestSmallOrderKeys(t *testing.T) {
	v := NewVerifier()
	r := testRand(t)
	for _, enc := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	} {
		pub, _ := hex.DecodeString(enc)
		for i := 0; i < 16; i++ {
			s := randScalar(r)
			sig := append(new(edwards25519.Point).ScalarBaseMult(s).Bytes(), s.Bytes()...)
			same(t, v, pub, []byte{byte(i)}, sig)
		}
	}
}

// Scalars at the edges: S = 0, S = 1, S = l-1.
func TestEdgeScalars(t *testing.T) {
	v := NewVerifier()
	pub, _, _ := ed25519.GenerateKey(nil)
	lMinus1, _ := hex.DecodeString("ecd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	one := make([]byte, 32)
	one[0] = 1
	for _, sb := range [][]byte{make([]byte, 32), one, lMinus1} {
		s, err := edwards25519.NewScalar().SetCanonicalBytes(sb)
		require.NoError(t, err)
		R := new(edwards25519.Point).ScalarBaseMult(s)
		same(t, v, pub, []byte("m"), append(R.Bytes(), sb...))
	}
}

func FuzzVerify(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(nil)
	f.Add([]byte(pub), []byte("msg"), ed25519.Sign(key, []byte("msg")))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	v := NewVerifier()
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			return
		}
		same(t, v, pub, msg, sig)
	})
}

func BenchmarkVerify(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 200)
	sig := ed25519.Sign(key, msg)
	b.Run("crypto-ed25519", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("prepared", func(b *testing.B) {
		v := NewVerifier()
		k, err := v.Prepare(pub)
		require.NoError(b, err)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if !v.Verify(k, msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("prepare", func(b *testing.B) {
		v := NewVerifier()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := v.Prepare(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-verifier", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			NewVerifier()
		}
	})
}

// FuzzVerifySigned fuzzes the accepting side too: the key is [a]B plus a
// small-order point picked by the input, the signature is built the way the
// mixed-order test builds them (valid for the cofactorless equation about
// one time in eight), then possibly damaged by flip; Verify must answer as
// crypto/ed25519 does.
func FuzzVerifySigned(f *testing.F) {
	f.Add([]byte("seed"), byte(0), byte(0), []byte("msg"), uint16(1000)) // valid
	f.Add([]byte("seed"), byte(0), byte(0), []byte("msg"), uint16(0))    // R damaged
	f.Add([]byte("seed"), byte(3), byte(5), []byte(""), uint16(700))
	v := NewVerifier()
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	t8, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		f.Fatal(err)
	}
	small := func(i byte) *edwards25519.Point {
		var sb [32]byte
		sb[0] = i % 8
		s, _ := edwards25519.NewScalar().SetCanonicalBytes(sb[:])
		return new(edwards25519.Point).ScalarMult(s, t8)
	}
	f.Fuzz(func(t *testing.T, seed []byte, keyTorsion, rTorsion byte, msg []byte, flip uint16) {
		h := sha512.Sum512(seed)
		a, _ := edwards25519.NewScalar().SetUniformBytes(h[:])
		h2 := sha512.Sum512(h[:])
		r, _ := edwards25519.NewScalar().SetUniformBytes(h2[:])
		pub := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), small(keyTorsion)).Bytes()
		R := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(r), small(rTorsion))
		d := sha512.New()
		d.Write(R.Bytes())
		d.Write(pub)
		d.Write(msg)
		k, _ := edwards25519.NewScalar().SetUniformBytes(d.Sum(nil))
		sig := append(R.Bytes(), edwards25519.NewScalar().MultiplyAdd(k, a, r).Bytes()...)
		if bit := int(flip); bit < 8*len(sig) {
			sig[bit/8] ^= 1 << (bit % 8)
		}
		same(t, v, pub, msg, sig)
	})
}
