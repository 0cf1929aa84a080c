// Package revocation keeps the Gateway API's token records in the node's
// datastore, under a prefix of their own, so they survive restarts: every
// token the node issues (its ID, subject, scopes, issue and expiry times),
// which of them are revoked, and a "revoked before" cutoff that revokes
// every token issued at or before a moment (`icnctl gateway revoke --all`).
// A record lapses once its token has expired (plus the grace the token
// parser allows): it is dropped on open and whenever the list is written.
//
// The list decides nothing about signatures or claims: the gateway's token
// issuer (node/gateway/auth) asks [List.Revoked] about tokens that are
// otherwise valid.
package revocation

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// IDLen is the length of a token ID: 16 random bytes in lower-case hex.
const IDLen = 32

// ErrUnknown means no live token has the ID: this node never issued it, or
// it has expired (and is refused for that anyway).
var ErrUnknown = errors.New("no such token")

// Token is the record of one issued token.
type Token struct {
	ID        string
	Subject   string
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// RevokedAt is when it was revoked by ID; zero if it was not.
	RevokedAt time.Time
}

// Options configure a List.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Grace is how long after its expiry a token may still be accepted
	// (the parser's leeway); a record is kept that much longer.
	Grace time.Duration
	// Log receives a warning for a stored record that cannot be read;
	// nil discards them.
	Log *slog.Logger
}

// List holds the records. It is safe for concurrent use.
type List struct {
	store ds.Datastore
	opts  Options

	mu     sync.RWMutex
	tokens map[string]Token
	before time.Time // zero: no cutoff
}

var (
	tokensKey = ds.NewKey("/tokens")
	beforeKey = ds.NewKey("/revoked-before")
)

// ValidID reports whether id looks like a token ID (IDLen lower-case hex
// digits).
func ValidID(id string) bool {
	if len(id) != IDLen || strings.ToLower(id) != id {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Open loads the records kept in store (a namespace of the node's datastore
// that the list owns), dropping those that have lapsed.
func Open(ctx context.Context, store ds.Datastore, opts Options) (*List, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	l := &List{store: store, opts: opts, tokens: map[string]Token{}}
	data, err := store.Get(ctx, beforeKey)
	switch {
	case errors.Is(err, ds.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("gateway tokens: read the revocation cutoff: %w", err)
	default:
		var r cutoffRecord
		if err := json.Unmarshal(data, &r); err != nil || r.Version != 1 {
			// Refusing every token issued so far is the safe reading of
			// a damaged cutoff; the record is rewritten so.
			l.before = time.Unix(opts.Now().Unix(), 0)
			opts.Log.Warn("SECURITY the gateway's revocation cutoff record is unreadable; every token issued until now is refused",
				"record", fmt.Sprintf("%q", data), "cutoff", l.before)
			if err := l.putCutoff(ctx, l.before); err != nil {
				return nil, err
			}
		} else {
			l.before = time.Unix(r.Before, 0)
		}
	}
	res, err := store.Query(ctx, dsq.Query{Prefix: tokensKey.String()})
	if err != nil {
		return nil, fmt.Errorf("gateway tokens: read the datastore: %w", err)
	}
	defer res.Close()
	now := opts.Now()
	var lapsed []ds.Key
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("gateway tokens: read the datastore: %w", r.Error)
		}
		t, err := decode(r.Value)
		if err != nil || ds.NewKey(r.Key) != tokenKey(t.ID) {
			opts.Log.Warn("SECURITY gateway token record unreadable; if it recorded a revocation, that token is accepted again until it expires",
				"key", r.Key, "err", err)
			continue
		}
		if l.lapsed(t, now) {
			lapsed = append(lapsed, ds.NewKey(r.Key))
			continue
		}
		l.tokens[t.ID] = t
	}
	for _, k := range lapsed {
		if err := store.Delete(ctx, k); err != nil {
			opts.Log.Warn("could not remove a lapsed gateway token record", "key", k, "err", err)
		}
	}
	return l, nil
}

func (l *List) lapsed(t Token, now time.Time) bool { return !now.Before(t.ExpiresAt.Add(l.opts.Grace)) }

// Issue records a token the node has just minted; it is durable when Issue
// returns. t.ID must be a valid ID not recorded before.
func (l *List) Issue(ctx context.Context, t Token) error {
	if !ValidID(t.ID) {
		return fmt.Errorf("gateway tokens: %q is not a token ID", t.ID)
	}
	t.Scopes = slices.Clone(t.Scopes)
	t.RevokedAt = time.Time{}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.tokens[t.ID]; ok {
		return fmt.Errorf("gateway tokens: token %s is already recorded", t.ID)
	}
	if err := l.put(ctx, t); err != nil {
		return err
	}
	l.tokens[t.ID] = t
	l.prune(ctx)
	return nil
}

// Revoke revokes the token with id, durably. It returns the token's record
// and whether it was revoked by ID already. An ID not recorded (or whose
// token has expired) is an error wrapping ErrUnknown.
func (l *List) Revoke(ctx context.Context, id string) (Token, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.tokens[id]
	if !ok || l.lapsed(t, l.opts.Now()) {
		return Token{}, false, fmt.Errorf("token %s: %w", id, ErrUnknown)
	}
	if !t.RevokedAt.IsZero() {
		return clone(t), true, nil
	}
	t.RevokedAt = l.opts.Now()
	if err := l.put(ctx, t); err != nil {
		return Token{}, false, err
	}
	l.tokens[id] = t
	l.prune(ctx)
	return clone(t), false, nil
}

// RevokeBefore revokes every token issued at or before cutoff (in whole
// seconds: token times have no finer grain), durably, and returns the
// cutoff now in force: an earlier cutoff than the one held changes nothing.
func (l *List) RevokeBefore(ctx context.Context, cutoff time.Time) (time.Time, error) {
	cutoff = time.Unix(cutoff.Unix(), 0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !cutoff.After(l.before) {
		return l.before, nil
	}
	if err := l.putCutoff(ctx, cutoff); err != nil {
		return time.Time{}, err
	}
	l.before = cutoff
	l.prune(ctx)
	return cutoff, nil
}

// Revoked reports whether the token with id, issued at issuedAt, is
// revoked: by ID, or because it was issued at or before the cutoff.
func (l *List) Revoked(id string, issuedAt time.Time) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.before.IsZero() && !issuedAt.After(l.before) {
		return true
	}
	t, ok := l.tokens[id]
	return ok && !t.RevokedAt.IsZero()
}

// Cutoff returns the "revoked before" cutoff; zero when there is none.
func (l *List) Cutoff() time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.before
}

// Lookup returns the live record of the token with id.
func (l *List) Lookup(id string) (Token, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t, ok := l.tokens[id]
	if !ok || l.lapsed(t, l.opts.Now()) {
		return Token{}, false
	}
	return clone(t), true
}

// Len returns the number of records held (some may have lapsed since the
// last write).
func (l *List) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tokens)
}

