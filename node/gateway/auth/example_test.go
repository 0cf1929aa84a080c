package auth_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/gateway/auth"
)

// A wallet builds the challenge message, signs it with its DID key, and
// the node checks the answer once.
func ExampleMessage() {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	member, _ := did.FromPublicKey(priv.Public().(ed25519.PublicKey))
	node, _ := did.Parse("did:icn:z3F5qRPtKg8GhGNnbd3qCj6nVJxWsGxq7pvH84okYLAqf")

	challenges, _ := auth.NewChallenges(5*time.Minute, 1000)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	nonce, _, _ := challenges.Issue(member, now)

	msg := auth.Message(node, member, nonce)
	sig := ed25519.Sign(priv, msg)
	fmt.Println("first answer:", challenges.Verify(member, nonce, sig, node, now))
	fmt.Println("replayed:", errors.Is(challenges.Verify(member, nonce, sig, node, now), auth.ErrUnknownNonce))
	// Output:
	// first answer: <nil>
	// replayed: true
}

// Every refusal carries one reason, usable as a metric label.
func ExampleIssuer_Parse() {
	iss, err := auth.NewIssuer([]byte("too short"), auth.IssuerOptions{})
	fmt.Println(err)

	iss, _ = auth.NewIssuer([]byte("0123456789abcdef0123456789abcdef"), auth.IssuerOptions{})
	member, _ := did.Parse("did:icn:z9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj")
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tok, _, _ := iss.Mint(member, auth.MemberScopes(), time.Hour, now)

	claims, err := iss.Parse("Bearer "+tok, now)
	fmt.Println(claims.Subject, claims.Has(auth.ScopeLedgerWrite), claims.Has(auth.ScopeAdmin), err)

	for _, h := range []string{"", "Basic abc", "Bearer " + tok} {
		_, err := iss.Parse(h, now.Add(2*time.Hour))
		var f *auth.Failure
		if errors.As(err, &f) {
			fmt.Println(f.Reason)
		}
	}
	// Output:
	// gateway JWT secret is 9 bytes; it must be at least 32 bytes: make one with `openssl rand -hex 32`
	// did:icn:z9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj true false <nil>
	// missing
	// malformed
	// expired
}
