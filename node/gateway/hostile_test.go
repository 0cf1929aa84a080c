package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// jwtWith signs header and claims with an HMAC of the secret (or none).
func jwtWith(t *testing.T, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Every hostile token and request is refused with its documented status,
// counted by reason, logged as SECURITY with the remote address, and
// leaves the ledger as it was.
func TestHostileRequestsAreRefused(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	ctx := context.Background()
	_, err := n.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "hrs", CreditLimit: "100"})
	require.NoError(t, err)
	alice, mallory := newMember(t), newMember(t)
	now := time.Now().Unix()
	claims := func(over map[string]any) map[string]any {
		c := map[string]any{"sub": alice.DID.String(), "aud": auth.Audience, "iat": now, "nbf": now, "exp": now + 3600,
			"jti": "0123456789abcdef0123456789abcdef", "scopes": auth.MemberScopes()}
		for k, v := range over {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	hs := func(secret []byte, h func() hash.Hash) func([]byte) []byte {
		return func(in []byte) []byte {
			m := hmac.New(h, secret)
			m.Write(in)
			return m.Sum(nil)
		}
	}
	h256, h512 := sha256.New, sha512.New
	good := hs(g.secret, h256)
	hdr := map[string]any{"alg": "HS256", "typ": "JWT"}
	revoked := jwtWith(t, hdr, claims(map[string]any{"jti": "ffffffffffffffffffffffffffffffff"}), good)
	g.revoked["ffffffffffffffffffffffffffffffff"] = true

	tokens := []struct {
		name, header, reason string
	}{
		{"no header", "", auth.ReasonMissing},
		{"alg none", "Bearer " + jwtWith(t, map[string]any{"alg": "none", "typ": "JWT"}, claims(nil), nil), auth.ReasonAlg},
		{"HS512", "Bearer " + jwtWith(t, map[string]any{"alg": "HS512", "typ": "JWT"}, claims(nil), hs(g.secret, h512)), auth.ReasonAlg},
		{"RS256 with the secret as key", "Bearer " + jwtWith(t, map[string]any{"alg": "RS256", "typ": "JWT"}, claims(nil), good), auth.ReasonAlg},
		{"expired", "Bearer " + jwtWith(t, hdr, claims(map[string]any{"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}), good), auth.ReasonExpired},
		{"not yet valid", "Bearer " + jwtWith(t, hdr, claims(map[string]any{"nbf": now + 3600, "exp": now + 7200}), good), auth.ReasonNotYetValid},
		{"wrong secret", "Bearer " + jwtWith(t, hdr, claims(nil), hs([]byte(strings.Repeat("x", 32)), h256)), auth.ReasonSignature},
		{"wrong audience", "Bearer " + jwtWith(t, hdr, claims(map[string]any{"aud": "other"}), good), auth.ReasonAudience},
		{"no expiry", "Bearer " + jwtWith(t, hdr, claims(map[string]any{"exp": nil}), good), auth.ReasonClaims},
		{"revoked", "Bearer " + revoked, auth.ReasonRevoked},
		{"malformed", "Bearer not.a.jwt", auth.ReasonMalformed},
		{"not bearer", "Basic YWxpY2U6c2VjcmV0", auth.ReasonMalformed},
		{"oversized header", "Bearer " + strings.Repeat("a", 5000), auth.ReasonTooLarge},
	}
	headBefore := n.LedgerHead()
	for _, tc := range tokens {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.MetricSum(t, g.reg, "icn_gateway_auth_failures_total", map[string]string{"reason": tc.reason})
			var h []string
			if tc.header != "" {
				h = []string{"Authorization", tc.header}
			}
			resp, data := g.request(http.MethodGet, "/v1/ledger/balances/"+alice.DID.String(), "", nil, h...)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", data)
			require.NotEmpty(t, apiError(t, data).Hint)
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			require.Equal(t, before+1, testutil.MetricSum(t, g.reg, "icn_gateway_auth_failures_total", map[string]string{"reason": tc.reason}))
		})
	}
	require.Contains(t, g.log.String(), "SECURITY gateway request refused")
	require.Contains(t, g.log.String(), "remote=127.0.0.1:")

	member := g.login(alice).Token
	readOnly := g.token(alice.DID, auth.ScopeLedgerRead)
	prep := func() gatewayapi.Prepared {
		var p gatewayapi.Prepared
		g.do(http.MethodPost, gatewayapi.RouteEntriesPrepare, member, gatewayapi.PrepareRequest{To: mallory.DID.String(), Amount: "1", Currency: "hrs"}, http.StatusOK, &p)
		return p
	}
	signedBy := func(key ed25519.PrivateKey) gatewayapi.Entry {
		p := prep()
		p.Entry.Signature = ed25519.Sign(key, p.SigningBytes)
		return p.Entry
	}
	overLimit := prep()
	overLimit.Entry.Postings[0].Units, overLimit.Entry.Postings[1].Units = -1000, 1000
	le, err := overLimit.Entry.Ledger()
	require.NoError(t, err)
	sb, err := le.SigningBytes()
	require.NoError(t, err)
	overLimit.Entry.Signature = ed25519.Sign(alice.Key, sb)
	orphan := signedBy(alice.Key)
	orphan.Seq, orphan.Prev = 2, ledger.BlockCID([]byte("an entry this node never saw")).String()
	le, err = orphan.Ledger()
	require.NoError(t, err)
	_, _, err = ledger.Sign(le, alice.Key)
	require.NoError(t, err)
	orphan.Signature = le.Signature
	deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)

	requests := []struct {
		name         string
		method, path string
		token        string
		body         any
		hdr          []string
		want         int
	}{
		{"scope missing", http.MethodPost, gatewayapi.RouteEntries, readOnly, signedBy(alice.Key), nil, http.StatusForbidden},
		{"entry signed by another DID's key", http.MethodPost, gatewayapi.RouteEntries, member, signedBy(mallory.Key), nil, http.StatusUnprocessableEntity},
		{"entry by another author than the token", http.MethodPost, gatewayapi.RouteEntries, g.login(mallory).Token, signedBy(alice.Key), nil, http.StatusForbidden},
		{"entry over the credit limit", http.MethodPost, gatewayapi.RouteEntries, member, overLimit.Entry, nil, http.StatusUnprocessableEntity},
		{"entry with unknown parents", http.MethodPost, gatewayapi.RouteEntries, member, orphan, nil, http.StatusConflict},
		{"unsigned entry", http.MethodPost, gatewayapi.RouteEntries, member, prep().Entry, nil, http.StatusBadRequest},
		{"junk CBOR", http.MethodPost, gatewayapi.RouteEntries, member, []byte{0xa1, 0x00, 0xff}, []string{"Content-Type", gatewayapi.ContentTypeCBOR}, http.StatusBadRequest},
		// Nesting is refused at encoding/json's depth limit, before the rest
		// of the body is read; a huge value at the body limit.
		{"JSON bomb: nesting", http.MethodPost, gatewayapi.RouteEntries, member, deep, nil, http.StatusBadRequest},
		{"JSON bomb: a huge value", http.MethodPost, gatewayapi.RouteEntries, member, `{"memo":"` + strings.Repeat("a", gateway.DefaultMaxBodyBytes) + `"}`, nil, http.StatusRequestEntityTooLarge},
		{"unknown field", http.MethodPost, gatewayapi.RouteEntries, member, `{"author":"x","evil":1}`, nil, http.StatusBadRequest},
		{"two objects", http.MethodPost, gatewayapi.RouteEntriesPrepare, member, `{"to":"x"}{"to":"y"}`, nil, http.StatusBadRequest},
		{"wrong content type", http.MethodPost, gatewayapi.RouteEntries, member, []byte("x"), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"body over max_body_bytes", http.MethodPost, gatewayapi.RouteEntries, member, make([]byte, gateway.DefaultMaxBodyBytes+1), []string{"Content-Type", gatewayapi.ContentTypeCBOR}, http.StatusRequestEntityTooLarge},
		{"bad DID in path", http.MethodGet, "/v1/ledger/balances/did:icn:nope", member, nil, nil, http.StatusBadRequest},
		{"no such route", http.MethodGet, "/v1/nope", member, nil, nil, http.StatusNotFound},
		{"publish as the node without admin", http.MethodPost, "/v1/gossip/chat", member, gatewayapi.GossipPublishRequest{Text: "hi"}, nil, http.StatusForbidden},
		{"publish on a ledger topic", http.MethodPost, "/v1/gossip/ledger:hrs", member, gatewayapi.GossipPublishRequest{Envelope: envelope(t, n, alice, "ledger:hrs", 1)}, nil, http.StatusForbidden},
		{"envelope by another DID", http.MethodPost, "/v1/gossip/chat", member, gatewayapi.GossipPublishRequest{Envelope: envelope(t, n, mallory, "chat", 1)}, nil, http.StatusForbidden},
		{"envelope signed for another topic", http.MethodPost, "/v1/gossip/chat", member, gatewayapi.GossipPublishRequest{Envelope: envelope(t, n, alice, "other", 1)}, nil, http.StatusUnprocessableEntity},
	}
	for _, tc := range requests {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := g.request(tc.method, tc.path, tc.token, tc.body, tc.hdr...)
			require.Equal(t, tc.want, resp.StatusCode, "%s", data)
			apiError(t, data)
		})
	}

	// Challenge abuse: a replayed nonce, and a signature by another DID.
	var ch gatewayapi.Challenge
	g.do(http.MethodPost, gatewayapi.RouteAuthChallenge, "", gatewayapi.ChallengeRequest{DID: alice.DID.String()}, http.StatusOK, &ch)
	g.do(http.MethodPost, gatewayapi.RouteAuthVerify, "", gatewayapi.VerifyRequest{DID: alice.DID.String(), Nonce: ch.Nonce,
		Signature: ed25519.Sign(mallory.Key, []byte(ch.Message))}, http.StatusUnauthorized, nil)
	// The failed attempt used the nonce up: even the right signature fails.
	g.do(http.MethodPost, gatewayapi.RouteAuthVerify, "", gatewayapi.VerifyRequest{DID: alice.DID.String(), Nonce: ch.Nonce,
		Signature: ed25519.Sign(alice.Key, []byte(ch.Message))}, http.StatusUnauthorized, nil)
	require.Equal(t, float64(1), testutil.MetricSum(t, g.reg, "icn_gateway_auth_failures_total", map[string]string{"reason": "bad_signature"}))
	require.Equal(t, float64(1), testutil.MetricSum(t, g.reg, "icn_gateway_auth_failures_total", map[string]string{"reason": "unknown_nonce"}))

	// Nothing was stored by any of it.
	require.Equal(t, headBefore.StateHash, n.LedgerHead().StateHash)
	require.Equal(t, headBefore.Entries, n.LedgerHead().Entries)
}

// envelope is a member-signed text envelope for topic on n's network.
func envelope(t *testing.T, n *harness.Node, m member, topic string, seq uint64) *gatewayapi.Envelope {
	t.Helper()
	e := &gossip.Envelope{Author: m.DID, Seq: uint64(time.Now().UnixMicro()) + seq, Timestamp: uint64(time.Now().UnixMilli()), Type: gossip.TypeText, Payload: []byte("hello")}
	e.Sign(n.GossipWireTopic(topic), func(b []byte) []byte { return ed25519.Sign(m.Key, b) })
	j := gatewayapi.EnvelopeOf(e)
	return &j
}
