package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/revocation"
)

// gatewayNamespace is the gateway token records' key prefix in the node's
// datastore.
const gatewayNamespace = "/gateway"

// DefaultGatewayTokenScopes are the scopes of a token minted without any:
// read-only.
func DefaultGatewayTokenScopes() []string {
	return []string{auth.ScopeLedgerRead, auth.ScopeGossipRead, auth.ScopeTrustRead}
}

// gatewayTokens is the gateway's token issuer and the record of what it
// issued and revoked.
type gatewayTokens struct {
	issuer *auth.Issuer
	list   *revocation.List
	// mintMu orders mints after a revoke of all: a revoke holds it (write
	// side) until the clock has left the cutoff's second, so no token
	// minted after the revoke answers carries an iat at or before the
	// cutoff. Mints hold the read side.
	mintMu sync.RWMutex
}

// openGateway builds the gateway's issuer over the token records kept in
// the ledger's datastore, when the gateway is on. A secret shorter than
// auth.MinSecretBytes is refused even when it is off.
func (n *Node) openGateway(ctx context.Context, secret []byte) error {
	if len(secret) > 0 && len(secret) < auth.MinSecretBytes {
		return &auth.WeakSecretError{Len: len(secret)}
	}
	n.gwOffKey, n.gwOff = n.cfg.GatewayOff(len(secret) > 0)
	if n.gwOff != "" {
		if len(secret) > 0 {
			n.log.Info("Gateway API off although a secret is configured", "why", n.gwOff)
		}
		return nil
	}
	ns, err := n.ledger.Namespace(gatewayNamespace)
	if err != nil {
		return err
	}
	list, err := revocation.Open(ctx, ns, revocation.Options{Grace: auth.DefaultLeeway, Log: n.log})
	if err != nil {
		return err
	}
	issuer, err := auth.NewIssuer(secret, auth.IssuerOptions{
		Revoked: func(c *auth.Claims) bool { return list.Revoked(c.ID, c.IssuedAt) },
	})
	if err != nil {
		return err
	}
	n.gw = &gatewayTokens{issuer: issuer, list: list}
	n.log.Info("gateway tokens loaded", "live", list.Len(), "revoked_before", cutoffText(list.Cutoff()))
	return nil
}

