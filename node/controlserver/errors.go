package controlserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Describe turns an error from the node's domain API into what a front door
// answers: an HTTP status, the message and a hint saying what to do. It is
// the one place that knows both the domain's errors and HTTP; the control
// socket and the gateway both use it. An error it does not know is a 500
// with the error's own text.
func Describe(err error) *controlapi.Error {
	e := &controlapi.Error{Status: http.StatusInternalServerError, Message: err.Error()}
	set := func(status int, hint string) *controlapi.Error {
		e.Status, e.Hint = status, hint
		return e
	}
	var (
		ce         *controlapi.Error
		arg        *node.ArgError
		notConn    *node.NotConnectedError
		dial       *node.DialError
		proof      *node.ProofError
		noAddr     *node.NoAddressError
		noSync     *node.NoSyncPeerError
		unknownCur *node.UnknownCurrencyError
		ambiguous  *node.AmbiguousCurrencyError
		exists     *node.CurrencyExistsError
		notJoined  *node.TopicNotJoinedError
		refused    *store.RefusedError
		diskFull   *store.DiskFullError
		rule       *ledger.RuleError
		tooLarge   *gossip.TooLargeError
		envelope   *gossip.EnvelopeError
		target     *blocklist.TargetError
		duration   *blocklist.DurationError
		reason     *blocklist.ReasonError
		blocked    *blocklist.BlockedError
		noEdge     *node.NoTrustEdgeError
		untrusted  *node.UntrustedAuthorError
		untrustedP *node.UntrustedPeerError
		hungUp     *node.HungUpError
		penalised  *node.PenalisedPeerError
		gwOff      *node.GatewayOffError
		noToken    *node.UnknownTokenError
	)
	switch {
	case errors.As(err, &ce):
		return set(ce.Status, ce.Hint)
	case errors.As(err, &arg):
		return set(http.StatusBadRequest, argHint(arg))
	case errors.Is(err, node.ErrNothingToDial):
		return set(http.StatusBadRequest, "give a multiaddr, or a DID and an address")
	case errors.Is(err, node.ErrDialSelf):
		return set(http.StatusBadRequest, "dial another node's address")
	case errors.Is(err, node.ErrPaySelf):
		return set(http.StatusBadRequest, "give another member's DID")
	case errors.As(err, &notConn):
		return set(http.StatusNotFound, notConnectedHint(notConn))
	case errors.As(err, &proof):
		if !proof.Got.IsZero() {
			return set(http.StatusConflict, "check the DID and the address; `icnctl id show` on the other host prints its DID")
		}
		return set(http.StatusBadGateway, "")
	case errors.As(err, &dial):
		if dial.Via != "" {
			return set(http.StatusBadGateway, "")
		}
		return set(http.StatusBadGateway, "check that icnd runs there, that UDP to that port is open, and the address (`icnctl status` on that host prints it)")
	case errors.As(err, &noAddr):
		return set(http.StatusNotFound, "check that the node is up and bootstrapped (`icnctl network bootstrap`), or give its address: icnctl network dial DID HOST:PORT")
	case errors.As(err, &noSync):
		switch {
		case noSync.Target != "":
			return set(http.StatusConflict, "it may run an older icnd (`icnctl status` on that node lists its protocols), or it is still identifying: try again in a moment")
		case noSync.Connected == 0:
			return set(http.StatusServiceUnavailable, "`icnctl network dial MULTIADDR` connects to a peer, or list peers in network.bootstrap_peers; `icnctl network peers` lists connected peers")
		}
		return set(http.StatusServiceUnavailable, "they may run an older icnd (`icnctl status` on a node lists its protocols), or they are still identifying: try again in a moment")
	case errors.As(err, &unknownCur):
		// The symbol parsed (resolveCurrency refuses others as an
		// ArgError) and no currency has it, so `create` would be accepted.
		typed := unknownCur.Typed
		if typed == "" {
			typed, _, _ = strings.Cut(unknownCur.Symbol, "@")
		}
		hint := "create it with `icnctl ledger currency create " + typed + "`, or, if another member issues it, wait for their definition to reach this node"
		if unknownCur.Qualified {
			hint = "this node has not received that issuer's definition of " + typed + "; it arrives with the next sync from a peer that holds it"
		}
		if len(unknownCur.Known) > 0 {
			hint += "; known currencies: " + strings.Join(unknownCur.Known, ", ")
		}
		return set(http.StatusNotFound, hint)
	case errors.As(err, &ambiguous):
		return set(http.StatusConflict, "name one as SYMBOL@ISSUER: "+strings.Join(ambiguous.Options, ", "))
	case errors.As(err, &exists):
		return set(http.StatusConflict, "pick another symbol; `icnctl ledger currency list` lists the currencies")
	case errors.As(err, &diskFull):
		return set(http.StatusInsufficientStorage, diskFull.Hint())
	case errors.As(err, &refused):
		hint := "nothing was written"
		if refused.OverCreditLimit() {
			hint = "nothing was written; pay less, receive payments first, or ask the currency's issuer for a currency with a higher limit"
		}
		return set(http.StatusUnprocessableEntity, hint)
	case errors.As(err, &rule):
		return set(http.StatusUnprocessableEntity, "nothing was written")
	case errors.Is(err, ledger.ErrMalformed):
		return set(http.StatusBadRequest, "send the entry's canonical CBOR block (what ledger.Entry.Encode makes), or its JSON form; nothing was written")
	case errors.Is(err, node.ErrEntryParents):
		return set(http.StatusConflict, "build the entry on what GET /v1/ledger/next/{did} says (seq, prev, parents), or wait until this node has synced your earlier entries; nothing was written")
	case errors.As(err, &envelope):
		if envelope.Reason == gossip.ReasonReplay {
			return set(http.StatusConflict, "nothing was published")
		}
		return set(http.StatusUnprocessableEntity, "nothing was published")
	case errors.Is(err, did.ErrWrongPassphrase):
		return set(http.StatusForbidden, "check ICN_KEYSTORE_PASSPHRASE (or the passphrase you typed); the keystore and the running node were not changed")
	case errors.As(err, &tooLarge):
		return set(http.StatusRequestEntityTooLarge, "send less data, or raise gossip.max_message_size on every node")
	case errors.Is(err, node.ErrLedgerTopic):
		return set(http.StatusForbidden, "icnd joins these topics itself and stays on them; write to them with `icnctl ledger pay` or `icnctl trust add`")
	case errors.As(err, &notJoined):
		return set(http.StatusNotFound, "`icnctl gossip topics` lists the joined topics")
	case errors.Is(err, node.ErrStopping), errors.Is(err, gossip.ErrStopped):
		return set(http.StatusServiceUnavailable, "icnd is stopping or re-keying its network; try again in a moment")
	case errors.Is(err, blocklist.ErrSelf):
		return set(http.StatusBadRequest, "block another node's peer ID or DID; `icnctl network peers` lists them")
	case errors.As(err, &target):
		return set(http.StatusBadRequest, "give a peer ID (12D3Koo…) or a DID (did:icn:z…); `icnctl network peers` lists both")
	case errors.As(err, &duration):
		return set(http.StatusBadRequest, durationHint)
	case errors.As(err, &reason):
		return set(http.StatusBadRequest, fmt.Sprintf("--reason takes one line of text, at most %d bytes", blocklist.MaxReasonLen))
	case errors.As(err, &blocked):
		return set(http.StatusConflict, fmt.Sprintf("`icnctl network unblock %s` lifts the block", blocked.Entry.Target))
	case errors.Is(err, blocklist.ErrNotBlocked):
		return set(http.StatusNotFound, "`icnctl network blocked` lists them")
	case errors.As(err, &gwOff):
		return set(http.StatusConflict, gatewayOffHint(gwOff))
	case errors.As(err, &noToken):
		return set(http.StatusNotFound, "check the jti (`icnctl gateway token` prints it when it mints); `icnctl gateway revoke --all` revokes every token")
	case errors.As(err, &untrusted):
		return set(http.StatusForbidden, "this node runs in trusted mode; its operator admits the author with `icnctl trust add DID SCORE` (or another member it trusts attests the author)")
	case errors.As(err, &untrustedP):
		return set(http.StatusForbidden, fmt.Sprintf("this node runs in trusted mode: `icnctl trust add %s %v` (or more) admits it; `icnctl trust show %s` says how it scores",
			untrustedP.DID, untrustedP.Need, untrustedP.DID))
	case errors.As(err, &penalised):
		return set(http.StatusForbidden, "this node's log says what it did (SECURITY: peer penalised past the disconnect threshold); "+
			"if it is a member's node, its operator should check its version and logs before it reconnects")
	case errors.As(err, &hungUp):
		return set(http.StatusBadGateway, fmt.Sprintf("if that node runs [trust] mode = \"trusted\", its operator admits this one with `icnctl trust add %s SCORE`; "+
			"if it blocked this node, `icnctl network unblock %s` there lifts it; its log names the cause (SECURITY …)", hungUp.Self, hungUp.Self))
	case errors.Is(err, node.ErrTrustSelf):
		return set(http.StatusBadRequest, "attest trust in another member's DID; this node trusts itself already")
	case errors.As(err, &noEdge):
		return set(http.StatusNotFound, "`icnctl trust list` lists this node's attestations")
	case errors.Is(err, context.DeadlineExceeded):
		return set(http.StatusGatewayTimeout, "")
	}
	return e
}

