package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
)

// member is a DID whose key stays with the test (a member's wallet).
type member struct {
	DID did.DID
	Key ed25519.PrivateKey
}

func newMember(t testing.TB) member {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	d, err := did.FromPublicKey(pub)
	require.NoError(t, err)
	return member{DID: d, Key: priv}
}

// gw is a gateway over a real node, served by a real HTTP server on
// loopback.
type gw struct {
	t      testing.TB
	node   *harness.Node
	srv    *gateway.Server
	url    string
	issuer *auth.Issuer
	reg    *prometheus.Registry
	log    *testutil.LogBuffer
	secret []byte
	// revoked lists revoked jtis (the test's revocation list).
	revoked map[string]bool
}

type gwOption func(*gateway.Options)

func startGateway(t testing.TB, n *harness.Node, opts ...gwOption) *gw {
	t.Helper()
	g := &gw{t: t, node: n, reg: prometheus.NewRegistry(), log: &testutil.LogBuffer{}, revoked: map[string]bool{}}
	g.secret = make([]byte, 32)
	_, err := rand.Read(g.secret)
	require.NoError(t, err)
	g.issuer, err = auth.NewIssuer(g.secret, auth.IssuerOptions{Revoked: func(c *auth.Claims) bool { return g.revoked[c.ID] }})
	require.NoError(t, err)
	o := gateway.Options{Node: n.Node, Issuer: g.issuer, Registry: g.reg, Log: slog.New(slog.NewTextHandler(g.log, nil))}
	for _, f := range opts {
		f(&o)
	}
	g.srv, err = gateway.New(o)
	require.NoError(t, err)
	hs := httptest.NewServer(g.srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		g.srv.Close()
	})
	g.url = hs.URL
	return g
}

// token mints a token directly (as icnctl gateway token does).
func (g *gw) token(sub did.DID, scopes ...string) string {
	g.t.Helper()
	tok, _, err := g.issuer.Mint(sub, scopes, time.Hour, time.Now())
	require.NoError(g.t, err)
	return tok
}

// login signs in as m through the challenge.
func (g *gw) login(m member) gatewayapi.Token {
	g.t.Helper()
	var ch gatewayapi.Challenge
	g.do(http.MethodPost, gatewayapi.RouteAuthChallenge, "", gatewayapi.ChallengeRequest{DID: m.DID.String()}, http.StatusOK, &ch)
	require.Equal(g.t, string(auth.Message(g.node.DID(), m.DID, ch.Nonce)), ch.Message)
	sig := ed25519.Sign(m.Key, []byte(ch.Message))
	var tok gatewayapi.Token
	g.do(http.MethodPost, gatewayapi.RouteAuthVerify, "", gatewayapi.VerifyRequest{DID: m.DID.String(), Nonce: ch.Nonce, Signature: sig}, http.StatusOK, &tok)
	return tok
}

// request sends a request and returns the response with its body read.
func (g *gw) request(method, path, token string, body any, hdr ...string) (*http.Response, []byte) {
	g.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd, ct = bytes.NewReader([]byte(b)), "application/json"
	default:
		j, err := json.Marshal(b)
		require.NoError(g.t, err)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, rd)
	require.NoError(g.t, err)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(g.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(g.t, err)
	return resp, data
}

// do sends a request, requires the status and decodes the answer into out.
func (g *gw) do(method, path, token string, body any, want int, out any) {
	g.t.Helper()
	resp, data := g.request(method, path, token, body)
	require.Equal(g.t, want, resp.StatusCode, "%s %s: %s", method, path, data)
	if out != nil {
		require.NoError(g.t, json.Unmarshal(data, out), "%s", data)
	}
}

// apiError decodes an error answer.
func apiError(t testing.TB, data []byte) controlapi.Error {
	t.Helper()
	var e controlapi.Error
	require.NoError(t, json.Unmarshal(data, &e), "%s", data)
	require.NotEmpty(t, e.Message, "%s", data)
	return e
}