func cutoffText(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

// GatewayIssuer is the gateway's token issuer, whose Parse refuses revoked
// tokens; nil when the gateway is off (GatewayOff says why).
func (n *Node) GatewayIssuer() *auth.Issuer {
	if n.gw == nil {
		return nil
	}
	return n.gw.issuer
}

// GatewayConfig is the node's [gateway] configuration.
func (n *Node) GatewayConfig() config.Gateway { return n.cfg.Gateway }

// GatewayOff says why the gateway is off: no secret, [gateway] enabled =
// false, or observability.health_port 0. It is "" when the gateway is on.
func (n *Node) GatewayOff() string { return n.gwOff }

func (n *Node) gateway() (*gatewayTokens, error) {
	if n.gw == nil {
		return nil, &GatewayOffError{Key: n.gwOffKey, Why: n.gwOff}
	}
	return n.gw, nil
}

// MintGatewayToken mints a gateway token and records it (durably, so it
// can be revoked by its jti). Scopes default to DefaultGatewayTokenScopes,
// the TTL to gateway.token_ttl (at most config.MaxGatewayTokenTTL), the
// subject to the node's own DID. Errors: *GatewayOffError, *ArgError
// (ArgScope, ArgTTL, ArgSubject), or a datastore failure.
func (n *Node) MintGatewayToken(ctx context.Context, req controlapi.GatewayTokenRequest) (controlapi.GatewayToken, error) {
	gw, err := n.gateway()
	if err != nil {
		return controlapi.GatewayToken{}, err
	}
	scopes := DefaultGatewayTokenScopes()
	if len(req.Scopes) > 0 {
		scopes = scopes[:0]
		for _, s := range req.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
		for _, s := range scopes {
			if !auth.IsScope(s) {
				return controlapi.GatewayToken{}, argErr(ArgScope, s, fmt.Errorf("%w %q", auth.ErrUnknownScope, echo(s)))
			}
		}
	}
	ttl := n.cfg.Gateway.TokenTTL.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return controlapi.GatewayToken{}, argErrf(ArgTTL, req.TTL, "token ttl %q is not a duration", req.TTL)
		}
		if ttl < time.Second || ttl > config.MaxGatewayTokenTTL {
			return controlapi.GatewayToken{}, argErrf(ArgTTL, req.TTL, "token ttl %s is not from 1s to %s (30 days)", ttl, config.MaxGatewayTokenTTL)
		}
	}
	sub := n.current().id.DID
	if req.Subject != "" {
		if sub, err = did.Parse(req.Subject); err != nil {
			return controlapi.GatewayToken{}, argErr(ArgSubject, req.Subject, fmt.Errorf("token subject: %w", err))
		}
	}

	gw.mintMu.RLock()
	defer gw.mintMu.RUnlock()
	tok, c, err := gw.issuer.Mint(sub, scopes, ttl, time.Now())
	if err != nil {
		return controlapi.GatewayToken{}, err
	}
	if err := gw.list.Issue(ctx, revocation.Token{ID: c.ID, Subject: sub.String(), Scopes: c.Scopes, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}); err != nil {
		return controlapi.GatewayToken{}, fmt.Errorf("record the gateway token (none was issued): %w", err)
	}
	n.log.Info("gateway token minted", "jti", c.ID, "sub", sub, "scopes", strings.Join(c.Scopes, ","), "expires", c.ExpiresAt.UTC().Format(time.RFC3339))
	return controlapi.GatewayToken{Token: tok, JTI: c.ID, Subject: sub.String(), Scopes: slices.Clone(c.Scopes),
		IssuedAt: c.IssuedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// RevokeGatewayTokens revokes the token req.JTI, or with req.All every
// token issued until now (at or before the current second; a token minted
// after the answer is valid). The revocation is durable before it
// answers. Errors: *GatewayOffError, *ArgError (ArgJTI),
// *UnknownTokenError, or a datastore failure.
func (n *Node) RevokeGatewayTokens(ctx context.Context, req controlapi.GatewayRevokeRequest) (controlapi.GatewayRevokeResult, error) {
	gw, err := n.gateway()
	if err != nil {
		return controlapi.GatewayRevokeResult{}, err
	}
	switch {
	case req.All && req.JTI != "":
		return controlapi.GatewayRevokeResult{}, argErrf(ArgJTI, req.JTI, "give a token's jti or all, not both")
	case req.All:
		return n.revokeAll(ctx, gw)
	case req.JTI == "":
		return controlapi.GatewayRevokeResult{}, argErrf(ArgJTI, "", "no token named: give a jti, or all")
	}
	jti := strings.ToLower(strings.TrimSpace(req.JTI))
	if !revocation.ValidID(jti) {
		return controlapi.GatewayRevokeResult{}, argErrf(ArgJTI, req.JTI, "%q is not a token jti (%d hex digits)", echo(req.JTI), revocation.IDLen)
	}
	t, already, err := gw.list.Revoke(ctx, jti)
	if errors.Is(err, revocation.ErrUnknown) {
		return controlapi.GatewayRevokeResult{}, &UnknownTokenError{JTI: jti}
	}
	if err != nil {
		return controlapi.GatewayRevokeResult{}, err
	}
	cutoff := gw.list.Cutoff()
	byCutoff := !cutoff.IsZero() && !t.IssuedAt.After(cutoff)
	if !already {
		n.log.Warn("SECURITY gateway token revoked", "jti", jti, "sub", t.Subject, "expires", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	exp := t.ExpiresAt.UTC()
	res := controlapi.GatewayRevokeResult{JTI: jti, Subject: t.Subject, Scopes: t.Scopes, ExpiresAt: &exp, AlreadyRevoked: already || byCutoff}
	if !cutoff.IsZero() {
		c := cutoff.UTC()
		res.RevokedBefore = &c
	}
	return res, nil
}

func (n *Node) revokeAll(ctx context.Context, gw *gatewayTokens) (controlapi.GatewayRevokeResult, error) {
	gw.mintMu.Lock()
	defer gw.mintMu.Unlock()
	cutoff, err := gw.list.RevokeBefore(ctx, time.Now())
	if err != nil {
		return controlapi.GatewayRevokeResult{}, err
	}
	// Tokens carry whole seconds: hold mints back until the clock has left
	// the cutoff's second, so every token minted from now on is issued
	// after it (at most a second's wait).
	time.Sleep(time.Until(cutoff.Add(time.Second)))
	n.log.Warn("SECURITY every gateway token issued so far is revoked", "revoked_before", cutoffText(cutoff))
	c := cutoff.UTC()
	return controlapi.GatewayRevokeResult{All: true, RevokedBefore: &c}, nil
}

// echo bounds how much of an untrusted string goes into a message.
func echo(s string) string {
	const maxEcho = 64
	if len(s) > maxEcho {
		return s[:maxEcho] + "..."
	}
	return s
}
