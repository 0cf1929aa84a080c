package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

const gatewaySecretEnv = "ICN_GATEWAY_JWT_SECRET"

var jtiRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// A gateway secret under 32 bytes, or a secret file icnd cannot read, is
// refused by --check-config and at start with the same words, and the
// secret never appears in --check-config's output.
func TestGatewaySecretChecked(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, _ := writeConfig(t, dir, "127.0.0.1:0", "")

	short := append(withPass(passphrase), gatewaySecretEnv+"=0123456789")
	const want = "the gateway JWT secret from ICN_GATEWAY_JWT_SECRET is 10 bytes; it must be at least 32 bytes: make one with `openssl rand -hex 32`"
	check := spawn(t, short, nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 1, check.wait(30*time.Second))
	require.Equal(t, "icnd: error: config is not valid: "+want+"\n", check.logs.String())
	start := spawn(t, short, nil, "--config", cfg, "--data-dir", dir)
	require.Equal(t, 1, start.wait(30*time.Second))
	require.Equal(t, "icnd: error: "+want+"\n", start.logs.String())
	require.NoFileExists(t, filepath.Join(dir, "icnd.sock"))

	// A secret file that is not there names the path.
	missing := filepath.Join(dir, "gateway.secret")
	body := append(readFile(t, cfg), []byte("[gateway]\njwt_secret_file = \""+missing+"\"\n")...)
	require.NoError(t, os.WriteFile(cfg, body, 0o600))
	check = spawn(t, withPass(passphrase), nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 1, check.wait(30*time.Second))
	require.Equal(t, "icnd: error: config is not valid: config "+cfg+": gateway.jwt_secret_file: cannot read the secret file "+missing+": no such file or directory\n",
		check.logs.String())

	// A good file: the check says the gateway is on and where its secret
	// comes from, and never prints the secret.
	secret := strings.Repeat("0123456789abcdef", 4)
	require.NoError(t, os.WriteFile(missing, []byte(secret+"\n"), 0o600))
	check = spawn(t, withPass(passphrase), nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 0, check.wait(30*time.Second), check.logs.String())
	out := check.logs.String()
	require.Contains(t, out, "\n# gateway: on, under /v1/ on the health listener; secret from "+missing+"\n")
	require.Contains(t, out, "jwt_secret_file = \""+missing+"\"")
	require.NotContains(t, out, secret)

	// The environment wins over the file.
	env := append(withPass(passphrase), gatewaySecretEnv+"="+strings.Repeat("e", 40))
	check = spawn(t, env, nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 0, check.wait(30*time.Second), check.logs.String())
	require.Contains(t, check.logs.String(), "secret from ICN_GATEWAY_JWT_SECRET\n")
	require.NotContains(t, check.logs.String(), strings.Repeat("e", 40))
}

