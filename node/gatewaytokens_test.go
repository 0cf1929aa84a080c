package node_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
	"github.com/intercooperative/icn/node/gateway/auth"
)

// config cannot import the gateway's auth package (it stays free of
// libp2p); the two minimums must agree.
func TestMinGatewaySecretBytesIsAuths(t *testing.T) {
	require.Equal(t, auth.MinSecretBytes, config.MinGatewaySecretBytes)
}

var testSecret = []byte(strings.Repeat("k", 32))

// gwNode is a node started on a data dir of its own (reused across
// restarts), with a gateway secret.
type gwNode struct {
	*node.Node
	dir  string
	ks   did.Keystore
	stop func()
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startGW starts a node on dir (a new one, with a new keystore, when dir is
// ""), with secret and a health port so the gateway is on; mut adjusts the
// config.
func startGW(t *testing.T, dir string, secret []byte, mut func(*config.Config)) *gwNode {
	t.Helper()
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "icngw") // short: the socket path is limited
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	ks := did.Keystore{Path: did.Open(dir).Path, WorkFactor: harness.WorkFactor}
	exists, err := ks.Exists()
	require.NoError(t, err)
	var id *did.Identity
	if exists {
		id, err = ks.Unlock(harness.Passphrase)
	} else {
		id, err = ks.Create(harness.Passphrase, time.Now())
	}
	require.NoError(t, err)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Network.MDNSEnabled = false
	cfg.Observability.HTTPBind = "127.0.0.1"
	cfg.Observability.MetricsPort = 0
	cfg.Observability.HealthPort = freeTCPPort(t)
	if mut != nil {
		mut(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nd, err := node.New(context.Background(), node.Options{Config: cfg, Identity: id, Keystore: ks, Logger: log,
		Registry: prometheus.NewRegistry(), Control: controlserver.Handler(log), GatewaySecret: secret})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(node.ShutdownTimeout + 5*time.Second):
				t.Error("node did not stop")
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, nd.Ready, 10*time.Second, 10*time.Millisecond)
	return &gwNode{Node: nd, dir: dir, ks: ks, stop: stop}
}

func bearer(tok controlapi.GatewayToken) string { return "Bearer " + tok.Token }

func requireRefused(t *testing.T, n *gwNode, tok controlapi.GatewayToken, reason string) {
	t.Helper()
	_, err := n.GatewayIssuer().Parse(bearer(tok), time.Now())
	var f *auth.Failure
	require.ErrorAs(t, err, &f, "token %s accepted", tok.JTI)
	require.Equal(t, reason, f.Reason, "%v", err)
}

func requireAccepted(t *testing.T, n *gwNode, tok controlapi.GatewayToken) *auth.Claims {
	t.Helper()
	c, err := n.GatewayIssuer().Parse(bearer(tok), time.Now())
	require.NoError(t, err, "token %s", tok.JTI)
	return c
}

func TestGatewayOff(t *testing.T) {
	ctx := context.Background()
	// No secret (the harness gives none).
	n := harness.Start(t, 1)[0]
	require.Nil(t, n.GatewayIssuer())
	require.Contains(t, n.GatewayOff(), "no gateway secret")
	_, err := n.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	var off *node.GatewayOffError
	require.ErrorAs(t, err, &off)
	require.Equal(t, "gateway.jwt_secret_file", off.Key)
	_, err = n.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{All: true})
	require.ErrorAs(t, err, &off)
	// Over the control socket: 409 with the hint.
	_, err = n.Client.GatewayToken(ctx, controlapi.GatewayTokenRequest{})
	var ce *controlapi.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusConflict, ce.Status)
	require.Equal(t, "the Gateway API is off: no gateway secret is configured (ICN_GATEWAY_JWT_SECRET or [gateway] jwt_secret_file)", ce.Message)
	require.Contains(t, ce.Hint, "openssl rand -hex 32")

	// A secret, but no health listener to serve on.
	g := startGW(t, "", testSecret, func(c *config.Config) { c.Observability.HealthPort = 0 })
	require.Nil(t, g.GatewayIssuer())
	_, err = g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.ErrorAs(t, err, &off)
	require.Equal(t, "observability.health_port", off.Key)
	g.stop()

	// A secret, but turned off.
	g = startGW(t, g.dir, testSecret, func(c *config.Config) { c.Gateway.Enabled = false })
	require.Nil(t, g.GatewayIssuer())
	require.Contains(t, g.GatewayOff(), "enabled = false")
	_, err = g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.ErrorAs(t, err, &off)
	require.Equal(t, "gateway.enabled", off.Key)
	require.False(t, g.GatewayConfig().Enabled)
}

