package trust

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

func TestSignDecodeVerify(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	a, block := signed(t, alice, Attestation{Subject: bob.id, Score: 0.75, Labels: []string{"coop:bakery", "member"},
		IssuedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour), Seq: 3})
	require.NoError(t, a.Verify())
	require.LessOrEqual(t, len(block), MaxSize)

	got, err := Decode(block)
	require.NoError(t, err)
	require.NoError(t, got.Verify())
	require.Equal(t, a.Issuer, got.Issuer)
	require.Equal(t, a.Subject, got.Subject)
	require.Equal(t, 0.75, got.Score)
	require.Equal(t, a.Labels, got.Labels)
	require.True(t, a.IssuedAt.Equal(got.IssuedAt))
	require.True(t, a.ExpiresAt.Equal(got.ExpiresAt))
	require.Equal(t, uint64(3), got.Seq)
	require.Equal(t, a.Signature, got.Signature)
	require.Equal(t, EdgeKey{alice.id, bob.id}, got.Key())

	again, err := got.Encode()
	require.NoError(t, err)
	require.Equal(t, block, again)

	msg, err := got.SigningBytes()
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(msg, []byte("icn-trust-attestation-v1\n")))

	// Never expiring, no labels: the optional keys are left out.
	r, rb := signed(t, alice, Attestation{Subject: bob.id, Score: 0, IssuedAt: t0, Seq: 4})
	got, err = Decode(rb)
	require.NoError(t, err)
	require.True(t, got.ExpiresAt.IsZero())
	require.Nil(t, got.Labels)
	require.NoError(t, r.Verify())
}

func TestSignRefuses(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	a := Attestation{Issuer: alice.id, Subject: bob.id, Score: 0.5, IssuedAt: t0, Seq: 1}
	_, err := Sign(&a, bob.key)
	require.ErrorContains(t, err, "not the key of issuer")
	_, err = Sign(&a, alice.key[:10])
	require.ErrorContains(t, err, "private key is 10 bytes")
	a.Score = 0.12345
	_, err = Sign(&a, alice.key)
	var re *RuleError
	require.ErrorAs(t, err, &re)
	require.Nil(t, a.Signature)
}

func TestVerifyRules(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	base := Attestation{Issuer: alice.id, Subject: bob.id, Score: 0.5, Labels: []string{"a", "b"}, IssuedAt: t0, Seq: 1}
	for _, tc := range []struct {
		name   string
		mutate func(*Attestation)
		want   string
	}{
		{"self", func(a *Attestation) { a.Subject = alice.id }, "attests itself"},
		{"no subject", func(a *Attestation) { a.Subject = did.DID{} }, "no subject"},
		{"seq 0", func(a *Attestation) { a.Seq = 0 }, "seq must be at least 1"},
		{"score above 1", func(a *Attestation) { a.Score = 1.0001 }, "outside [0, 1]"},
		{"negative score", func(a *Attestation) { a.Score = -0.5 }, "outside [0, 1]"},
		{"NaN score", func(a *Attestation) { a.Score = math.NaN() }, "outside [0, 1]"},
		{"five decimals", func(a *Attestation) { a.Score = 0.12345 }, "more than four decimals"},
		{"unsorted labels", func(a *Attestation) { a.Labels = []string{"b", "a"} }, "sorted and unique"},
		{"duplicate labels", func(a *Attestation) { a.Labels = []string{"a", "a"} }, "sorted and unique"},
		{"uppercase label", func(a *Attestation) { a.Labels = []string{"Coop"} }, "lowercase letters"},
		{"space in label", func(a *Attestation) { a.Labels = []string{"a b"} }, "lowercase letters"},
		{"empty label", func(a *Attestation) { a.Labels = []string{""} }, "1 to 32 bytes"},
		{"long label", func(a *Attestation) { a.Labels = []string{strings.Repeat("x", 33)} }, "1 to 32 bytes"},
		{"too many labels", func(a *Attestation) { a.Labels = strings.Split("a b c d e f g h i", " ") }, "at most 8"},
		{"no issued_at", func(a *Attestation) { a.IssuedAt = time.Time{} }, "issued_at is not set"},
		{"before 1970", func(a *Attestation) { a.IssuedAt = time.Unix(-5, 0) }, "not after 1970"},
		{"fraction of a second", func(a *Attestation) { a.IssuedAt = t0.Add(time.Millisecond) }, "not a whole second"},
		{"expires at issue", func(a *Attestation) { a.ExpiresAt = a.IssuedAt }, "is not after issued_at"},
		{"expires before issue", func(a *Attestation) { a.ExpiresAt = a.IssuedAt.Add(-time.Hour) }, "is not after issued_at"},
		{"after 9999", func(a *Attestation) { a.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "after the year 9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			a.Labels = append([]string(nil), base.Labels...)
			tc.mutate(&a)
			err := a.Verify()
			var re *RuleError
			require.ErrorAs(t, err, &re)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, Malformed, NewGraph().Add(&a, t0))
		})
	}
}