// argHint says how to give an argument correctly.
func argHint(e *node.ArgError) string {
	switch e.Arg {
	case node.ArgDID:
		return "a DID looks like did:icn:z…; `icnctl id show` prints a node's DID"
	case node.ArgPayee:
		return "the payee is a DID like did:icn:z…; `icnctl id show` on their node prints it"
	case node.ArgPeer:
		return "give a peer ID (12D3Koo…) or a DID (did:icn:z…); `icnctl network peers` lists both"
	case node.ArgAddr:
		var mp *node.MissingPeerIDError
		if errors.As(e, &mp) {
			return "append /p2p/<peer id>, or dial by DID: icnctl network dial DID ADDR"
		}
		return "an address is host:port (192.168.1.10:7777) or a multiaddr (/ip4/192.168.1.10/udp/7777/quic-v1/p2p/12D3Koo…)"
	case node.ArgAmount:
		return fmt.Sprintf("amounts are positive decimals with at most %d decimal places, e.g. 12.50", e.Decimals)
	case node.ArgMemo:
		return fmt.Sprintf("shorten the memo to %d bytes or fewer", ledger.MaxMemo)
	case node.ArgSymbol:
		return "use " + ledger.SymbolRule + ", e.g. hours or HRS"
	case node.ArgCurrency:
		return "name a currency by its symbol (HRS or hrs), or as SYMBOL@ISSUER-DID; `icnctl ledger currency list` lists them"
	case node.ArgCurrencyIssuer:
		return "name a currency as SYMBOL@ISSUER-DID, e.g. hours@did:icn:z…; `icnctl ledger currency list` lists the issuers"
	case node.ArgDecimals:
		return fmt.Sprintf("use 0 to %d", ledger.MaxDecimals)
	case node.ArgCreditLimit:
		return "give how far below zero any account may go, a positive amount in the currency's unit, e.g. --credit-limit 100 (the default)"
	case node.ArgTopic:
		return "a topic name is 1-128 printable characters without spaces or '/', e.g. chat:general or ledger:hours"
	case node.ArgType:
		return "leave the type out (text or binary is picked from the data), or give a known payload type"
	case node.ArgDuration:
		return durationHint
	case node.ArgScore:
		return "a trust score is a number from 0 (none) to 1 (full), e.g. 0.8; classes start at 0.1 (known), 0.4 (partner) and 0.7 (federated)"
	case node.ArgLabel:
		return "labels are 1-32 characters of a-z, 0-9 and : _ . -, at most 8 of them, e.g. --label coop:bakery"
	case node.ArgArchive:
		return "icnctl ledger restore reads files written by icnctl ledger backup"
	case node.ArgScope:
		return "the scopes are " + strings.Join(auth.AllScopes(), ", ") + " (admin implies every other)"
	case node.ArgTTL:
		return "--ttl takes a duration from 1s to 720h (30 days), such as 15m, 24h or 168h; leave it out for gateway.token_ttl"
	case node.ArgSubject:
		return "the subject is a DID like did:icn:z…; leave it out for the node's own DID"
	case node.ArgJTI:
		return "give the jti `icnctl gateway token` printed (32 hex digits), or --all to revoke every token issued so far"
	}
	return ""
}

// gatewayOffHint says how to turn the gateway on.
func gatewayOffHint(e *node.GatewayOffError) string {
	const secret = "a secret of at least 32 bytes in " + config.GatewaySecretEnv + " or in the file [gateway] jwt_secret_file names (make one with `openssl rand -hex 32`)"
	switch e.Key {
	case "gateway.enabled":
		return "set [gateway] enabled = true in icnd's config (with " + secret + "), and restart icnd"
	case "observability.health_port":
		return "the gateway is served on the health listener: set observability.health_port to a port (not 0), and restart icnd"
	}
	return "give icnd " + secret + ", keep observability.health_port above 0, and restart icnd"
}

const durationHint = "--for takes a positive duration such as 30m, 24h or 168h; leave it out to block until `icnctl network unblock`"

func notConnectedHint(e *node.NotConnectedError) string {
	const peers = "`icnctl network peers` lists connected peers"
	switch {
	case e.Op == "disconnect":
		return peers
	case e.IsDID:
		return "connect first with `icnctl network dial " + e.Target + " [ADDR]`; " + peers
	}
	return "connect first with `icnctl network dial /ip4/…/udp/…/quic-v1/p2p/" + e.Target + "`; " + peers
}
