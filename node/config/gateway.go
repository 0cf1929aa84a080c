package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Gateway configures the Gateway API: HTTP under /v1/ on the health
// listener, authenticated with HS256 tokens (docs/gateway.md). It is served
// when a secret is configured (GatewaySecretEnv or JWTSecretFile), Enabled
// is true and observability.health_port is not 0.
type Gateway struct {
	// Enabled, when false, turns the gateway off even with a secret.
	Enabled bool `toml:"enabled"`
	// JWTSecretFile is a file holding the token secret (at least
	// MinGatewaySecretBytes; one trailing newline is ignored).
	// GatewaySecretEnv, when set, wins over it.
	JWTSecretFile string `toml:"jwt_secret_file"`
	// TokenTTL is how long a token lasts unless its minting says otherwise.
	TokenTTL Duration `toml:"token_ttl"`
	// ChallengeTTL is how long a DID challenge's nonce may be answered.
	ChallengeTTL Duration `toml:"challenge_ttl"`
	// CORSOrigins are the browser origins allowed to call the gateway:
	// "*" or scheme://host[:port] each. Empty: no cross-origin calls.
	CORSOrigins []string `toml:"cors_origins"`
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int `toml:"max_body_bytes"`
	// MaxStreamsPerToken bounds the concurrent event streams (SSE) of one
	// token.
	MaxStreamsPerToken int `toml:"max_streams_per_token"`
	// AuthRequestsPerSecond and AuthBurst are the per-IP token bucket on
	// /v1/auth/*.
	AuthRequestsPerSecond float64 `toml:"auth_requests_per_second"`
	AuthBurst             int     `toml:"auth_burst"`
}

// Gateway defaults and bounds.
const (
	// GatewaySecretEnv is the environment variable holding the gateway's
	// token secret; it wins over gateway.jwt_secret_file.
	GatewaySecretEnv = "ICN_GATEWAY_JWT_SECRET"
	// MinGatewaySecretBytes is the shortest secret accepted; it equals
	// node/gateway/auth.MinSecretBytes (a test in node checks).
	MinGatewaySecretBytes = 32

	DefaultGatewayTokenTTL     = time.Hour
	MinGatewayTokenTTL         = time.Minute
	MaxGatewayTokenTTL         = 30 * 24 * time.Hour
	DefaultGatewayChallengeTTL = 5 * time.Minute
	MinGatewayChallengeTTL     = 10 * time.Second
	MaxGatewayChallengeTTL     = time.Hour
	DefaultGatewayMaxBodyBytes = 256 << 10
	MinGatewayMaxBodyBytes     = 16 << 10
	MaxGatewayMaxBodyBytes     = 16 << 20
	DefaultGatewayMaxStreams   = 4
	MaxGatewayMaxStreams       = 1000
	DefaultGatewayAuthRPS      = 1
	DefaultGatewayAuthBurst    = 20
)

// DefaultGateway is the [gateway] section's defaults.
func DefaultGateway() Gateway {
	return Gateway{
		Enabled:               true,
		TokenTTL:              Duration{DefaultGatewayTokenTTL},
		ChallengeTTL:          Duration{DefaultGatewayChallengeTTL},
		CORSOrigins:           []string{},
		MaxBodyBytes:          DefaultGatewayMaxBodyBytes,
		MaxStreamsPerToken:    DefaultGatewayMaxStreams,
		AuthRequestsPerSecond: DefaultGatewayAuthRPS,
		AuthBurst:             DefaultGatewayAuthBurst,
	}
}

func (g Gateway) validate() error {
	if strings.TrimSpace(g.JWTSecretFile) != g.JWTSecretFile {
		return &Error{Key: "gateway.jwt_secret_file", Reason: fmt.Sprintf("%q starts or ends with white space", g.JWTSecretFile)}
	}
	if d := g.TokenTTL.Duration; d < MinGatewayTokenTTL || d > MaxGatewayTokenTTL {
		return &Error{Key: "gateway.token_ttl", Reason: fmt.Sprintf("%s is not from %s to %s (30 days)", d, MinGatewayTokenTTL, MaxGatewayTokenTTL)}
	}
	if d := g.ChallengeTTL.Duration; d < MinGatewayChallengeTTL || d > MaxGatewayChallengeTTL {
		return &Error{Key: "gateway.challenge_ttl", Reason: fmt.Sprintf("%s is not from %s to %s", d, MinGatewayChallengeTTL, MaxGatewayChallengeTTL)}
	}
	for i, o := range g.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			return &Error{Key: fmt.Sprintf("gateway.cors_origins[%d]", i), Reason: err.Error()}
		}
		if o == "*" && len(g.CORSOrigins) > 1 {
			return &Error{Key: fmt.Sprintf("gateway.cors_origins[%d]", i), Reason: `"*" allows every origin: list it alone`}
		}
	}
	if b := g.MaxBodyBytes; b < MinGatewayMaxBodyBytes || b > MaxGatewayMaxBodyBytes {
		return &Error{Key: "gateway.max_body_bytes", Reason: fmt.Sprintf("%d is not from %d (16 KiB) to %d (16 MiB) bytes", b, MinGatewayMaxBodyBytes, MaxGatewayMaxBodyBytes)}
	}
	if s := g.MaxStreamsPerToken; s < 1 || s > MaxGatewayMaxStreams {
		return &Error{Key: "gateway.max_streams_per_token", Reason: fmt.Sprintf("%d is not from 1 to %d", s, MaxGatewayMaxStreams)}
	}
	if r := g.AuthRequestsPerSecond; !(r > 0 && r <= 1e6) {
		return &Error{Key: "gateway.auth_requests_per_second", Reason: fmt.Sprintf("%v is not above 0 and at most 1000000", r)}
	}
	if b := g.AuthBurst; b < 1 || b > 1e6 {
		return &Error{Key: "gateway.auth_burst", Reason: fmt.Sprintf("%d is not from 1 to 1000000", b)}
	}
	return nil
}

