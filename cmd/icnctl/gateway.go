package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/node/controlapi"
)

func (a *app) gatewayCmd() *cobra.Command {
	cmd := group("gateway", "Gateway API tokens: mint, revoke")
	cmd.Long = "The Gateway API serves apps and wallets over HTTP under /v1/ on the health listener, when icnd has\n" +
		"a secret (ICN_GATEWAY_JWT_SECRET or [gateway] jwt_secret_file, at least 32 bytes). These commands mint\n" +
		"tokens for automation and revoke them. See docs/gateway.md."
	cmd.AddCommand(a.gatewayTokenCmd(), a.gatewayRevokeCmd())
	return cmd
}

func (a *app) gatewayTokenCmd() *cobra.Command {
	var req controlapi.GatewayTokenRequest
	cmd := &cobra.Command{
		Use:   "token [--scope S]... [--ttl D] [--subject DID]",
		Short: "Mint a Gateway API token (read-only unless --scope says otherwise)",
		Long: "token mints a Gateway API token and prints only the token on standard output, so that\n\n" +
			"  TOKEN=$(icnctl gateway token --scope admin)\n" +
			"  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/v1/status\n\n" +
			"works; one line on standard error gives its jti (for `icnctl gateway revoke`) and expiry.\n" +
			"With --json the whole answer goes to standard output.\n\n" +
			"Without --scope the token is read-only: ledger:read gossip:read trust:read. The scopes are\n" +
			"ledger:read, ledger:write, gossip:read, gossip:write, trust:read and admin (which implies every\n" +
			"other). The token speaks for the node's own DID unless --subject names another.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.GatewayToken, error) {
				return c.GatewayToken(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(tok, func(w io.Writer) {
				fmt.Fprintln(w, tok.Token)
				fmt.Fprintf(a.stderr, "minted token jti %s for %s, scopes %s, valid for %s until %s\n",
					tok.JTI, tok.Subject, strings.Join(tok.Scopes, " "), tok.ExpiresAt.Sub(tok.IssuedAt), tok.ExpiresAt.Local().Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().StringSliceVar(&req.Scopes, "scope", nil, "a `SCOPE` the token grants; repeat it, or separate scopes with commas (default: ledger:read,gossip:read,trust:read)")
	cmd.Flags().StringVar(&req.TTL, "ttl", "", "how long the token lasts, a `DURATION` such as 15m, 24h or 720h, at most 720h (default: [gateway] token_ttl, 1h)")
	cmd.Flags().StringVar(&req.Subject, "subject", "", "the `DID` the token speaks for (default: this node's DID)")
	return cmd
}

func (a *app) gatewayRevokeCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "revoke JTI|--all",
		Short: "Revoke one Gateway API token by its jti, or every token issued so far",
		Long: "revoke refuses a token from now on, by the jti `icnctl gateway token` printed. --all refuses every\n" +
			"token issued until now, including those of members' wallets; tokens minted afterwards are valid.\n" +
			"Revocations are kept in the datastore and hold across restarts. Changing the gateway secret and\n" +
			"restarting icnd also invalidates every token.",
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return withHint(errors.New("give a JTI or --all, not both"), "usage: icnctl gateway revoke JTI|--all")
			case !all && len(args) != 1:
				return withHint(fmt.Errorf("expected one JTI or --all, got %d arguments", len(args)),
					"usage: icnctl gateway revoke JTI|--all; `icnctl gateway token` prints a token's jti when it mints it")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := controlapi.GatewayRevokeRequest{All: all}
			if !all {
				req.JTI = args[0]
			}
			res, err := call(a, cmd.Context(), controlapi.DefaultTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.GatewayRevokeResult, error) {
				return c.GatewayRevoke(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.output(res, func(w io.Writer) {
				if res.All {
					fmt.Fprintf(w, "revoked every gateway token issued at or before %s; tokens minted from now on are valid\n",
						res.RevokedBefore.Local().Format(time.RFC3339))
					return
				}
				verb := "revoked"
				if res.AlreadyRevoked {
					verb = "already revoked:"
				}
				fmt.Fprintf(w, "%s token %s for %s, scopes %s (it would have expired %s)\n",
					verb, res.JTI, res.Subject, strings.Join(res.Scopes, " "), res.ExpiresAt.Local().Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "revoke every token issued until now")
	return cmd
}