// prune drops the records that have lapsed. A failed delete leaves the
// record for the next open or write to drop. l.mu is held.
func (l *List) prune(ctx context.Context) {
	now := l.opts.Now()
	for id, t := range l.tokens {
		if !l.lapsed(t, now) {
			continue
		}
		if err := l.store.Delete(ctx, tokenKey(id)); err != nil {
			l.opts.Log.Warn("could not remove a lapsed gateway token record", "jti", id, "err", err)
			continue
		}
		delete(l.tokens, id)
	}
}

func (l *List) put(ctx context.Context, t Token) error {
	data, err := json.Marshal(record{Version: 1, ID: t.ID, Subject: t.Subject, Scopes: t.Scopes,
		IssuedAt: t.IssuedAt.Unix(), ExpiresAt: t.ExpiresAt.Unix(), RevokedAt: t.RevokedAt})
	if err != nil {
		return err
	}
	if err := l.store.Put(ctx, tokenKey(t.ID), data); err != nil {
		return fmt.Errorf("gateway tokens: store token %s: %w", t.ID, err)
	}
	return nil
}

func (l *List) putCutoff(ctx context.Context, cutoff time.Time) error {
	data, err := json.Marshal(cutoffRecord{Version: 1, Before: cutoff.Unix()})
	if err != nil {
		return err
	}
	if err := l.store.Put(ctx, beforeKey, data); err != nil {
		return fmt.Errorf("gateway tokens: store the revocation cutoff: %w", err)
	}
	return nil
}

func tokenKey(id string) ds.Key { return tokensKey.ChildString(id) }

// record is a token on disk. Times of the token are Unix seconds, as in
// the token itself.
type record struct {
	Version   int       `json:"v"`
	ID        string    `json:"jti"`
	Subject   string    `json:"sub"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  int64     `json:"iat"`
	ExpiresAt int64     `json:"exp"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// cutoffRecord is the "revoked before" cutoff on disk, in Unix seconds.
type cutoffRecord struct {
	Version int   `json:"v"`
	Before  int64 `json:"before"`
}

func decode(data []byte) (Token, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return Token{}, err
	}
	if r.Version != 1 {
		return Token{}, fmt.Errorf("record version %d, want 1", r.Version)
	}
	if !ValidID(r.ID) {
		return Token{}, fmt.Errorf("record holds the ID %q", r.ID)
	}
	return Token{ID: r.ID, Subject: r.Subject, Scopes: r.Scopes, IssuedAt: time.Unix(r.IssuedAt, 0),
		ExpiresAt: time.Unix(r.ExpiresAt, 0), RevokedAt: r.RevokedAt}, nil
}

func clone(t Token) Token {
	t.Scopes = slices.Clone(t.Scopes)
	return t
}
