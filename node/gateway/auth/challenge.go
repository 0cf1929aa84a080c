package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/intercooperative/icn/did"
)

// MessagePrefix opens every challenge message; the version suffix changes if
// the format ever does.
const MessagePrefix = "icn-gateway-auth-v1"

const nonceBytes = 32

// Challenge refusals. Verify wraps exactly one of these.
var (
	ErrUnknownNonce      = errors.New("unknown or already used challenge nonce")
	ErrNonceExpired      = errors.New("challenge nonce has expired")
	ErrWrongDID          = errors.New("challenge nonce was issued to another DID")
	ErrBadSignature      = errors.New("challenge signature does not verify with the DID's key")
	ErrTooManyChallenges = errors.New("too many outstanding challenges")
)

// Message returns the bytes a wallet signs with the Ed25519 key of d to
// answer a challenge from the node nodeDID:
//
//	"icn-gateway-auth-v1\n" + nodeDID + "\n" + d + "\n" + nonce
//
// Naming the node stops a signature made for one node being replayed to
// another; the prefix stops it being mistaken for any other ICN signature.
func Message(nodeDID, d did.DID, nonce string) []byte {
	n, m := nodeDID.String(), d.String()
	b := make([]byte, 0, len(MessagePrefix)+3+len(n)+len(m)+len(nonce))
	b = append(b, MessagePrefix...)
	b = append(b, '\n')
	b = append(b, n...)
	b = append(b, '\n')
	b = append(b, m...)
	b = append(b, '\n')
	b = append(b, nonce...)
	return b
}

type challenge struct {
	did     did.DID
	expires time.Time
}

// Challenges holds the outstanding one-time nonces. It is safe for
// concurrent use and starts no goroutines: expired nonces are dropped when
// room is needed.
type Challenges struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	pending map[string]challenge
}

// NewChallenges returns a store whose nonces live for ttl, with at most max
// outstanding at once.
func NewChallenges(ttl time.Duration, maxOutstanding int) (*Challenges, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("challenge ttl %s must be positive, e.g. 5m", ttl)
	}
	if maxOutstanding < 1 {
		return nil, fmt.Errorf("challenge limit %d must be at least 1", maxOutstanding)
	}
	return &Challenges{ttl: ttl, max: maxOutstanding, pending: make(map[string]challenge)}, nil
}

// Issue makes a fresh nonce (32 random bytes, hex) for d, valid until the
// returned time. When max nonces are outstanding, expired ones are dropped
// first; if all are still live it refuses with ErrTooManyChallenges.
func (c *Challenges) Issue(d did.DID, now time.Time) (string, time.Time, error) {
	if d.IsZero() {
		return "", time.Time{}, fmt.Errorf("issue challenge: %w: the DID is empty", ErrBadSubject)
	}
	var raw [nonceBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("issue challenge: read random nonce: %w", err)
	}
	nonce := hex.EncodeToString(raw[:])
	expires := now.Add(c.ttl)

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= c.max {
		c.dropExpiredLocked(now)
	}
	if len(c.pending) >= c.max {
		return "", time.Time{}, fmt.Errorf("issue challenge: %w (%d live, each valid for %s); retry later", ErrTooManyChallenges, len(c.pending), c.ttl)
	}
	c.pending[nonce] = challenge{did: d, expires: expires}
	return nonce, expires, nil
}

// dropExpiredLocked removes every expired nonce. Each is at least as old as
// any live one, so this is the "oldest first" drop.
func (c *Challenges) dropExpiredLocked(now time.Time) {
	for n, ch := range c.pending {
		if !now.Before(ch.expires) {
			delete(c.pending, n)
		}
	}
}

// Outstanding reports how many nonces are held, expired or not.
func (c *Challenges) Outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Verify checks that sig is d's Ed25519 signature over Message(nodeDID, d,
// nonce) for a live nonce issued to d. The nonce is consumed by any attempt,
// successful or not, so a nonce cannot be brute-forced or replayed.
func (c *Challenges) Verify(d did.DID, nonce string, sig []byte, nodeDID did.DID, now time.Time) error {
	c.mu.Lock()
	ch, ok := c.pending[nonce]
	delete(c.pending, nonce)
	c.mu.Unlock()

	switch {
	case !ok:
		return fmt.Errorf("verify challenge: %w; ask for a new challenge", ErrUnknownNonce)
	case !now.Before(ch.expires):
		return fmt.Errorf("verify challenge: %w (at %s); ask for a new challenge", ErrNonceExpired, ch.expires.UTC().Format(time.RFC3339))
	case ch.did != d:
		return fmt.Errorf("verify challenge: %w; ask for a challenge for %s", ErrWrongDID, d)
	case !d.Verify(Message(nodeDID, d, nonce), sig):
		return fmt.Errorf("verify challenge: %w; sign the challenge message for node %s with the key of %s", ErrBadSignature, nodeDID, d)
	}
	return nil
}
