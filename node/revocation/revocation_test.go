package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/require"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func id(n int) string { return fmt.Sprintf("%032x", n) }

func open(t *testing.T, store ds.Datastore, c *clock) *List {
	t.Helper()
	l, err := Open(context.Background(), store, Options{Now: c.now, Grace: 30 * time.Second})
	require.NoError(t, err)
	return l
}

func keys(t *testing.T, store ds.Datastore) []string {
	t.Helper()
	res, err := store.Query(context.Background(), dsq.Query{KeysOnly: true})
	require.NoError(t, err)
	all, err := res.Rest()
	require.NoError(t, err)
	out := make([]string, len(all))
	for i, e := range all {
		out[i] = e.Key
	}
	return out
}

func TestValidID(t *testing.T) {
	require.True(t, ValidID("5949efb485e30b0a48ef6c15a10340e1"))
	for _, bad := range []string{"", "5949efb485e30b0a48ef6c15a10340e", "5949efb485e30b0a48ef6c15a10340e1a",
		"5949EFB485E30B0A48EF6C15A10340E1", "5949efb485e30b0a48ef6c15a10340eg", "../../../../../../../../../../x"} {
		require.False(t, ValidID(bad), bad)
	}
}

func TestRevokeByIDSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := open(t, store, c)
	iat := c.t
	for i := 1; i <= 2; i++ {
		require.NoError(t, l.Issue(ctx, Token{ID: id(i), Subject: "did:icn:zX", Scopes: []string{"admin"}, IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}))
	}
	require.Error(t, l.Issue(ctx, Token{ID: id(1), IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}), "a token ID is recorded once")
	require.Error(t, l.Issue(ctx, Token{ID: "nope", IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}))
	require.False(t, l.Revoked(id(1), iat))

	tok, already, err := l.Revoke(ctx, id(1))
	require.NoError(t, err)
	require.False(t, already)
	require.Equal(t, "did:icn:zX", tok.Subject)
	require.Equal(t, c.t, tok.RevokedAt)
	require.True(t, l.Revoked(id(1), iat))
	require.False(t, l.Revoked(id(2), iat))
	_, already, err = l.Revoke(ctx, id(1))
	require.NoError(t, err)
	require.True(t, already)
	_, _, err = l.Revoke(ctx, id(3))
	require.ErrorIs(t, err, ErrUnknown)

	l = open(t, store, c)
	require.True(t, l.Revoked(id(1), iat))
	require.False(t, l.Revoked(id(2), iat))
	got, ok := l.Lookup(id(1))
	require.True(t, ok)
	require.Equal(t, []string{"admin"}, got.Scopes)
	require.Equal(t, iat.Add(time.Hour), got.ExpiresAt)
}

// revoke --all revokes what was issued at or before its second, including
// a token minted earlier in that same second; one issued in a later second
// is not.
func TestRevokeBefore(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	c := &clock{t: time.Unix(1_800_000_000, 0).Add(300 * time.Millisecond)}
	l := open(t, store, c)
	require.True(t, l.Cutoff().IsZero())
	sameSecond := time.Unix(1_800_000_000, 0) // a token's iat: whole seconds
	require.False(t, l.Revoked(id(1), sameSecond))

	cut, err := l.RevokeBefore(ctx, c.t)
	require.NoError(t, err)
	require.Equal(t, time.Unix(1_800_000_000, 0), cut)
	require.True(t, l.Revoked(id(1), sameSecond), "minted in the same second, before the revoke")
	require.True(t, l.Revoked(id(1), sameSecond.Add(-time.Hour)))
	require.True(t, l.Revoked("not even an id", sameSecond), "the cutoff covers tokens the list never recorded")
	require.False(t, l.Revoked(id(1), sameSecond.Add(time.Second)))

	// An earlier cutoff changes nothing; a later one moves it.
	cut, err = l.RevokeBefore(ctx, c.t.Add(-time.Minute))
	require.NoError(t, err)
	require.Equal(t, time.Unix(1_800_000_000, 0), cut)
	l = open(t, store, c)
	require.Equal(t, time.Unix(1_800_000_000, 0), l.Cutoff())
	require.True(t, l.Revoked(id(1), sameSecond))
	cut, err = l.RevokeBefore(ctx, c.t.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, time.Unix(1_800_000_060, 0), cut)
	require.True(t, l.Revoked(id(1), sameSecond.Add(time.Second)))
}

// A record lapses once its token has expired and the parser's grace has
// passed: it is dropped on open and on any write.
func TestRecordsArePrunedOnceExpired(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := open(t, store, c)
	iat := c.t
	require.NoError(t, l.Issue(ctx, Token{ID: id(1), IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}))
	require.NoError(t, l.Issue(ctx, Token{ID: id(2), IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}))
	_, _, err := l.Revoke(ctx, id(1))
	require.NoError(t, err)
	require.Equal(t, 2, l.Len())

	// Expired, but within the grace: still revoked (the parser would
	// still accept it).
	c.t = iat.Add(time.Minute + 29*time.Second)
	require.True(t, l.Revoked(id(1), iat))
	require.NoError(t, l.Issue(ctx, Token{ID: id(3), IssuedAt: c.t, ExpiresAt: c.t.Add(time.Hour)}))
	require.Equal(t, 3, l.Len())

	// Past the grace: the next write drops it.
	c.t = iat.Add(time.Minute + 30*time.Second)
	_, ok := l.Lookup(id(1))
	require.False(t, ok)
	_, _, err = l.Revoke(ctx, id(1))
	require.ErrorIs(t, err, ErrUnknown, "an expired token cannot be revoked: it is refused anyway")
	_, _, err = l.Revoke(ctx, id(3))
	require.NoError(t, err)
	require.Equal(t, 2, l.Len())
	require.Len(t, keys(t, store), 2)

	// On open too.
	c.t = iat.Add(2 * time.Hour)
	l = open(t, store, c)
	require.Equal(t, 0, l.Len())
	require.Empty(t, keys(t, store))
}

func TestUnreadableRecords(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	require.NoError(t, store.Put(ctx, ds.NewKey("/tokens/"+id(1)), []byte("{not json")))
	require.NoError(t, store.Put(ctx, ds.NewKey("/tokens/"+id(2)), []byte(`{"v":1,"jti":"`+id(3)+`","exp":1900000000}`)))
	var logs strings.Builder
	l, err := Open(ctx, store, Options{Now: c.now, Log: slogTo(&logs)})
	require.NoError(t, err)
	require.Equal(t, 0, l.Len())
	require.Equal(t, 2, strings.Count(logs.String(), "SECURITY gateway token record unreadable"))

	// A damaged cutoff is read as "everything issued until now".
	require.NoError(t, store.Put(ctx, ds.NewKey("/revoked-before"), []byte("garbage")))
	l, err = Open(ctx, store, Options{Now: c.now, Log: slogTo(&logs)})
	require.NoError(t, err)
	require.Equal(t, c.t, l.Cutoff())
	require.True(t, l.Revoked(id(4), c.t))
	require.Contains(t, logs.String(), "revocation cutoff record is unreadable")
	c.t = c.t.Add(time.Hour)
	l, err = Open(ctx, store, Options{Now: c.now})
	require.NoError(t, err)
	require.Equal(t, c.t.Add(-time.Hour), l.Cutoff(), "and rewritten so")
}

func slogTo(w *strings.Builder) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
