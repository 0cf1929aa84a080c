package auth

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzParse: Parse never panics, every refusal is a *Failure with a known
// reason, and nothing is accepted but a token this process's issuer minted.
// The issuer's secret is fresh per run, so the hostile seeds (signed with
// testSecret or not at all) and any stored corpus can only be accepted by
// forging HMAC-SHA256.
func FuzzParse(f *testing.F) {
	secret := make([]byte, 32)
	_, err := rand.Read(secret)
	require.NoError(f, err)
	var revokedJTI string
	iss, err := NewIssuer(secret, IssuerOptions{Revoked: func(c *Claims) bool { return c.ID == revokedJTI }})
	require.NoError(f, err)

	sub, _ := keyDID(f, 1)
	minted := map[string]bool{}
	for _, scopes := range [][]string{MemberScopes(), {ScopeAdmin}, {ScopeLedgerRead}} {
		tok, _, err := iss.Mint(sub, scopes, time.Hour, testNow)
		require.NoError(f, err)
		minted[tok] = true
		_, err = iss.Parse("Bearer "+tok, testNow)
		require.NoError(f, err, "the property below would be vacuous")
		f.Add("Bearer " + tok)
	}
	tok, c, err := iss.Mint(sub, []string{ScopeGossipRead}, time.Hour, testNow)
	require.NoError(f, err)
	revokedJTI = c.ID
	f.Add("Bearer " + tok)
	for _, tc := range hostileTokens(f) {
		if len(tc.header) <= 2*MaxHeaderBytes {
			f.Add(tc.header)
		}
	}

	f.Fuzz(func(t *testing.T, header string) {
		got, err := iss.Parse(header, testNow)
		if err != nil {
			require.Nil(t, got)
			var fl *Failure
			require.True(t, errors.As(err, &fl), "refusal %v is not a *Failure", err)
			require.Contains(t, Reasons(), fl.Reason)
			require.NotNil(t, fl.Err)
			return
		}
		raw := header[len("Bearer "):]
		require.True(t, strings.EqualFold(header[:len("Bearer ")], "Bearer "))
		require.True(t, minted[raw], "accepted a token the issuer never minted: %q", header)
		require.False(t, got.Subject.IsZero())
		require.NoError(t, ValidateScopes(got.Scopes))
		require.NotEqual(t, revokedJTI, got.ID)
	})
}
