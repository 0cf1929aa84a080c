package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGatewayDefaults(t *testing.T) {
	g := Default().Gateway
	require.True(t, g.Enabled)
	require.Empty(t, g.JWTSecretFile)
	require.Equal(t, time.Hour, g.TokenTTL.Duration)
	require.Equal(t, 5*time.Minute, g.ChallengeTTL.Duration)
	require.NotNil(t, g.CORSOrigins)
	require.Empty(t, g.CORSOrigins)
	require.Equal(t, 256<<10, g.MaxBodyBytes)
	require.Equal(t, 4, g.MaxStreamsPerToken)
	require.Equal(t, 1.0, g.AuthRequestsPerSecond)
	require.Equal(t, 20, g.AuthBurst)

	// Every bound is accepted.
	cfg, err := Parse([]byte(`[gateway]
enabled = false
jwt_secret_file = "/etc/icn/gateway.secret"
token_ttl = "720h"
challenge_ttl = "10s"
cors_origins = ["https://app.example.org", "http://localhost:3000", "http://[::1]:8080", "https://coop.example.org:443"]
max_body_bytes = 16777216
max_streams_per_token = 1000
auth_requests_per_second = 0.5
auth_burst = 1
`))
	require.NoError(t, err)
	g = cfg.Gateway
	require.False(t, g.Enabled)
	require.Equal(t, "/etc/icn/gateway.secret", g.JWTSecretFile)
	require.Equal(t, 30*24*time.Hour, g.TokenTTL.Duration)
	require.Len(t, g.CORSOrigins, 4)
	for _, body := range []string{
		"token_ttl = \"1m\"", "challenge_ttl = \"1h\"", "max_body_bytes = 16384",
		"max_streams_per_token = 1", `cors_origins = ["*"]`, "auth_requests_per_second = 1000000.0", "auth_burst = 1000000",
	} {
		_, err := Parse([]byte("[gateway]\n" + body + "\n"))
		require.NoError(t, err, body)
	}
}

func TestGatewayBadValuesNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		body, key, contains string
	}{
		{`token_ttl = "59s"`, "gateway.token_ttl", "59s is not from 1m0s to 720h0m0s (30 days)"},
		{`token_ttl = "721h"`, "gateway.token_ttl", "721h0m0s is not from"},
		{`token_ttl = "-1h"`, "gateway.token_ttl", "is not from"},
		{`token_ttl = "soon"`, "gateway.token_ttl", "not a duration"},
		{`challenge_ttl = "9s"`, "gateway.challenge_ttl", "9s is not from 10s to 1h0m0s"},
		{`challenge_ttl = "61m"`, "gateway.challenge_ttl", "1h1m0s is not from"},
		{`max_body_bytes = 16383`, "gateway.max_body_bytes", "16383 is not from 16384 (16 KiB) to 16777216 (16 MiB)"},
		{`max_body_bytes = 16777217`, "gateway.max_body_bytes", "is not from"},
		{`max_streams_per_token = 0`, "gateway.max_streams_per_token", "0 is not from 1 to 1000"},
		{`max_streams_per_token = 1001`, "gateway.max_streams_per_token", "1001 is not from 1 to 1000"},
		{`auth_requests_per_second = 0.0`, "gateway.auth_requests_per_second", "0 is not above 0"},
		{`auth_requests_per_second = -1.0`, "gateway.auth_requests_per_second", "is not above 0"},
		{`auth_requests_per_second = nan`, "gateway.auth_requests_per_second", "NaN is not above 0"},
		{`auth_burst = 0`, "gateway.auth_burst", "0 is not from 1 to 1000000"},
		{`jwt_secret_file = " /etc/icn/s"`, "gateway.jwt_secret_file", "white space"},
		{`cors_origins = ["https://app.example.org/"]`, "gateway.cors_origins[0]", "no trailing slash"},
		{`cors_origins = ["https://a.example", "https://app.example.org/x"]`, "gateway.cors_origins[1]", "has a path"},
		{`cors_origins = ["https://app.example.org?x=1"]`, "gateway.cors_origins[0]", "query"},
		{`cors_origins = ["app.example.org"]`, "gateway.cors_origins[0]", "scheme must be http or https"},
		{`cors_origins = ["ftp://app.example.org"]`, "gateway.cors_origins[0]", "scheme must be http or https"},
		{`cors_origins = ["https://"]`, "gateway.cors_origins[0]", "no host"},
		{`cors_origins = ["https://u@app.example.org"]`, "gateway.cors_origins[0]", "user name"},
		{`cors_origins = ["https://App.example.org"]`, "gateway.cors_origins[0]", "lower case"},
		{`cors_origins = ["https://app.example.org:0"]`, "gateway.cors_origins[0]", "port 0 is not from 1 to 65535"},
		{`cors_origins = ["https://app.example.org:99999"]`, "gateway.cors_origins[0]", "port 99999"},
		{`cors_origins = ["https://app.example.org:"]`, "gateway.cors_origins[0]", "empty port"},
		{`cors_origins = ["*", "https://app.example.org"]`, "gateway.cors_origins[0]", "list it alone"},
		{`cors_origins = [""]`, "gateway.cors_origins[0]", "scheme must be"},
		{`bogus = 1`, "gateway.bogus", "unknown key"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			_, err := Parse([]byte("[gateway]\n" + tc.body + "\n"))
			var ce *Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.key, ce.Key, "%v", err)
			require.Contains(t, err.Error(), tc.contains)
		})
	}
	// A value of the wrong type names the key too.
	_, err := Parse([]byte("[gateway]\nenabled = \"yes\"\n"))
	require.ErrorContains(t, err, "gateway.enabled")
}

