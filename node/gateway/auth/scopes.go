package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Scope names carried in a token's "scopes" claim.
const (
	ScopeLedgerRead  = "ledger:read"
	ScopeLedgerWrite = "ledger:write"
	ScopeGossipRead  = "gossip:read"
	ScopeGossipWrite = "gossip:write"
	ScopeTrustRead   = "trust:read"
	// ScopeAdmin implies every other scope. It is never granted through a
	// DID challenge, only minted by the node operator.
	ScopeAdmin = "admin"
)

// ErrUnknownScope reports a scope name that is not one of the constants
// above.
var ErrUnknownScope = errors.New("unknown scope")

// MemberScopes returns the scopes granted to a member DID that proves its
// key through a challenge. The slice is fresh on every call.
func MemberScopes() []string {
	return []string{ScopeLedgerRead, ScopeLedgerWrite, ScopeGossipRead, ScopeGossipWrite, ScopeTrustRead}
}

// AllScopes returns every known scope, member scopes first, then admin.
func AllScopes() []string {
	return append(MemberScopes(), ScopeAdmin)
}

// IsScope reports whether s is a known scope name.
func IsScope(s string) bool {
	switch s {
	case ScopeLedgerRead, ScopeLedgerWrite, ScopeGossipRead, ScopeGossipWrite, ScopeTrustRead, ScopeAdmin:
		return true
	}
	return false
}

// ValidateScopes checks that scopes is non-empty and every name is known. The
// error wraps [ErrUnknownScope] and names the valid scopes.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return fmt.Errorf("%w: no scopes given; use one or more of %s", ErrUnknownScope, strings.Join(AllScopes(), ", "))
	}
	for _, s := range scopes {
		if !IsScope(s) {
			return fmt.Errorf("%w %q: use one or more of %s", ErrUnknownScope, echo(s), strings.Join(AllScopes(), ", "))
		}
	}
	return nil
}

// echo bounds how much of an untrusted string ends up in an error message.
func echo(s string) string {
	const maxEcho = 64
	if len(s) > maxEcho {
		return s[:maxEcho] + "..."
	}
	return s
}
