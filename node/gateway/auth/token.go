package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/intercooperative/icn/did"
)

const (
	// Audience is the "aud" claim of every gateway token.
	Audience = "icn-gateway"
	// MinSecretBytes is the shortest HS256 secret NewIssuer accepts.
	MinSecretBytes = 32
	// MaxHeaderBytes caps the Authorization header before it is parsed.
	MaxHeaderBytes = 4096
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second

	bearerPrefix = "bearer "
	jtiBytes     = 16
)

// Refusal reasons: [Failure.Reason] is always one of these, so it can be
// used as a metric label.
const (
	ReasonMissing     = "missing"       // no Authorization header
	ReasonTooLarge    = "too_large"     // header longer than MaxHeaderBytes
	ReasonMalformed   = "malformed"     // not "Bearer <jwt>", or not a JWT
	ReasonAlg         = "alg"           // any algorithm but HS256, including none
	ReasonSignature   = "signature"     // HS256 but not signed with our secret
	ReasonExpired     = "expired"       // exp in the past (beyond leeway)
	ReasonNotYetValid = "not_yet_valid" // nbf or iat in the future (beyond leeway)
	ReasonAudience    = "audience"      // aud is not "icn-gateway"
	ReasonRevoked     = "revoked"       // jti is on the revocation list
	ReasonClaims      = "claims"        // missing exp/aud/jti, sub not a DID, unknown or no scopes
)

// Reasons returns every refusal reason, for pre-registering metric labels.
func Reasons() []string {
	return []string{ReasonMissing, ReasonTooLarge, ReasonMalformed, ReasonAlg, ReasonSignature,
		ReasonExpired, ReasonNotYetValid, ReasonAudience, ReasonRevoked, ReasonClaims}
}

// Sentinels wrapped by [Failure] where the cause is ours rather than jwt's.
var (
	ErrMissingHeader  = errors.New("no Authorization header")
	ErrHeaderTooLarge = fmt.Errorf("the Authorization header is longer than %d bytes", MaxHeaderBytes)
	ErrNotBearer      = errors.New(`the Authorization header is not "Bearer <token>"`)
	ErrRevoked        = errors.New("token has been revoked")
	ErrBadSubject     = errors.New("token subject is not an ICN DID")
	ErrMissingID      = errors.New("token has no jti")
)

// Failure is the one error type every refusal of [Issuer.Parse] returns.
// Reason is one of the Reason constants; Err is the cause (a jwt/v5 error or
// one of this package's sentinels) and is what Unwrap returns.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string {
	if f.Err == nil {
		return "gateway token refused (" + f.Reason + "); " + hint(f.Reason)
	}
	return "gateway token refused (" + f.Reason + "): " + f.Err.Error() + "; " + hint(f.Reason)
}

// hint says how to get past a refusal with the given reason.
func hint(reason string) string {
	switch reason {
	case ReasonMissing, ReasonTooLarge, ReasonMalformed:
		return `send the header "Authorization: Bearer <token>" with a token the gateway issued`
	case ReasonNotYetValid:
		return "check the client's and the node's clocks, or get a new token"
	default:
		return "get a new token from this node's gateway"
	}
}

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

func fail(reason string, err error) *Failure { return &Failure{Reason: reason, Err: err} }

// WeakSecretError is returned by [NewIssuer] for a secret shorter than
// [MinSecretBytes].
type WeakSecretError struct {
	Len int
}

func (e *WeakSecretError) Error() string {
	return fmt.Sprintf("gateway JWT secret is %d bytes; it must be at least %d bytes: make one with `openssl rand -hex 32`", e.Len, MinSecretBytes)
}

// IssuerOptions tunes an [Issuer]. The zero value is usable.
type IssuerOptions struct {
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 means
	// DefaultLeeway. A negative value is refused.
	Leeway time.Duration
	// Revoked, when set, reports whether a token has been revoked (by its
	// ID, or by when it was issued). It is consulted only for tokens that
	// are otherwise valid, gets their checked claims, and must be safe for
	// concurrent use.
	Revoked func(c *Claims) bool
}

// Issuer mints and checks gateway tokens with one HS256 secret. It is safe
// for concurrent use.
type Issuer struct {
	secret  []byte
	leeway  time.Duration
	revoked func(c *Claims) bool
}

// NewIssuer returns an issuer for secret (copied). A secret shorter than
// MinSecretBytes is refused with a *WeakSecretError.
func NewIssuer(secret []byte, opts IssuerOptions) (*Issuer, error) {
	if len(secret) < MinSecretBytes {
		return nil, &WeakSecretError{Len: len(secret)}
	}
	if opts.Leeway < 0 {
		return nil, fmt.Errorf("gateway token leeway %s is negative; use 0 for the default %s", opts.Leeway, DefaultLeeway)
	}
	leeway := opts.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	return &Issuer{secret: slices.Clone(secret), leeway: leeway, revoked: opts.Revoked}, nil
}