func TestGatewayOff(t *testing.T) {
	cfg := Default()
	key, why := cfg.GatewayOff(true)
	require.Equal(t, "", key+why)
	key, why = cfg.GatewayOff(false)
	require.Equal(t, "gateway.jwt_secret_file", key)
	require.Contains(t, why, "no gateway secret")
	require.Contains(t, why, GatewaySecretEnv)
	cfg.Observability.HealthPort = 0
	key, why = cfg.GatewayOff(true)
	require.Equal(t, "observability.health_port", key)
	require.Contains(t, why, "health_port is 0")
	cfg.Gateway.Enabled = false
	key, why = cfg.GatewayOff(false)
	require.Equal(t, "gateway.enabled", key)
	require.Contains(t, why, "[gateway] enabled = false")
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func noFile(path string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

func TestLoadGatewaySecret(t *testing.T) {
	long := strings.Repeat("s", 32)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}

	// Neither: no secret, no error.
	s, src, err := LoadGatewaySecret(DefaultGateway(), env(nil), noFile)
	require.NoError(t, err)
	require.Nil(t, s)
	require.Empty(t, src)

	// The environment.
	s, src, err = LoadGatewaySecret(DefaultGateway(), env(map[string]string{GatewaySecretEnv: long}), noFile)
	require.NoError(t, err)
	require.Equal(t, []byte(long), s)
	require.Equal(t, GatewaySecretEnv, src)

	// A file, with one trailing newline (\n or \r\n) trimmed, no more.
	g := DefaultGateway()
	for body, want := range map[string]string{
		long:                long,
		long + "\n":         long,
		long + "\r\n":       long,
		long + "\n\n":       long + "\n",
		"  " + long + " \n": "  " + long + " ",
	} {
		g.JWTSecretFile = write("secret", body)
		s, src, err = LoadGatewaySecret(g, env(nil), os.ReadFile)
		require.NoError(t, err, "%q", body)
		require.Equal(t, want, string(s), "%q", body)
		require.Equal(t, g.JWTSecretFile, src)
	}

	// The environment wins over the file, even an unreadable one.
	g.JWTSecretFile = filepath.Join(dir, "missing")
	s, src, err = LoadGatewaySecret(g, env(map[string]string{GatewaySecretEnv: long + "env"}), os.ReadFile)
	require.NoError(t, err)
	require.Equal(t, long+"env", string(s))
	require.Equal(t, GatewaySecretEnv, src)

	// An unreadable file names the key and the path.
	_, _, err = LoadGatewaySecret(g, env(nil), os.ReadFile)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "gateway.jwt_secret_file", ce.Key)
	require.Equal(t, "gateway.jwt_secret_file: cannot read the secret file "+g.JWTSecretFile+": no such file or directory", err.Error())
	g.JWTSecretFile = dir
	_, _, err = LoadGatewaySecret(g, env(nil), os.ReadFile)
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), dir)
	readErr := errors.New("disk on fire")
	_, _, err = LoadGatewaySecret(g, env(nil), func(string) ([]byte, error) { return nil, readErr })
	require.ErrorContains(t, err, "disk on fire")

	// Short: names the source, the length and the fix.
	_, _, err = LoadGatewaySecret(DefaultGateway(), env(map[string]string{GatewaySecretEnv: "0123456789"}), noFile)
	var se *SecretError
	require.ErrorAs(t, err, &se)
	require.Equal(t, SecretError{Source: GatewaySecretEnv, Len: 10}, *se)
	require.Equal(t, "the gateway JWT secret from ICN_GATEWAY_JWT_SECRET is 10 bytes; it must be at least 32 bytes: make one with `openssl rand -hex 32`", err.Error())
	g.JWTSecretFile = write("short", strings.Repeat("s", 31)+"\n")
	_, _, err = LoadGatewaySecret(g, env(nil), os.ReadFile)
	require.ErrorAs(t, err, &se)
	require.Equal(t, SecretError{Source: g.JWTSecretFile, Len: 31}, *se)
	require.Contains(t, err.Error(), "`openssl rand -hex 32 > "+g.JWTSecretFile+"`")
	g.JWTSecretFile = write("empty", "\n")
	_, _, err = LoadGatewaySecret(g, env(nil), os.ReadFile)
	require.ErrorAs(t, err, &se)
	require.Equal(t, 0, se.Len)
}