// jwtClaims decodes a token's payload (without checking it: the node's
// issuer does that).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3, tok)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestGatewayTokenAndRevoke(t *testing.T) {
	dir := tempDir(t)
	self := initID(t, dir).DID
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")

	// No secret: the gateway is off, and icnctl says how to turn it on.
	d := startDaemon(t, dir, cfg, p)
	r := fail(t, dir, "gateway", "token")
	require.Equal(t, "icnctl: error: the Gateway API is off: no gateway secret is configured (ICN_GATEWAY_JWT_SECRET or [gateway] jwt_secret_file)\n"+
		"icnctl: hint: give icnd a secret of at least 32 bytes in ICN_GATEWAY_JWT_SECRET or in the file [gateway] jwt_secret_file names (make one with `openssl rand -hex 32`), keep observability.health_port above 0, and restart icnd\n",
		r.stderr)
	require.Empty(t, r.stdout)
	r = fail(t, dir, "gateway", "revoke", "--all")
	require.Contains(t, r.stderr, "the Gateway API is off")
	d.stop()

	env := append(withPass(passphrase), gatewaySecretEnv+"="+strings.Repeat("s3cr3t", 6))
	d = startDaemonEnv(t, env, dir, cfg, p)

	// Just the token on stdout; its jti and expiry on stderr.
	r = ctl(t, dir, "gateway", "token")
	require.Equal(t, 0, r.code, r.stderr)
	tok := strings.TrimSuffix(r.stdout, "\n")
	require.NotContains(t, tok, "\n")
	claims := jwtClaims(t, tok)
	require.Equal(t, self, claims["sub"])
	require.Equal(t, "icn-gateway", claims["aud"])
	require.Equal(t, []any{"ledger:read", "gossip:read", "trust:read"}, claims["scopes"], "read-only by default")
	firstJTI := claims["jti"].(string)
	require.Regexp(t, `^minted token jti `+firstJTI+` for `+self+`, scopes ledger:read gossip:read trust:read, valid for 1h0m0s until \S+\n$`, r.stderr)

	// --json: the whole answer.
	out := ok(t, dir, "--json", "gateway", "token", "--scope", "admin", "--scope", "ledger:write", "--ttl", "10m")
	adm := decode[controlapi.GatewayToken](t, out)
	require.Regexp(t, jtiRE, adm.JTI)
	require.Equal(t, self, adm.Subject)
	require.Equal(t, []string{"admin", "ledger:write"}, adm.Scopes)
	require.Equal(t, 10*time.Minute, adm.ExpiresAt.Sub(adm.IssuedAt))
	require.WithinDuration(t, time.Now(), adm.IssuedAt, time.Minute)
	require.Equal(t, adm.JTI, jwtClaims(t, adm.Token)["jti"])
	for _, k := range []string{`"token"`, `"jti"`, `"subject"`, `"scopes"`, `"issued_at"`, `"expires_at"`} {
		require.Contains(t, out, k)
	}
	require.Regexp(t, `"expires_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`, out, "RFC 3339, UTC")

	// Bad arguments: error and hint.
	r = fail(t, dir, "gateway", "token", "--scope", "root")
	require.Contains(t, r.stderr, `icnctl: error: unknown scope "root"`)
	require.Contains(t, r.stderr, "icnctl: hint: the scopes are ledger:read, ledger:write, gossip:read, gossip:write, trust:read, admin")
	r = fail(t, dir, "gateway", "token", "--ttl", "1000h")
	require.Contains(t, r.stderr, "icnctl: hint: --ttl takes a duration from 1s to 720h")
	r = fail(t, dir, "gateway", "revoke", "123")
	require.Contains(t, r.stderr, `"123" is not a token jti (32 hex digits)`)
	r = fail(t, dir, "gateway", "revoke", strings.Repeat("0", 32))
	require.Contains(t, r.stderr, "icnctl: hint: check the jti")
	r = fail(t, dir, "gateway", "revoke")
	require.Contains(t, r.stderr, "icnctl: hint: usage: icnctl gateway revoke JTI|--all")
	r = fail(t, dir, "gateway", "revoke", adm.JTI, "--all")
	require.Contains(t, r.stderr, "not both")

	// Revoke one.
	out = ok(t, dir, "gateway", "revoke", adm.JTI)
	require.True(t, strings.HasPrefix(out, "revoked token "+adm.JTI+" for "+self+", scopes admin ledger:write (it would have expired "), out)
	res := decode[controlapi.GatewayRevokeResult](t, ok(t, dir, "--json", "gateway", "revoke", adm.JTI))
	require.True(t, res.AlreadyRevoked)
	require.Equal(t, adm.ExpiresAt, *res.ExpiresAt)

	// Revoke all, then restart: the first token stays revoked.
	res = decode[controlapi.GatewayRevokeResult](t, ok(t, dir, "--json", "gateway", "revoke", "--all"))
	require.True(t, res.All)
	require.NotNil(t, res.RevokedBefore)
	require.False(t, res.RevokedBefore.Before(adm.IssuedAt))
	d.stop()
	d = startDaemonEnv(t, env, dir, cfg, p)
	res = decode[controlapi.GatewayRevokeResult](t, ok(t, dir, "--json", "gateway", "revoke", firstJTI))
	require.True(t, res.AlreadyRevoked, "revoked by --all before the restart")
	out = ok(t, dir, "gateway", "revoke", "--all")
	require.Regexp(t, `^revoked every gateway token issued at or before \S+; tokens minted from now on are valid\n$`, out)
	d.stop()
}
