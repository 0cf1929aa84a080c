package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
)

// Challenge refusal reasons (icn_gateway_auth_failures_total), beside the
// token reasons of package auth.
const (
	reasonRateLimited  = "rate_limited"
	reasonUnknownNonce = "unknown_nonce"
	reasonNonceExpired = "nonce_expired"
	reasonWrongDID     = "wrong_did"
	reasonBadSignature = "bad_signature"
)

func challengeReasons() []string {
	return []string{reasonRateLimited, reasonUnknownNonce, reasonNonceExpired, reasonWrongDID, reasonBadSignature, reasonScope}
}

// limited answers 429 when the client's address has spent its bucket.
func (s *Server) limited(w http.ResponseWriter, r *http.Request, route string) bool {
	wait, ok := s.limiter.allow(remoteIP(r), s.now())
	if ok {
		return false
	}
	s.m.authFailure(reasonRateLimited)
	s.sec.refused(r, route, reasonRateLimited, "")
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeError(w, &controlapi.Error{Status: http.StatusTooManyRequests, Message: "too many authentication requests from this address",
		Hint: fmt.Sprintf("wait %d s (Retry-After) and try again", max(secs, 1))})
	return true
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	if s.limited(w, r, "POST "+gatewayapi.RouteAuthChallenge) {
		return nil, 0, nil
	}
	req, err := decode[gatewayapi.ChallengeRequest](r)
	if err != nil {
		return nil, 0, err
	}
	d, err := did.Parse(req.DID)
	if err != nil {
		return nil, 0, badDID(req.DID, err)
	}
	nonce, exp, err := s.challenges.Issue(d, s.now())
	if errors.Is(err, auth.ErrTooManyChallenges) {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.ChallengeTTL.Seconds())))
		return nil, 0, &controlapi.Error{Status: http.StatusServiceUnavailable, Message: err.Error(), Hint: "try again later"}
	}
	if err != nil {
		return nil, 0, err
	}
	node := s.n.DID()
	return gatewayapi.Challenge{Nonce: nonce, ExpiresAt: exp.UTC(), NodeDID: node.String(), Message: string(auth.Message(node, d, nonce))}, http.StatusOK, nil
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	route := "POST " + gatewayapi.RouteAuthVerify
	if s.limited(w, r, route) {
		return nil, 0, nil
	}
	req, err := decode[gatewayapi.VerifyRequest](r)
	if err != nil {
		return nil, 0, err
	}
	d, err := did.Parse(req.DID)
	if err != nil {
		return nil, 0, badDID(req.DID, err)
	}
	now := s.now()
	if err := s.challenges.Verify(d, req.Nonce, req.Signature, s.n.DID(), now); err != nil {
		reason := reasonBadSignature
		switch {
		case errors.Is(err, auth.ErrUnknownNonce):
			reason = reasonUnknownNonce
		case errors.Is(err, auth.ErrNonceExpired):
			reason = reasonNonceExpired
		case errors.Is(err, auth.ErrWrongDID):
			reason = reasonWrongDID
		}
		s.m.authFailure(reason)
		s.sec.refused(r, route, reason, d.String())
		return nil, 0, &controlapi.Error{Status: http.StatusUnauthorized, Message: err.Error(),
			Hint: "sign the challenge's message field with the DID's Ed25519 key, once, before expires_at"}
	}
	tok, err := s.mint(r.Context(), d, auth.MemberScopes(), s.cfg.TokenTTL)
	if err != nil {
		return nil, 0, err
	}
	s.log.Info("gateway member signed in", "sub", d, "jti", tok.JTI, "expires", tok.ExpiresAt, "remote", remoteIP(r))
	return tok, http.StatusOK, nil
}

func tokenOf(tok string, c auth.Claims) gatewayapi.Token {
	return gatewayapi.Token{Token: tok, TokenType: "Bearer", JTI: c.ID, Subject: c.Subject.String(), Scopes: c.Scopes,
		IssuedAt: c.IssuedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC()}
}

// ipLimiter holds a token bucket per client address; the least recently
// seen addresses are forgotten beyond maxIPs, so a crowd of addresses
// costs bounded memory (a forgotten address starts with a full bucket).
type ipLimiter struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	ips   *lru.Cache[string, *rate.Limiter]
}

const maxIPs = 16384

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	c, err := lru.New[string, *rate.Limiter](maxIPs)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &ipLimiter{rate: rate.Limit(perSecond), burst: burst, ips: c}
}

// allow takes a token for ip, or says how long until one is free.
func (l *ipLimiter) allow(ip string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	lim, ok := l.ips.Get(ip)
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.ips.Add(ip, lim)
	}
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return 0, true
	}
	res := lim.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	res.CancelAt(now)
	return wait, false
}

// securityLog writes the SECURITY line of a refused request, at most
// logBurst at once and logRate a second after that; the lines it skips are
// counted in the next one (the metrics count every refusal).
type securityLog struct {
	log     *slog.Logger
	lim     *rate.Limiter
	mu      sync.Mutex
	skipped int
}

const (
	logRate  = 5
	logBurst = 20
)

func newSecurityLog(log *slog.Logger) *securityLog {
	return &securityLog{log: log, lim: rate.NewLimiter(logRate, logBurst)}
}

func (l *securityLog) refused(r *http.Request, route, reason, sub string) {
	l.mu.Lock()
	if !l.lim.Allow() {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.skipped = 0
	l.mu.Unlock()
	args := []any{"reason", reason, "remote", r.RemoteAddr, "route", route}
	if sub != "" {
		args = append(args, "sub", sub)
	}
	if skipped > 0 {
		args = append(args, "similar_lines_skipped", skipped)
	}
	l.log.Warn("SECURITY gateway request refused", args...)
}