func TestGatewayShortSecretRefused(t *testing.T) {
	dir, err := os.MkdirTemp("", "icngw")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ks := did.Keystore{Path: did.Open(dir).Path, WorkFactor: harness.WorkFactor}
	id, err := ks.Create(harness.Passphrase, time.Now())
	require.NoError(t, err)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Network.ListenAddr = "127.0.0.1:0"
	cfg.Network.MDNSEnabled = false
	cfg.Observability.MetricsPort, cfg.Observability.HealthPort = 0, 0
	_, err = node.New(context.Background(), node.Options{Config: cfg, Identity: id, Keystore: ks,
		Registry: prometheus.NewRegistry(), GatewaySecret: []byte("0123456789")})
	var weak *auth.WeakSecretError
	require.ErrorAs(t, err, &weak)
	require.Equal(t, 10, weak.Len)
	require.NoFileExists(t, controlapi.SocketPath(dir), "nothing is left open")
}

func TestGatewayMintChecksItsArguments(t *testing.T) {
	ctx := context.Background()
	g := startGW(t, "", testSecret, nil)
	for _, tc := range []struct {
		req controlapi.GatewayTokenRequest
		arg node.Arg
		msg string
	}{
		{controlapi.GatewayTokenRequest{Scopes: []string{"ledger:read", "root"}}, node.ArgScope, `unknown scope "root"`},
		{controlapi.GatewayTokenRequest{Scopes: []string{""}}, node.ArgScope, `unknown scope ""`},
		{controlapi.GatewayTokenRequest{TTL: "soon"}, node.ArgTTL, `token ttl "soon" is not a duration`},
		{controlapi.GatewayTokenRequest{TTL: "721h"}, node.ArgTTL, "token ttl 721h0m0s is not from 1s to 720h0m0s (30 days)"},
		{controlapi.GatewayTokenRequest{TTL: "500ms"}, node.ArgTTL, "is not from 1s"},
		{controlapi.GatewayTokenRequest{TTL: "-1h"}, node.ArgTTL, "is not from 1s"},
		{controlapi.GatewayTokenRequest{Subject: "12D3KooWnope"}, node.ArgSubject, "token subject"},
	} {
		_, err := g.MintGatewayToken(ctx, tc.req)
		var ae *node.ArgError
		require.ErrorAs(t, err, &ae, "%+v", tc.req)
		if ae.Arg == node.ArgScope {
			require.ErrorIs(t, err, auth.ErrUnknownScope)
		}
		require.Equal(t, tc.arg, ae.Arg)
		require.Contains(t, err.Error(), tc.msg)
	}
	for _, tc := range []struct {
		req controlapi.GatewayRevokeRequest
		msg string
	}{
		{controlapi.GatewayRevokeRequest{}, "no token named"},
		{controlapi.GatewayRevokeRequest{JTI: "5949efb485e30b0a48ef6c15a10340e1", All: true}, "not both"},
		{controlapi.GatewayRevokeRequest{JTI: "5949efb4"}, `"5949efb4" is not a token jti (32 hex digits)`},
		{controlapi.GatewayRevokeRequest{JTI: strings.Repeat("z", 32)}, "is not a token jti"},
	} {
		_, err := g.RevokeGatewayTokens(ctx, tc.req)
		var ae *node.ArgError
		require.ErrorAs(t, err, &ae, "%+v", tc.req)
		require.Equal(t, node.ArgJTI, ae.Arg)
		require.Contains(t, err.Error(), tc.msg)
	}
	_, err := g.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{JTI: "5949efb485e30b0a48ef6c15a10340e1"})
	var unknown *node.UnknownTokenError
	require.ErrorAs(t, err, &unknown)
	// Over the control socket, an argument error is a 400 with a hint.
	c := controlapi.NewClient(controlapi.SocketPath(g.dir))
	_, err = c.GatewayToken(ctx, controlapi.GatewayTokenRequest{Scopes: []string{"root"}})
	var ce *controlapi.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusBadRequest, ce.Status)
	require.Contains(t, ce.Hint, "the scopes are ledger:read, ledger:write, gossip:read, gossip:write, trust:read, admin")
}