// Claims are the checked contents of a gateway token.
type Claims struct {
	Subject   did.DID
	ID        string // jti: 16 random bytes, hex
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
	Scopes    []string
}

// Has reports whether the token grants scope. Admin implies every scope.
func (c *Claims) Has(scope string) bool {
	if c == nil {
		return false
	}
	for _, s := range c.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
	}
	return false
}

// wireClaims is the JSON form parsed from a token.
type wireClaims struct {
	jwt.RegisteredClaims
	Scopes []string `json:"scopes"`
}

// Mint makes an HS256 token for sub with scopes, valid from now for ttl.
// Times are whole seconds (JWT NumericDate).
func (i *Issuer) Mint(sub did.DID, scopes []string, ttl time.Duration, now time.Time) (string, Claims, error) {
	if sub.IsZero() {
		return "", Claims{}, fmt.Errorf("mint gateway token: %w: the subject is empty", ErrBadSubject)
	}
	if err := ValidateScopes(scopes); err != nil {
		return "", Claims{}, fmt.Errorf("mint gateway token: %w", err)
	}
	if ttl < time.Second {
		return "", Claims{}, fmt.Errorf("mint gateway token: ttl %s is under 1s; give a ttl such as 1h", ttl)
	}
	var raw [jtiBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Claims{}, fmt.Errorf("mint gateway token: read random jti: %w", err)
	}
	iat := now.Truncate(time.Second)
	c := Claims{
		Subject:   sub,
		ID:        hex.EncodeToString(raw[:]),
		IssuedAt:  iat,
		NotBefore: iat,
		ExpiresAt: now.Add(ttl).Truncate(time.Second),
		Scopes:    slices.Clone(scopes),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":    sub.String(),
		"iat":    c.IssuedAt.Unix(),
		"nbf":    c.NotBefore.Unix(),
		"exp":    c.ExpiresAt.Unix(),
		"aud":    Audience,
		"jti":    c.ID,
		"scopes": c.Scopes,
	})
	s, err := tok.SignedString(i.secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("mint gateway token: sign: %w", err)
	}
	return s, c, nil
}

// Parse checks an Authorization header value ("Bearer <jwt>") at time now.
// Every refusal is a *Failure with exactly one reason.
func (i *Issuer) Parse(authorizationHeader string, now time.Time) (*Claims, error) {
	h := authorizationHeader
	if len(h) > MaxHeaderBytes {
		return nil, fail(ReasonTooLarge, ErrHeaderTooLarge)
	}
	if h == "" {
		return nil, fail(ReasonMissing, ErrMissingHeader)
	}
	if len(h) < len(bearerPrefix) || !strings.EqualFold(h[:len(bearerPrefix)], bearerPrefix) {
		return nil, fail(ReasonMalformed, ErrNotBearer)
	}
	raw := h[len(bearerPrefix):]
	if raw == "" || strings.ContainsAny(raw, " \t\r\n") {
		return nil, fail(ReasonMalformed, ErrNotBearer)
	}

	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(i.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var wc wireClaims
	tok, err := parser.ParseWithClaims(raw, &wc, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused every other alg; this is the
		// second lock on the same door.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("signing method %v is not HS256", t.Header["alg"])
		}
		return i.secret, nil
	})
	if err != nil {
		return nil, classify(tok, err)
	}

	sub, perr := did.Parse(wc.Subject)
	if perr != nil {
		return nil, fail(ReasonClaims, fmt.Errorf("%w: %w", ErrBadSubject, perr))
	}
	if wc.ID == "" {
		return nil, fail(ReasonClaims, ErrMissingID)
	}
	if serr := ValidateScopes(wc.Scopes); serr != nil {
		return nil, fail(ReasonClaims, serr)
	}
	c := &Claims{Subject: sub, ID: wc.ID, Scopes: wc.Scopes}
	if wc.IssuedAt != nil {
		c.IssuedAt = wc.IssuedAt.Time
	}
	if wc.NotBefore != nil {
		c.NotBefore = wc.NotBefore.Time
	}
	c.ExpiresAt = wc.ExpiresAt.Time // required by the parser
	if i.revoked != nil && i.revoked(c) {
		return nil, fail(ReasonRevoked, fmt.Errorf("%w: jti %s", ErrRevoked, echo(wc.ID)))
	}
	return c, nil
}

// classify maps a jwt/v5 error to one reason. A token can fail several
// checks at once (jwt joins them); the order below picks the most basic.
func classify(tok *jwt.Token, err error) *Failure {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(ReasonMalformed, err)
	case tok != nil && tok.Method != jwt.SigningMethodHS256:
		// Covers "none", HS384/HS512, RS256 with the secret as key, and
		// algorithms jwt does not know (reported as unverifiable).
		return fail(ReasonAlg, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(ReasonAlg, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail(ReasonSignature, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(ReasonClaims, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ReasonExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ReasonNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(ReasonAudience, err)
	default:
		return fail(ReasonClaims, err)
	}
}
