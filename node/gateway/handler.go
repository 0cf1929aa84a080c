package gateway

import (
	"context"
	"log/slog"
	"time"

	"net/http"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/gatewayapi"

	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
)

// Handler returns what node.Options.Gateway wants: the gateway over a
// node, configured by its [gateway] section, or, when the node serves no
// gateway (no secret, turned off, no health listener), a handler that says
// why and how to turn it on.
func Handler(log *slog.Logger) func(*node.Node) (http.Handler, error) {
	return func(n *node.Node) (http.Handler, error) {
		iss := n.GatewayIssuer()
		if iss == nil {
			return Off(n.GatewayOff()), nil
		}
		g := n.GatewayConfig()
		mint := func(ctx context.Context, sub did.DID, scopes []string, ttl time.Duration) (gatewayapi.Token, error) {
			t, err := n.MintGatewayToken(ctx, controlapi.GatewayTokenRequest{Subject: sub.String(), Scopes: scopes, TTL: ttl.String()})
			if err != nil {
				return gatewayapi.Token{}, err
			}
			return gatewayapi.Token{Token: t.Token, TokenType: "Bearer", JTI: t.JTI, Subject: t.Subject, Scopes: t.Scopes,
				IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt}, nil
		}
		return New(Options{Node: n, Issuer: iss, Registry: n.Registry(), Log: log, Mint: mint, Config: Config{
			TokenTTL:           g.TokenTTL.Duration,
			ChallengeTTL:       g.ChallengeTTL.Duration,
			CORSOrigins:        g.CORSOrigins,
			MaxBodyBytes:       int64(g.MaxBodyBytes),
			MaxStreamsPerToken: g.MaxStreamsPerToken,
			AuthRate:           g.AuthRequestsPerSecond,
			AuthBurst:          g.AuthBurst,
		}})
	}
}

// Off answers every /v1 request with 404 and why the gateway is off.
func Off(why string) http.Handler {
	msg := "the Gateway API is off"
	if why != "" {
		msg += ": " + why
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &controlapi.Error{Status: http.StatusNotFound, Message: msg,
			Hint: "to turn it on, give icnd a secret of at least 32 bytes in ICN_GATEWAY_JWT_SECRET or [gateway] jwt_secret_file " +
				"(make one with `openssl rand -hex 32`), keep [gateway] enabled = true and observability.health_port set, and restart icnd"})
	})
}
