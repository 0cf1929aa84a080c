package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/client"
	"github.com/intercooperative/icn/node/gatewayapi"
)

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

type walletKey struct {
	did did.DID
	key ed25519.PrivateKey
}

func newWallet(t *testing.T) walletKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	d, err := did.FromPublicKey(pub)
	require.NoError(t, err)
	return walletKey{d, priv}
}

// Two real daemons with their own gateways: a member who is not either
// node signs in on A with her own key and pays another member with an
// entry she signed; the payee sees the balance through B's gateway; an
// event stream on B carries a message published on A.
func TestGatewayMemberPaysAcrossNodes(t *testing.T) {
	dirA, dirB := tempDir(t), tempDir(t)
	initID(t, dirA)
	initID(t, dirB)
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", "")
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", "")
	a := startDaemonEnv(t, append(withPass(passphrase), "ICN_GATEWAY_JWT_SECRET="+randomSecret(t)), dirA, cfgA, pa)
	b := startDaemonEnv(t, append(withPass(passphrase), "ICN_GATEWAY_JWT_SECRET="+randomSecret(t)), dirB, cfgB, pb)
	ok(t, dirA, "network", "dial", status(t, dirB).ListenAddrs[0]+"/p2p/"+status(t, dirB).PeerID)
	ok(t, dirA, "ledger", "currency", "create", "hours", "--decimals", "2", "--credit-limit", "100")
	issuer := status(t, dirA).DID

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gwA := client.New(fmt.Sprintf("http://127.0.0.1:%d", pa.health), nil)
	gwB := client.New(fmt.Sprintf("http://127.0.0.1:%d", pb.health), nil)
	alice, bob := newWallet(t), newWallet(t)
	tokA, err := gwA.Login(ctx, alice.did, alice.key)
	require.NoError(t, err)
	require.Equal(t, alice.did.String(), tokA.Subject)
	_, err = gwB.Login(ctx, bob.did, bob.key)
	require.NoError(t, err)

	// B learns the currency from A before bob looks.
	iss, err := did.Parse(issuer)
	require.NoError(t, err)
	sub, err := gwA.Pay(ctx, alice.did, alice.key, client.Transfer{To: bob.did, Currency: ledger.CurrencyID{Symbol: "hours", Issuer: iss}, Units: 1250, Memo: "bread"})
	require.NoError(t, err)
	require.Equal(t, "accepted", sub.Status)
	require.Equal(t, alice.did.String(), sub.Author)

	require.Eventually(t, func() bool {
		bs, err := gwB.Balances(ctx, bob.did, "hours")
		return err == nil && len(bs) == 1 && bs[0].Balance == "12.50"
	}, time.Minute, 200*time.Millisecond, "B never showed bob's balance")
	// A's own operator sees the same through the control socket.
	bal := decode[[]controlapi.Balance](t, ok(t, dirA, "ledger", "balance", alice.did.String(), "--currency", "hours", "--json"))
	require.Equal(t, "-12.50", bal[0].Balance)

	// An event stream on B carries what A publishes.
	stream, err := gwB.Events(ctx, "chat", "")
	require.NoError(t, err)
	defer stream.Close()
	got := make(chan string, 8)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			if ev.Name == gatewayapi.EventMessage {
				got <- ev.Message.Text
			}
		}
	}()
	require.Eventually(t, func() bool {
		ok(t, dirA, "gossip", "publish", "chat", "hello from A")
		select {
		case text := <-got:
			return text == "hello from A"
		case <-time.After(300 * time.Millisecond):
			return false
		}
	}, time.Minute, 10*time.Millisecond, "B's event stream never carried A's message")

	// The operator revokes alice's token by its jti: her next request is
	// refused as revoked, and a fresh sign-in works again.
	ok(t, dirA, "gateway", "revoke", tokA.JTI)
	_, err = gwA.Status(ctx)
	var ge *client.Error
	require.True(t, errors.As(err, &ge), "%v", err)
	require.Equal(t, http.StatusUnauthorized, ge.Status)
	require.Contains(t, ge.Message, "revoked")
	_, err = gwA.Login(ctx, alice.did, alice.key)
	require.NoError(t, err)
	_, err = gwA.Status(ctx)
	require.NoError(t, err)

	_, metrics := b.get("/metrics")
	requireMetric(t, metrics, `icn_gateway_requests_total{code="200",route="GET /v1/ledger/balances/{did}"}`)
	_, metrics = a.get("/metrics")
	requireMetric(t, metrics, `icn_gateway_requests_total{code="201",route="POST /v1/ledger/entries"}`)
	requireMetric(t, metrics, `icn_gateway_auth_failures_total{reason="revoked"} 1`)
	require.Contains(t, a.logs.String(), "SECURITY gateway request refused")
}

// Without a secret, /v1/ answers 404 with a JSON error saying how to turn
// the gateway on; a short secret stops icnd before it starts.
func TestGatewayOffAndWeakSecret(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)
	code, body := d.get("/v1/status")
	require.Equal(t, http.StatusNotFound, code)
	e := decode[controlapi.Error](t, body)
	require.Contains(t, e.Message, "Gateway API is off")
	require.Contains(t, e.Hint, "ICN_GATEWAY_JWT_SECRET")
	d.stop()

	weak := spawn(t, append(withPass(passphrase), "ICN_GATEWAY_JWT_SECRET=short"), nil, "--data-dir", dir, "--config", cfg)
	require.Equal(t, 1, weak.wait(30*time.Second))
	require.Contains(t, weak.logs.String(), "at least 32 bytes")

	// And a client sees a typed error with the hint.
	c := client.New(fmt.Sprintf("http://127.0.0.1:%d", p.health), nil)
	d = startDaemon(t, dir, cfg, p)
	_, err := c.Status(context.Background())
	var ge *client.Error
	require.True(t, errors.As(err, &ge), "%v", err)
	require.Equal(t, http.StatusNotFound, ge.Status)
	d.stop()
}