// Tokens are minted, parse with the node's issuer, and are revoked one by
// one or all at once; revocations hold across restarts, and changing the
// secret invalidates every token.
func TestGatewayTokensRevokedAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	g := startGW(t, "", testSecret, nil)
	self := g.IdentityInfo().DID
	require.Empty(t, g.GatewayOff())
	require.Equal(t, config.DefaultGateway(), g.GatewayConfig())

	before := time.Now().Truncate(time.Second)
	a, err := g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.NoError(t, err)
	require.Equal(t, self, a.Subject)
	require.Equal(t, []string{"ledger:read", "gossip:read", "trust:read"}, a.Scopes, "read-only by default")
	require.Len(t, a.JTI, 32)
	require.Equal(t, time.UTC, a.IssuedAt.Location())
	require.False(t, a.IssuedAt.Before(before))
	require.Equal(t, time.Hour, a.ExpiresAt.Sub(a.IssuedAt), "gateway.token_ttl")
	ca := requireAccepted(t, g, a)
	require.Equal(t, self, ca.Subject.String())
	require.Equal(t, a.JTI, ca.ID)
	require.True(t, ca.Has(auth.ScopeLedgerRead))
	require.False(t, ca.Has(auth.ScopeLedgerWrite))

	// Over the control socket, for another DID, with admin and a TTL.
	other, err := did.Generate(time.Now())
	require.NoError(t, err)
	member := other.DID
	c := controlapi.NewClient(controlapi.SocketPath(g.dir))
	b, err := c.GatewayToken(ctx, controlapi.GatewayTokenRequest{Scopes: []string{"admin", "admin"}, TTL: "10m", Subject: member.String()})
	require.NoError(t, err)
	require.Equal(t, member.String(), b.Subject)
	require.Equal(t, []string{"admin"}, b.Scopes)
	require.Equal(t, 10*time.Minute, b.ExpiresAt.Sub(b.IssuedAt))
	cb := requireAccepted(t, g, b)
	require.Equal(t, member, cb.Subject)
	require.True(t, cb.Has(auth.ScopeLedgerWrite), "admin implies every scope")

	// Revoke a by its jti: refused, b still accepted.
	res, err := c.GatewayRevoke(ctx, controlapi.GatewayRevokeRequest{JTI: strings.ToUpper(a.JTI)})
	require.NoError(t, err)
	require.Equal(t, a.JTI, res.JTI)
	require.Equal(t, self, res.Subject)
	require.Equal(t, a.ExpiresAt, *res.ExpiresAt)
	require.False(t, res.AlreadyRevoked)
	require.False(t, res.All)
	require.Nil(t, res.RevokedBefore)
	requireRefused(t, g, a, auth.ReasonRevoked)
	requireAccepted(t, g, b)
	res, err = g.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{JTI: a.JTI})
	require.NoError(t, err)
	require.True(t, res.AlreadyRevoked)

	// Restart on the same data dir: a is still revoked.
	g.stop()
	g = startGW(t, g.dir, testSecret, nil)
	requireRefused(t, g, a, auth.ReasonRevoked)
	requireAccepted(t, g, b)

	// Revoke every token: b too, and one minted just before in the same
	// second; one minted right after the answer is valid.
	d, err := g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.NoError(t, err)
	all, err := g.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{All: true})
	require.NoError(t, err)
	require.True(t, all.All)
	require.Empty(t, all.JTI)
	require.NotNil(t, all.RevokedBefore)
	require.False(t, all.RevokedBefore.Before(d.IssuedAt), "the cutoff is at or after every earlier token")
	require.False(t, time.Now().Before(all.RevokedBefore.Add(time.Second)), "the answer waits until the cutoff's second is over")
	e, err := g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.NoError(t, err)
	require.True(t, e.IssuedAt.After(*all.RevokedBefore))
	requireRefused(t, g, b, auth.ReasonRevoked)
	requireRefused(t, g, d, auth.ReasonRevoked)
	requireAccepted(t, g, e)
	res, err = g.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{JTI: b.JTI})
	require.NoError(t, err)
	require.True(t, res.AlreadyRevoked, "revoked by the cutoff")
	require.Equal(t, all.RevokedBefore, res.RevokedBefore)

	// Restart: the cutoff holds.
	g.stop()
	g = startGW(t, g.dir, testSecret, nil)
	requireRefused(t, g, a, auth.ReasonRevoked)
	requireRefused(t, g, b, auth.ReasonRevoked)
	requireRefused(t, g, d, auth.ReasonRevoked)
	requireAccepted(t, g, e)

	// A new secret invalidates every token at once.
	g.stop()
	g = startGW(t, g.dir, []byte(strings.Repeat("n", 32)), nil)
	requireRefused(t, g, e, auth.ReasonSignature)
}

func TestGatewayIssuerParseIsConcurrencySafe(t *testing.T) {
	ctx := context.Background()
	g := startGW(t, "", testSecret, nil)
	tok, err := g.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := g.GatewayIssuer().Parse(bearer(tok), time.Now()); err != nil && !errors.Is(err, auth.ErrRevoked) {
					errs <- err
					return
				}
			}
		}()
	}
	_, err = g.RevokeGatewayTokens(ctx, controlapi.GatewayRevokeRequest{JTI: tok.JTI})
	require.NoError(t, err)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireRefused(t, g, tok, auth.ReasonRevoked)
}
