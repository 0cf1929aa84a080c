package auth

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

// TestMessageVector pins the exact bytes a wallet signs, and the signature
// a wallet holding seed 0x01..0x20 must produce, so other implementations
// can check themselves against it.
func TestMessageVector(t *testing.T) {
	member, priv := keyDID(t, 1) // seed 01 02 ... 20
	nodeSeed := make([]byte, ed25519.SeedSize)
	for i := range nodeSeed {
		nodeSeed[i] = 0x42
	}
	node, err := did.FromPublicKey(ed25519.NewKeyFromSeed(nodeSeed).Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.Equal(t, "did:icn:z9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj", member.String())
	require.Equal(t, "did:icn:z3F5qRPtKg8GhGNnbd3qCj6nVJxWsGxq7pvH84okYLAqf", node.String())

	nonce := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	msg := Message(node, member, nonce)
	require.Equal(t, "icn-gateway-auth-v1\n"+
		"did:icn:z3F5qRPtKg8GhGNnbd3qCj6nVJxWsGxq7pvH84okYLAqf\n"+
		"did:icn:z9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj\n"+
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", string(msg))

	sig := ed25519.Sign(priv, msg)
	require.Equal(t, "59176c62fa22c6c3d4dc827197bef9f329e444a6184a18fef626c676643cf82a"+
		"39f9e39abafb80264214e2ba3fc0515dd34139839a9ce234923e322f8828a102", hex.EncodeToString(sig))
	require.True(t, member.Verify(msg, sig))
}

type chFixture struct {
	ch     *Challenges
	node   did.DID
	member did.DID
	priv   ed25519.PrivateKey
}

func newChFixture(t *testing.T, ttl time.Duration, maxOutstanding int) chFixture {
	t.Helper()
	ch, err := NewChallenges(ttl, maxOutstanding)
	require.NoError(t, err)
	node, _ := keyDID(t, 0x40)
	member, priv := keyDID(t, 1)
	return chFixture{ch: ch, node: node, member: member, priv: priv}
}

func TestChallengeHappyPathAndReplay(t *testing.T) {
	f := newChFixture(t, 5*time.Minute, 10)
	nonce, exp, err := f.ch.Issue(f.member, testNow)
	require.NoError(t, err)
	require.Len(t, nonce, 64)
	_, err = hex.DecodeString(nonce)
	require.NoError(t, err)
	require.Equal(t, testNow.Add(5*time.Minute), exp)
	require.Equal(t, 1, f.ch.Outstanding())

	sig := ed25519.Sign(f.priv, Message(f.node, f.member, nonce))
	require.NoError(t, f.ch.Verify(f.member, nonce, sig, f.node, testNow.Add(time.Minute)))
	require.Equal(t, 0, f.ch.Outstanding())

	// The same, valid, answer a second time: the nonce is gone.
	require.ErrorIs(t, f.ch.Verify(f.member, nonce, sig, f.node, testNow.Add(time.Minute)), ErrUnknownNonce)

	// Two nonces are never equal.
	a, _, err := f.ch.Issue(f.member, testNow)
	require.NoError(t, err)
	b, _, err := f.ch.Issue(f.member, testNow)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestChallengeRefusals(t *testing.T) {
	f := newChFixture(t, 5*time.Minute, 10)
	other, otherPriv := keyDID(t, 0x80)
	otherNode, _ := keyDID(t, 0x60)

	cases := []struct {
		name string
		run  func(nonce string) error
		want error
	}{
		{"expired", func(n string) error {
			sig := ed25519.Sign(f.priv, Message(f.node, f.member, n))
			return f.ch.Verify(f.member, n, sig, f.node, testNow.Add(5*time.Minute))
		}, ErrNonceExpired},
		{"another DID's signature over the same message", func(n string) error {
			sig := ed25519.Sign(otherPriv, Message(f.node, f.member, n))
			return f.ch.Verify(f.member, n, sig, f.node, testNow)
		}, ErrBadSignature},
		{"another DID claims the nonce with its own signature", func(n string) error {
			sig := ed25519.Sign(otherPriv, Message(f.node, other, n))
			return f.ch.Verify(other, n, sig, f.node, testNow)
		}, ErrWrongDID},
		{"signature over a message naming another node", func(n string) error {
			sig := ed25519.Sign(f.priv, Message(otherNode, f.member, n))
			return f.ch.Verify(f.member, n, sig, f.node, testNow)
		}, ErrBadSignature},
		{"signature over the bare nonce", func(n string) error {
			sig := ed25519.Sign(f.priv, []byte(n))
			return f.ch.Verify(f.member, n, sig, f.node, testNow)
		}, ErrBadSignature},
		{"truncated signature", func(n string) error {
			sig := ed25519.Sign(f.priv, Message(f.node, f.member, n))
			return f.ch.Verify(f.member, n, sig[:63], f.node, testNow)
		}, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nonce, _, err := f.ch.Issue(f.member, testNow)
			require.NoError(t, err)
			require.ErrorIs(t, tc.run(nonce), tc.want)
			// Consumed by the failed attempt: a correct answer now fails.
			good := ed25519.Sign(f.priv, Message(f.node, f.member, nonce))
			require.ErrorIs(t, f.ch.Verify(f.member, nonce, good, f.node, testNow), ErrUnknownNonce)
		})
	}
	require.Equal(t, 0, f.ch.Outstanding())

	// A nonce never issued is unknown, and guessing does not disturb the
	// outstanding one.
	nonce, _, err := f.ch.Issue(f.member, testNow)
	require.NoError(t, err)
	require.ErrorIs(t, f.ch.Verify(f.member, "00", make([]byte, 64), f.node, testNow), ErrUnknownNonce)
	require.ErrorIs(t, f.ch.Verify(f.member, "", nil, f.node, testNow), ErrUnknownNonce)
	good := ed25519.Sign(f.priv, Message(f.node, f.member, nonce))
	require.NoError(t, f.ch.Verify(f.member, nonce, good, f.node, testNow))
}

func TestChallengeMaxOutstanding(t *testing.T) {
	f := newChFixture(t, time.Minute, 3)
	for i := range 3 {
		_, _, err := f.ch.Issue(f.member, testNow.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
	}
	// Full of live nonces: refused, and nothing was added.
	_, _, err := f.ch.Issue(f.member, testNow.Add(10*time.Second))
	require.ErrorIs(t, err, ErrTooManyChallenges)
	require.Equal(t, 3, f.ch.Outstanding())

	// Once the first nonce (issued at +0s) has expired it makes room; the
	// two later ones are kept.
	at := testNow.Add(time.Minute)
	n, _, err := f.ch.Issue(f.member, at)
	require.NoError(t, err)
	require.Equal(t, 3, f.ch.Outstanding())
	_, _, err = f.ch.Issue(f.member, at)
	require.ErrorIs(t, err, ErrTooManyChallenges)

	// A consumed nonce frees its slot too.
	require.ErrorIs(t, f.ch.Verify(f.member, n, nil, f.node, at), ErrBadSignature)
	_, _, err = f.ch.Issue(f.member, at)
	require.NoError(t, err)
}

func TestChallengeConstructorAndIssueChecks(t *testing.T) {
	_, err := NewChallenges(0, 1)
	require.Error(t, err)
	_, err = NewChallenges(time.Minute, 0)
	require.Error(t, err)
	f := newChFixture(t, time.Minute, 1)
	_, _, err = f.ch.Issue(did.DID{}, testNow)
	require.ErrorIs(t, err, ErrBadSubject)
}

// TestChallengeConcurrentVerify: many goroutines race to answer one nonce
// correctly; exactly one wins.
func TestChallengeConcurrentVerify(t *testing.T) {
	f := newChFixture(t, time.Minute, 10)
	nonce, _, err := f.ch.Issue(f.member, testNow)
	require.NoError(t, err)
	sig := ed25519.Sign(f.priv, Message(f.node, f.member, nonce))
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.ch.Verify(f.member, nonce, sig, f.node, testNow)
		}()
	}
	wg.Wait()
	ok := 0
	for _, e := range errs {
		if e == nil {
			ok++
		} else {
			require.ErrorIs(t, e, ErrUnknownNonce, fmt.Sprint(e))
		}
	}
	require.Equal(t, 1, ok)
}