// checkOrigin accepts "*" or a browser origin: http or https, a host, an
// optional port, nothing else, in lower case (as browsers send it in the
// Origin header, which is compared exactly).
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	want := `want "*" or an origin such as https://app.example.org or http://localhost:3000`
	u, err := url.Parse(o)
	if err != nil || u.Opaque != "" {
		return fmt.Errorf("%q is not an origin; %s", o, want)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: the scheme must be http or https; %s", o, want)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host; %s", o, want)
	case u.User != nil:
		return fmt.Errorf("%q holds a user name; %s", o, want)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o[len(u.Scheme)+3:], "/?#"):
		return fmt.Errorf("%q has a path, query or fragment (an origin ends after the host and port, with no trailing slash); %s", o, want)
	case strings.ToLower(o) != o:
		return fmt.Errorf("%q is not in lower case (browsers send origins in lower case, and they are compared exactly)", o)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %s is not from 1 to 65535", o, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%q has an empty port; %s", o, want)
	}
	return nil
}

// GatewayOff says why the gateway of a node with this config is not
// served, given whether a secret was found (haveSecret): key is the
// setting to change and why says what is wrong with it. Both are "" when
// the gateway is served.
func (c Config) GatewayOff(haveSecret bool) (key, why string) {
	switch {
	case !c.Gateway.Enabled:
		return "gateway.enabled", "the gateway is turned off ([gateway] enabled = false)"
	case !haveSecret:
		return "gateway.jwt_secret_file", "no gateway secret is configured (" + GatewaySecretEnv + " or [gateway] jwt_secret_file)"
	case c.Observability.HealthPort == 0:
		return "observability.health_port", "observability.health_port is 0, and the gateway is served on the health listener"
	}
	return "", ""
}

// SecretError is a gateway secret shorter than MinGatewaySecretBytes.
type SecretError struct {
	// Source is GatewaySecretEnv or the secret file's path.
	Source string
	Len    int
}

func (e *SecretError) Error() string {
	fix := "make one with `openssl rand -hex 32`"
	if e.Source != GatewaySecretEnv {
		fix = "make one with `openssl rand -hex 32 > " + e.Source + "`"
	}
	return fmt.Sprintf("the gateway JWT secret from %s is %d bytes; it must be at least %d bytes: %s", e.Source, e.Len, MinGatewaySecretBytes, fix)
}

// LoadGatewaySecret finds the gateway's token secret: the environment
// variable GatewaySecretEnv (through getenv) if set and not empty, else the
// file g.JWTSecretFile (through readFile) if set, without one trailing
// newline (\n or \r\n). source is GatewaySecretEnv or the file's path.
// With neither it returns nil, "", nil. An unreadable file is an *Error on
// gateway.jwt_secret_file naming the path; a secret shorter than
// MinGatewaySecretBytes is a *SecretError.
func LoadGatewaySecret(g Gateway, getenv func(string) string, readFile func(string) ([]byte, error)) (secret []byte, source string, err error) {
	if v := getenv(GatewaySecretEnv); v != "" {
		secret, source = []byte(v), GatewaySecretEnv
	} else if g.JWTSecretFile != "" {
		data, err := readFile(g.JWTSecretFile)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			reason := fmt.Sprintf("cannot read the secret file %s: %v", g.JWTSecretFile, err)
			return nil, "", &Error{Key: "gateway.jwt_secret_file", Reason: reason}
		}
		if bytes.HasSuffix(data, []byte("\r\n")) {
			data = data[:len(data)-2]
		} else if bytes.HasSuffix(data, []byte("\n")) {
			data = data[:len(data)-1]
		}
		secret, source = data, g.JWTSecretFile
	} else {
		return nil, "", nil
	}
	if len(secret) < MinGatewaySecretBytes {
		return nil, "", &SecretError{Source: source, Len: len(secret)}
	}
	return secret, source, nil
}
