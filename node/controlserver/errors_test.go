package controlserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/controlserver"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Every error the node's domain API returns has one status and, where
// there is something to do, a hint; wrapping keeps both.
func TestDescribe(t *testing.T) {
	someDID := did.DID{}
	for _, c := range []struct {
		name   string
		err    error
		status int
		hint   string // a substring; "" means no hint
	}{
		{"bad DID", &node.ArgError{Arg: node.ArgDID, Err: errors.New("not a DID")}, http.StatusBadRequest, "did:icn:z"},
		{"bad address", &node.ArgError{Arg: node.ArgAddr, Err: errors.New("x")}, http.StatusBadRequest, "host:port"},
		{"no peer id", &node.ArgError{Arg: node.ArgAddr, Err: &node.MissingPeerIDError{Addr: "/ip4/1.2.3.4/udp/1/quic-v1"}}, http.StatusBadRequest, "append /p2p/"},
		{"bad amount", &node.ArgError{Arg: node.ArgAmount, Err: errors.New("x"), Decimals: 2}, http.StatusBadRequest, "at most 2 decimal places"},
		{"nothing to dial", node.ErrNothingToDial, http.StatusBadRequest, "multiaddr"},
		{"self", node.ErrDialSelf, http.StatusBadRequest, "another node"},
		{"pay self", node.ErrPaySelf, http.StatusBadRequest, "another member"},
		{"not connected (disconnect)", &node.NotConnectedError{Target: "12D3KooX", Op: "disconnect"}, http.StatusNotFound, "network peers"},
		{"not connected (sync, DID)", &node.NotConnectedError{Target: "did:icn:zX", IsDID: true, Op: "sync"}, http.StatusNotFound, "network dial did:icn:zX [ADDR]"},
		{"dial failed", &node.DialError{Addr: "/ip4/1.2.3.4", Err: errors.New("x")}, http.StatusBadGateway, "UDP to that port"},
		{"another DID", &node.ProofError{Want: someDID, Got: mustDID(t)}, http.StatusConflict, "icnctl id show"},
		{"no proof", &node.ProofError{Err: errors.New("timeout")}, http.StatusBadGateway, ""},
		{"no address", &node.NoAddressError{}, http.StatusNotFound, "network bootstrap"},
		{"no peers to sync", &node.NoSyncPeerError{}, http.StatusServiceUnavailable, "network dial"},
		{"none serve sync", &node.NoSyncPeerError{Connected: 2}, http.StatusServiceUnavailable, "older icnd"},
		{"peer does not serve sync", &node.NoSyncPeerError{Target: "x", Connected: 1}, http.StatusConflict, "older icnd"},
		{"unknown currency", &node.UnknownCurrencyError{Symbol: "hours", Typed: "hours", Known: []string{"FOOD"}}, http.StatusNotFound, "known currencies: FOOD"},
		{"ambiguous currency", &node.AmbiguousCurrencyError{Symbol: "hours", Options: []string{"hours@a", "hours@b"}}, http.StatusConflict, "hours@a, hours@b"},
		{"currency exists", &node.CurrencyExistsError{Symbol: "hours"}, http.StatusConflict, "another symbol"},
		{"over the limit", &store.RefusedError{Reason: ledger.ReasonOverCreditLimit + ": x"}, http.StatusUnprocessableEntity, "pay less"},
		{"refused", &store.RefusedError{Reason: "something else"}, http.StatusUnprocessableEntity, "nothing was written"},
		{"disk full", fmt.Errorf("pay: %w", &store.DiskFullError{Dir: "/var/lib/icn/datastore", Free: 1 << 20, MinFree: 64 << 20, Need: 300}), http.StatusInsufficientStorage,
			"free space on the filesystem of /var/lib/icn/datastore (or grow it) until at least 65 MiB are free; icnd takes writes again by itself, without a restart"},
		{"wrong passphrase", did.ErrWrongPassphrase, http.StatusForbidden, "ICN_KEYSTORE_PASSPHRASE"},
		{"too large", &gossip.TooLargeError{Size: 2, Limit: 1}, http.StatusRequestEntityTooLarge, "max_message_size"},
		{"ledger topic", node.ErrLedgerTopic, http.StatusForbidden, "icnd joins these topics itself"},
		{"not joined", &node.TopicNotJoinedError{Topic: "x"}, http.StatusNotFound, "gossip topics"},
		{"stopping", node.ErrStopping, http.StatusServiceUnavailable, "try again"},
		{"gossip stopped", gossip.ErrStopped, http.StatusServiceUnavailable, "try again"},
		{"gateway off: no secret", &node.GatewayOffError{Key: "gateway.jwt_secret_file", Why: "no secret"}, http.StatusConflict, "ICN_GATEWAY_JWT_SECRET or in the file [gateway] jwt_secret_file names (make one with `openssl rand -hex 32`), keep observability.health_port above 0"},
		{"gateway off: disabled", &node.GatewayOffError{Key: "gateway.enabled", Why: "off"}, http.StatusConflict, "set [gateway] enabled = true"},
		{"gateway off: no listener", &node.GatewayOffError{Key: "observability.health_port", Why: "0"}, http.StatusConflict, "set observability.health_port to a port"},
		{"unknown token", &node.UnknownTokenError{JTI: "00"}, http.StatusNotFound, "revoke --all"},
		{"bad scope", &node.ArgError{Arg: node.ArgScope, Err: errors.New("x")}, http.StatusBadRequest, "ledger:read, ledger:write, gossip:read, gossip:write, trust:read, admin"},
		{"bad ttl", &node.ArgError{Arg: node.ArgTTL, Err: errors.New("x")}, http.StatusBadRequest, "720h"},
		{"bad subject", &node.ArgError{Arg: node.ArgSubject, Err: errors.New("x")}, http.StatusBadRequest, "did:icn:z"},
		{"bad jti", &node.ArgError{Arg: node.ArgJTI, Err: errors.New("x")}, http.StatusBadRequest, "--all"},
		{"untrusted author", &node.UntrustedAuthorError{}, http.StatusForbidden, "icnctl trust add DID SCORE"},
		{"untrusted peer", &node.UntrustedPeerError{Need: 0.1}, http.StatusForbidden, "0.1` (or more) admits it"},
		{"hung up", &node.HungUpError{}, http.StatusBadGateway, "its operator admits this one with `icnctl trust add"},
		{"trust self", node.ErrTrustSelf, http.StatusBadRequest, "another member's DID"},
		{"no edge", &node.NoTrustEdgeError{DID: "did:icn:zX"}, http.StatusNotFound, "trust list"},
		{"bad score", &node.ArgError{Arg: node.ArgScore, Err: errors.New("x")}, http.StatusBadRequest, "from 0 (none) to 1 (full)"},
		{"bad label", &node.ArgError{Arg: node.ArgLabel, Err: errors.New("x")}, http.StatusBadRequest, "--label coop:bakery"},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, ""},
		{"unknown", errors.New("disk on fire"), http.StatusInternalServerError, ""},
		{"already described", &controlapi.Error{Status: http.StatusTeapot, Message: "m", Hint: "h"}, http.StatusTeapot, "h"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range []error{c.err, fmt.Errorf("context: %w", c.err)} {
				e := controlserver.Describe(err)
				require.Equal(t, c.status, e.Status, "%v", err)
				require.Equal(t, err.Error(), e.Message)
				if c.hint == "" {
					require.Empty(t, e.Hint)
				} else {
					require.Contains(t, e.Hint, c.hint)
				}
			}
		})
	}
}

// A hint never suggests creating a currency under a symbol that creation
// would refuse: resolveCurrency refuses a symbol that does not parse as an
// ArgError, so an unknown currency's symbol is always one create accepts.
func TestUnknownCurrencyHint(t *testing.T) {
	require.Contains(t, controlserver.Describe(&node.UnknownCurrencyError{Symbol: "HRS", Typed: "HRS"}).Hint, "currency create HRS`")
	q := controlserver.Describe(&node.UnknownCurrencyError{Symbol: "HRS@did:icn:zX", Typed: "HRS", Qualified: true}).Hint
	require.NotContains(t, q, "currency create", "another issuer's currency cannot be created here")
}

func mustDID(t *testing.T) did.DID {
	t.Helper()
	id, err := did.Generate(time.Now())
	require.NoError(t, err)
	return id.DID
}