func TestVerifyBadSignature(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	a, _ := signed(t, alice, Attestation{Subject: bob.id, Score: 0.5, IssuedAt: t0, Seq: 1})

	unsigned := *a
	unsigned.Signature = nil
	require.ErrorIs(t, unsigned.Verify(), ErrBadSignature)

	for _, mutate := range []func(*Attestation){
		func(a *Attestation) { a.Score = 0.6 },
		func(a *Attestation) { a.Seq = 2 },
		func(a *Attestation) { a.Labels = []string{"x"} },
		func(a *Attestation) { a.ExpiresAt = t0.Add(time.Hour) },
		func(a *Attestation) { a.Subject = newMember(t, "carol", 0).id },
		func(a *Attestation) { a.Signature = append([]byte(nil), a.Signature...); a.Signature[5] ^= 1 },
	} {
		b := *a
		mutate(&b)
		err := b.Verify()
		require.ErrorIs(t, err, ErrBadSignature)
		require.ErrorContains(t, err, "not signed by its issuer")
	}
}

func TestScoreBasisPoints(t *testing.T) {
	for bp := uint16(0); bp <= MaxBP; bp++ {
		s, err := BPToScore(bp)
		require.NoError(t, err)
		back, err := ScoreToBP(s)
		require.NoError(t, err)
		require.Equal(t, bp, back)
		// What a user types with at most four decimals converts exactly.
		text := strconv.FormatFloat(float64(bp)/MaxBP, 'f', 4, 64)
		parsed, err := strconv.ParseFloat(text, 64)
		require.NoError(t, err)
		back, err = ScoreToBP(parsed)
		require.NoError(t, err, text)
		require.Equal(t, bp, back, text)
	}
	_, err := BPToScore(MaxBP + 1)
	require.Error(t, err)
	for _, bad := range []float64{math.NaN(), math.Inf(1), -0.0001, 1.0001, 0.12345, math.Nextafter(0.3, 1)} {
		_, err := ScoreToBP(bad)
		require.Error(t, err, "%v", bad)
	}
}

func TestNormalizeLabels(t *testing.T) {
	got, err := NormalizeLabels([]string{"member", "coop:bakery", "member"})
	require.NoError(t, err)
	require.Equal(t, []string{"coop:bakery", "member"}, got)
	got, err = NormalizeLabels(nil)
	require.NoError(t, err)
	require.Nil(t, got)
	_, err = NormalizeLabels([]string{"Member"})
	require.ErrorContains(t, err, "lowercase")
	require.NoError(t, CheckLabel("a-b_c.d:9"))
}

// reencode decodes a block into its wire form, lets f change it and encodes
// it again, unsigned but otherwise well formed.
func reencode(t *testing.T, block []byte, f func(m map[int]any)) []byte {
	t.Helper()
	var m map[int]any
	require.NoError(t, cbor.Unmarshal(block, &m))
	f(m)
	b, err := cbor.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestDecodeStrict(t *testing.T) {
	alice, bob := newMember(t, "alice", 0), newMember(t, "bob", 0)
	_, block := signed(t, alice, Attestation{Subject: bob.id, Score: 0.5, Labels: []string{"a"}, IssuedAt: t0, Seq: 1})
	_, err := Decode(block)
	require.NoError(t, err)

	indefinite := append([]byte{0xbf}, block[1:]...)
	indefinite = append(indefinite, 0xff)
	nonMinimal := bytes.Replace(block, []byte{0x07, 0x01}, []byte{0x07, 0x18, 0x01}, 1)
	require.NotEqual(t, block, nonMinimal)

	for name, b := range map[string][]byte{
		"empty":         nil,
		"not a map":     {0x01},
		"too large":     append(block, make([]byte, MaxSize)...),
		"trailing byte": append(append([]byte(nil), block...), 0x00),
		"indefinite":    indefinite,
		"non-minimal":   nonMinimal,
		"unknown field": reencode(t, block, func(m map[int]any) { m[9] = 1 }),
		"version 2":     reencode(t, block, func(m map[int]any) { m[0] = 2 }),
		"score > 1":     reencode(t, block, func(m map[int]any) { m[3] = 10001 }),
		"score > u16":   reencode(t, block, func(m map[int]any) { m[3] = 70000 }),
		"empty labels":  reencode(t, block, func(m map[int]any) { m[4] = []string{} }),
		"unsorted":      reencode(t, block, func(m map[int]any) { m[4] = []string{"b", "a"} }),
		"short key":     reencode(t, block, func(m map[int]any) { m[1] = []byte{1, 2, 3} }),
		"same subject":  reencode(t, block, func(m map[int]any) { m[2] = m[1] }),
		"no signature":  reencode(t, block, func(m map[int]any) { delete(m, 8) }),
		"short sig":     reencode(t, block, func(m map[int]any) { m[8] = []byte{1} }),
		"expires 0":     reencode(t, block, func(m map[int]any) { m[6] = 0 }),
		"huge time":     reencode(t, block, func(m map[int]any) { m[5] = uint64(math.MaxUint64) }),
		"seq missing":   reencode(t, block, func(m map[int]any) { delete(m, 7) }),
		"float score":   reencode(t, block, func(m map[int]any) { m[3] = 0.5 }),
	} {
		_, err := Decode(b)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
	// A broken rule is both malformed and a RuleError.
	_, err = Decode(reencode(t, block, func(m map[int]any) { m[7] = 0 }))
	require.ErrorIs(t, err, ErrMalformed)
	var re *RuleError
	require.True(t, errors.As(err, &re))
}
