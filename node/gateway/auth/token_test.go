package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	testNow    = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
)

// keyDID returns a DID and its private key from a one-byte seed pattern.
func keyDID(t testing.TB, b byte) (did.DID, ed25519.PrivateKey) {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	d, err := did.FromPublicKey(priv.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return d, priv
}

func newIssuer(t testing.TB, opts IssuerOptions) *Issuer {
	t.Helper()
	iss, err := NewIssuer(testSecret, opts)
	require.NoError(t, err)
	return iss
}

// validClaims is a claim set our issuer would mint, as a map the hostile
// cases edit.
func validClaims(sub did.DID) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":    sub.String(),
		"iat":    testNow.Unix(),
		"nbf":    testNow.Unix(),
		"exp":    testNow.Add(time.Hour).Unix(),
		"aud":    Audience,
		"jti":    "00112233445566778899aabbccddeeff",
		"scopes": []string{ScopeLedgerRead},
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func b64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// handMade builds header.payload.signature by hand, the signature being
// HMAC-SHA256 with key when key is non-nil and empty otherwise.
func handMade(t testing.TB, header map[string]any, claims jwt.MapClaims, key []byte) string {
	t.Helper()
	signing := b64(t, header) + "." + b64(t, claims)
	if key == nil {
		return signing + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

type hostileCase struct {
	name   string
	header string
	reason string
	is     error // optional sentinel the Failure must wrap
}

func hostileTokens(t testing.TB) []hostileCase {
	t.Helper()
	sub, _ := keyDID(t, 1)
	good := validClaims(sub)
	other := []byte("ffffffffffffffffffffffffffffffff")
	hs256 := func(c jwt.MapClaims) string { return "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, c) }
	return []hostileCase{
		{"empty header", "", ReasonMissing, ErrMissingHeader},
		{"oversized header", "Bearer " + strings.Repeat("a", MaxHeaderBytes), ReasonTooLarge, ErrHeaderTooLarge},
		{"oversized header of dots", "Bearer " + strings.Repeat(".", 64*1024), ReasonTooLarge, ErrHeaderTooLarge},
		{"no Bearer scheme", sign(t, jwt.SigningMethodHS256, testSecret, good), ReasonMalformed, ErrNotBearer},
		{"Basic scheme", "Basic dXNlcjpwYXNz", ReasonMalformed, ErrNotBearer},
		{"Bearer alone", "Bearer ", ReasonMalformed, ErrNotBearer},
		{"Bearer with two spaces", "Bearer  " + sign(t, jwt.SigningMethodHS256, testSecret, good), ReasonMalformed, ErrNotBearer},
		{"garbage", "Bearer not-a-token", ReasonMalformed, jwt.ErrTokenMalformed},
		{"three empty segments", "Bearer ..", ReasonMalformed, jwt.ErrTokenMalformed},
		{"four segments", hs256(good) + ".x", ReasonMalformed, jwt.ErrTokenMalformed},
		{"header not JSON", "Bearer " + base64.RawURLEncoding.EncodeToString([]byte("{")) + ".e30.", ReasonMalformed, jwt.ErrTokenMalformed},
		{"exp not a number", hs256(with(good, "exp", "tomorrow")), ReasonMalformed, jwt.ErrTokenMalformed},
		{"alg none", "Bearer " + handMade(t, map[string]any{"alg": "none", "typ": "JWT"}, good, nil), ReasonAlg, nil},
		{"alg None", "Bearer " + handMade(t, map[string]any{"alg": "None", "typ": "JWT"}, good, nil), ReasonAlg, nil},
		{"alg missing", "Bearer " + handMade(t, map[string]any{"typ": "JWT"}, good, testSecret), ReasonAlg, nil},
		{"alg unknown", "Bearer " + handMade(t, map[string]any{"alg": "XYZ"}, good, testSecret), ReasonAlg, nil},
		{"HS512 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS512, testSecret, good), ReasonAlg, nil},
		{"HS384 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS384, testSecret, good), ReasonAlg, nil},
		{"RS256 header, HMAC with the secret (alg confusion)", "Bearer " + handMade(t, map[string]any{"alg": "RS256", "typ": "JWT"}, good, testSecret), ReasonAlg, nil},
		{"EdDSA header, HMAC with the secret", "Bearer " + handMade(t, map[string]any{"alg": "EdDSA"}, good, testSecret), ReasonAlg, nil},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, other, good), ReasonSignature, jwt.ErrTokenSignatureInvalid},
		{"signature stripped", "Bearer " + strings.TrimRightFunc(hs256(good)[len("Bearer "):], func(r rune) bool { return r != '.' }), ReasonSignature, jwt.ErrTokenSignatureInvalid},
		{"expired", hs256(with(with(good, "iat", testNow.Add(-2*time.Hour).Unix()), "exp", testNow.Add(-time.Hour).Unix())), ReasonExpired, jwt.ErrTokenExpired},
		{"not yet valid", hs256(with(good, "nbf", testNow.Add(time.Minute).Unix())), ReasonNotYetValid, jwt.ErrTokenNotValidYet},
		{"issued in the future", hs256(with(good, "iat", testNow.Add(time.Minute).Unix())), ReasonNotYetValid, jwt.ErrTokenUsedBeforeIssued},
		{"wrong audience", hs256(with(good, "aud", "other-service")), ReasonAudience, jwt.ErrTokenInvalidAudience},
		{"no audience", hs256(with(good, "aud", nil)), ReasonClaims, jwt.ErrTokenRequiredClaimMissing},
		{"missing exp", hs256(with(good, "exp", nil)), ReasonClaims, jwt.ErrTokenRequiredClaimMissing},
		{"missing jti", hs256(with(good, "jti", nil)), ReasonClaims, ErrMissingID},
		{"revoked jti", hs256(with(good, "jti", "revokedrevokedrevokedrevoked0000")), ReasonRevoked, ErrRevoked},
		{"sub not a DID", hs256(with(good, "sub", "alice")), ReasonClaims, ErrBadSubject},
		{"sub missing", hs256(with(good, "sub", nil)), ReasonClaims, ErrBadSubject},
		{"unknown scope", hs256(with(good, "scopes", []string{ScopeLedgerRead, "root"})), ReasonClaims, ErrUnknownScope},
		{"no scopes", hs256(with(good, "scopes", nil)), ReasonClaims, ErrUnknownScope},
	}
}

func revokedSet(c *Claims) bool { return c.ID == "revokedrevokedrevokedrevoked0000" }

func TestParseRefusesHostileTokens(t *testing.T) {
	iss := newIssuer(t, IssuerOptions{Revoked: revokedSet})
	for _, tc := range hostileTokens(t) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := iss.Parse(tc.header, testNow)
			require.Error(t, err)
			require.Nil(t, c)
			var f *Failure
			require.True(t, errors.As(err, &f), "error %v is not a *Failure", err)
			require.Equal(t, tc.reason, f.Reason, "error: %v", err)
			require.Contains(t, Reasons(), f.Reason)
			require.Same(t, f.Err, errors.Unwrap(err))
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}

func TestFailureMessage(t *testing.T) {
	f := &Failure{Reason: ReasonExpired, Err: jwt.ErrTokenExpired}
	require.Equal(t, "gateway token refused (expired): token is expired; get a new token from this node's gateway", f.Error())
	require.ErrorIs(t, f, jwt.ErrTokenExpired)
	require.Contains(t, (&Failure{Reason: ReasonTooLarge}).Error(), "Authorization: Bearer <token>")
	require.Len(t, Reasons(), 10)
}

func TestMintParseRoundTrip(t *testing.T) {
	revokedJTI := ""
	iss := newIssuer(t, IssuerOptions{Revoked: func(c *Claims) bool { return c.ID == revokedJTI }})
	sub, _ := keyDID(t, 1)
	now := testNow.Add(500 * time.Millisecond)
	tok, minted, err := iss.Mint(sub, MemberScopes(), time.Hour, now)
	require.NoError(t, err)
	require.Len(t, minted.ID, 32)
	require.Equal(t, testNow, minted.IssuedAt)
	require.Equal(t, testNow.Add(time.Hour), minted.ExpiresAt)

	got, err := iss.Parse("Bearer "+tok, now)
	require.NoError(t, err)
	require.Equal(t, sub, got.Subject)
	require.Equal(t, minted.ID, got.ID)
	require.Equal(t, MemberScopes(), got.Scopes)
	require.True(t, got.ExpiresAt.Equal(minted.ExpiresAt))
	require.True(t, got.IssuedAt.Equal(minted.IssuedAt))
	require.True(t, got.NotBefore.Equal(minted.NotBefore))

	// The scheme is case-insensitive (RFC 9110).
	_, err = iss.Parse("bearer "+tok, now)
	require.NoError(t, err)

	// The wire claims are exactly the documented ones.
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"alg":"HS256","typ":"JWT"}`, string(hdr))
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var wire map[string]any
	require.NoError(t, json.Unmarshal(body, &wire))
	require.Equal(t, Audience, wire["aud"])
	require.Equal(t, sub.String(), wire["sub"])
	require.Equal(t, minted.ID, wire["jti"])
	require.ElementsMatch(t, []string{"sub", "iat", "nbf", "exp", "aud", "jti", "scopes"}, keys(wire))

	// Two mints never share a jti.
	_, again, err := iss.Mint(sub, MemberScopes(), time.Hour, now)
	require.NoError(t, err)
	require.NotEqual(t, minted.ID, again.ID)

	// Revoking the jti refuses the same token afterwards.
	revokedJTI = minted.ID
	_, err = iss.Parse("Bearer "+tok, now)
	var f *Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, ReasonRevoked, f.Reason)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestParseLeewayEdges(t *testing.T) {
	iss := newIssuer(t, IssuerOptions{})
	sub, _ := keyDID(t, 1)
	tok, c, err := iss.Mint(sub, []string{ScopeAdmin}, time.Hour, testNow)
	require.NoError(t, err)
	h := "Bearer " + tok

	reason := func(at time.Time) string {
		_, err := iss.Parse(h, at)
		if err == nil {
			return ""
		}
		var f *Failure
		require.ErrorAs(t, err, &f)
		return f.Reason
	}
	require.Equal(t, "", reason(c.ExpiresAt.Add(-time.Second)))
	require.Equal(t, "", reason(c.ExpiresAt.Add(DefaultLeeway-time.Second)), "within leeway after exp")
	require.Equal(t, ReasonExpired, reason(c.ExpiresAt.Add(DefaultLeeway+time.Second)))
	require.Equal(t, "", reason(c.NotBefore.Add(-DefaultLeeway+time.Second)), "within leeway before nbf")
	require.Equal(t, ReasonNotYetValid, reason(c.NotBefore.Add(-DefaultLeeway-time.Second)))

	// A custom leeway is honoured.
	strict, err := NewIssuer(testSecret, IssuerOptions{Leeway: time.Second})
	require.NoError(t, err)
	_, err = strict.Parse(h, c.ExpiresAt.Add(5*time.Second))
	var f *Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, ReasonExpired, f.Reason)
}

func TestNewIssuerRefusesWeakSecret(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31} {
		_, err := NewIssuer(make([]byte, n), IssuerOptions{})
		var w *WeakSecretError
		require.ErrorAs(t, err, &w)
		require.Equal(t, n, w.Len)
		require.Contains(t, err.Error(), "at least 32 bytes")
		require.Contains(t, err.Error(), "openssl rand -hex 32")
	}
	_, err := NewIssuer(make([]byte, 32), IssuerOptions{})
	require.NoError(t, err)
	_, err = NewIssuer(make([]byte, 32), IssuerOptions{Leeway: -time.Second})
	require.Error(t, err)
}

func TestIssuerCopiesSecret(t *testing.T) {
	secret := []byte(string(testSecret))
	iss, err := NewIssuer(secret, IssuerOptions{})
	require.NoError(t, err)
	sub, _ := keyDID(t, 1)
	tok, _, err := iss.Mint(sub, []string{ScopeLedgerRead}, time.Hour, testNow)
	require.NoError(t, err)
	secret[0] ^= 0xff
	_, err = iss.Parse("Bearer "+tok, testNow)
	require.NoError(t, err)
}

func TestMintRefusesBadInput(t *testing.T) {
	iss := newIssuer(t, IssuerOptions{})
	sub, _ := keyDID(t, 1)
	_, _, err := iss.Mint(did.DID{}, []string{ScopeLedgerRead}, time.Hour, testNow)
	require.ErrorIs(t, err, ErrBadSubject)
	_, _, err = iss.Mint(sub, []string{"root"}, time.Hour, testNow)
	require.ErrorIs(t, err, ErrUnknownScope)
	_, _, err = iss.Mint(sub, nil, time.Hour, testNow)
	require.ErrorIs(t, err, ErrUnknownScope)
	_, _, err = iss.Mint(sub, []string{ScopeLedgerRead}, 0, testNow)
	require.Error(t, err)
}

func TestClaimsHas(t *testing.T) {
	member := &Claims{Scopes: MemberScopes()}
	for _, s := range MemberScopes() {
		require.True(t, member.Has(s), s)
	}
	require.False(t, member.Has(ScopeAdmin))
	require.False(t, member.Has("root"))

	read := &Claims{Scopes: []string{ScopeLedgerRead}}
	require.True(t, read.Has(ScopeLedgerRead))
	require.False(t, read.Has(ScopeLedgerWrite))
	require.False(t, read.Has(ScopeGossipRead))

	admin := &Claims{Scopes: []string{ScopeAdmin}}
	for _, s := range AllScopes() {
		require.True(t, admin.Has(s), s)
	}
	var none *Claims
	require.False(t, none.Has(ScopeLedgerRead))
}

func TestScopes(t *testing.T) {
	require.Equal(t, []string{"ledger:read", "ledger:write", "gossip:read", "gossip:write", "trust:read"}, MemberScopes())
	require.NotContains(t, MemberScopes(), ScopeAdmin)
	for _, s := range AllScopes() {
		require.True(t, IsScope(s))
	}
	for _, s := range []string{"", "Admin", "ledger", "ledger:*", " admin"} {
		require.False(t, IsScope(s), s)
	}
	require.NoError(t, ValidateScopes([]string{ScopeAdmin}))
	require.ErrorIs(t, ValidateScopes([]string{"ledger:read", "x"}), ErrUnknownScope)
	// The fresh slice cannot be used to alter the package's list.
	m := MemberScopes()
	m[0] = "admin"
	require.Equal(t, ScopeLedgerRead, MemberScopes()[0])
}
