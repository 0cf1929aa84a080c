package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/did"
)

// The errors Node's methods return. Node never speaks HTTP: the front doors
// (node/controlserver for the control socket, the gateway later) turn these
// into a status code, a message and a hint in one place
// (controlserver.Describe). Errors from the packages node calls (did,
// ledger, ledger/store, protocols/gossip, protocols/ledgersync) come back
// wrapped, so errors.Is and errors.As still see them.

// Sentinels for conditions that need no detail.
var (
	// ErrNothingToDial: a dial request named neither an address nor a DID.
	ErrNothingToDial = errors.New("nothing to dial")
	// ErrDialSelf: the address or peer ID is this node's own.
	ErrDialSelf = errors.New("that is this node itself")
	// ErrPaySelf: a payment from this node's DID to itself.
	ErrPaySelf = errors.New("paying yourself changes nothing")
	// ErrStopping: the network stack is stopping or being rebuilt (key
	// rotation); the request may work a moment later.
	ErrStopping = errors.New("icnd is stopping or re-keying its network")
	// ErrLedgerTopic: a ledger topic (or the trust topic) cannot be left
	// or written to directly; the node manages it.
	ErrLedgerTopic = errors.New("ledger and trust topics are managed by icnd itself")
)

// Arg names an argument of a request, so a front door can say how to give
// it correctly.
type Arg string

// The arguments ArgError can name.
const (
	ArgDID            Arg = "did"             // a DID to act on
	ArgPeer           Arg = "peer"            // a peer ID or a DID
	ArgAddr           Arg = "addr"            // host:port or a multiaddr
	ArgPayee          Arg = "payee"           // the DID paid
	ArgAmount         Arg = "amount"          // a decimal amount
	ArgMemo           Arg = "memo"            // a payment's memo
	ArgSymbol         Arg = "symbol"          // a currency symbol to create
	ArgCurrency       Arg = "currency"        // a currency named as SYMBOL or SYMBOL@ISSUER
	ArgCurrencyIssuer Arg = "currency_issuer" // the ISSUER of SYMBOL@ISSUER
	ArgDecimals       Arg = "decimals"        // a currency's decimals
	ArgCreditLimit    Arg = "credit_limit"    // a currency's credit limit
	ArgTopic          Arg = "topic"           // a gossip topic name
	ArgType           Arg = "type"            // a gossip payload type
	ArgArchive        Arg = "archive"         // a CAR archive sent for import
	ArgDuration       Arg = "duration"        // how long a block lasts
	ArgScope          Arg = "scope"           // a gateway token's scope
	ArgTTL            Arg = "ttl"             // how long a gateway token lasts
	ArgSubject        Arg = "subject"         // the DID a gateway token speaks for
	ArgJTI            Arg = "jti"             // a gateway token's ID, or --all
	ArgScore          Arg = "score"           // a trust score, 0 to 1
	ArgLabel          Arg = "label"           // a trust attestation's label
)

// ArgError means an argument cannot be used as given. Its message is the
// underlying error's.
type ArgError struct {
	Arg   Arg
	Value string
	Err   error
	// Decimals, for ArgAmount, is the currency's number of decimals.
	Decimals uint8
}

func (e *ArgError) Error() string { return e.Err.Error() }
func (e *ArgError) Unwrap() error { return e.Err }

func argErr(arg Arg, value string, err error) error {
	return &ArgError{Arg: arg, Value: value, Err: err}
}

func argErrf(arg Arg, value, format string, args ...any) error {
	return &ArgError{Arg: arg, Value: value, Err: fmt.Errorf(format, args...)}
}

// NotConnectedError means no connection to Target (a peer ID or a DID) is
// open.
type NotConnectedError struct {
	Target string
	// IsDID says Target is a DID.
	IsDID bool
	// Op is what needed the connection: "disconnect", "sync".
	Op string
}

func (e *NotConnectedError) Error() string { return "not connected to " + e.Target }

// DialError means a connection attempt failed. Reason is the
// icn_network_dial_failures_total label (dialFailureReason).
type DialError struct {
	Peer   peer.ID
	Addr   string // what was dialled, as the caller named it
	Via    string // how the address was found, when not given ("resolved from dht")
	Reason string
	Err    error
}

func (e *DialError) Error() string {
	if e.Via != "" {
		return fmt.Sprintf("dial %s (%s): %v", e.Peer, e.Via, e.Err)
	}
	return fmt.Sprintf("dial %s at %s: %v", e.Peer, e.Addr, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// ProofError means the peer reached did not prove the DID asked for: either
// it presented another DID's binding (Got is set), or no valid binding at
// all (Err says why). The node disconnected it.
type ProofError struct {
	Addr string
	Peer peer.ID
	Want did.DID
	Got  did.DID
	Err  error
}

func (e *ProofError) Error() string {
	if !e.Got.IsZero() {
		return fmt.Sprintf("the peer at %s is %s, not %s", e.Addr, e.Got, e.Want)
	}
	return fmt.Sprintf("the peer at %s (%s) did not prove %s: %v", e.Addr, e.Peer, e.Want, e.Err)
}

func (e *ProofError) Unwrap() error { return e.Err }

// NoAddressError means a DID was resolved to a peer but no address for it
// was found.
type NoAddressError struct {
	DID    did.DID
	Peer   peer.ID
	Source string // where the peer ID came from: cache, dht, derived
	DHT    string // "found" or why the DHT lookup failed
}

func (e *NoAddressError) Error() string {
	return fmt.Sprintf("found no address for %s (peer %s, from %s); DHT: %s", e.DID, e.Peer, e.Source, e.DHT)
}

// NoSyncPeerError means a ledger sync has nobody to pull from. With Target
// "" it concerns every connected peer (Connected of them, none serving
// Protocol, or none at all); otherwise the one peer or DID named.
type NoSyncPeerError struct {
	Target    string
	Connected int
	Protocol  string
}

func (e *NoSyncPeerError) Error() string {
	switch {
	case e.Target != "":
		return fmt.Sprintf("%s does not serve ledger sync (%s)", e.Target, e.Protocol)
	case e.Connected == 0:
		return "no peers connected: there is nobody to sync the ledger from"
	}
	return fmt.Sprintf("none of the %d connected peers serves ledger sync (%s)", e.Connected, e.Protocol)
}

// UnknownCurrencyError means no currency has the symbol asked for.
type UnknownCurrencyError struct {
	Symbol    string   // as asked, perhaps SYMBOL@ISSUER
	Typed     string   // the symbol part, as typed
	Qualified bool     // an issuer was named
	Known     []string // the currencies this node knows, as displayed
}

func (e *UnknownCurrencyError) Error() string { return fmt.Sprintf("unknown currency %q", e.Symbol) }

// AmbiguousCurrencyError means several issuers define the symbol.
type AmbiguousCurrencyError struct {
	Symbol  string
	Options []string // each as SYMBOL@ISSUER
}

func (e *AmbiguousCurrencyError) Error() string {
	return fmt.Sprintf("several currencies are called %q", e.Symbol)
}

// CurrencyExistsError means this node's DID already issues the symbol.
type CurrencyExistsError struct{ Symbol string }

func (e *CurrencyExistsError) Error() string {
	return "this node already issues the currency " + e.Symbol
}

// TopicNotJoinedError means the node is not on the topic.
type TopicNotJoinedError struct{ Topic string }

func (e *TopicNotJoinedError) Error() string { return fmt.Sprintf("topic %q is not joined", e.Topic) }

// GatewayOffError means this node serves no Gateway API, so it has no
// tokens to mint or revoke. Key is the setting that keeps it off
// (gateway.enabled, gateway.jwt_secret_file when there is no secret, or
// observability.health_port) and Why says how.
type GatewayOffError struct {
	Key string
	Why string
}

func (e *GatewayOffError) Error() string { return "the Gateway API is off: " + e.Why }

// UnknownTokenError means no live gateway token has the ID: this node did
// not issue it, or it has expired (and is refused anyway).
type UnknownTokenError struct{ JTI string }

func (e *UnknownTokenError) Error() string {
	return fmt.Sprintf("no unexpired gateway token with jti %s was issued by this node", e.JTI)
}

// NoTrustEdgeError means this node holds no live attestation of its own
// about the DID (nothing to remove).
type NoTrustEdgeError struct{ DID string }

func (e *NoTrustEdgeError) Error() string {
	return fmt.Sprintf("this node does not attest trust in %s", e.DID)
}

// UntrustedPeerError refuses, in trusted mode, a dial to a peer whose DID
// is below the connect bar: the connection gater would close it after the
// handshake anyway.
type UntrustedPeerError struct {
	Peer  peer.ID
	DID   did.DID
	Score float64
	Class string
	Need  float64 // the lowest score allowed to connect
}

func (e *UntrustedPeerError) Error() string {
	return fmt.Sprintf("%s is refused: its DID %s scores %v here (%s), and trusted mode connects only to DIDs scoring %v or more",
		e.Peer, e.DID, e.Score, e.Class, e.Need)
}

// PenalisedPeerError refuses a dial to a peer the node disconnected for
// protocol violations (penalty.go): the gater refuses it until its penalty
// count decays, which RefusedFor estimates.
type PenalisedPeerError struct {
	Peer       peer.ID
	Units      float64
	RefusedFor time.Duration
}

func (e *PenalisedPeerError) Error() string {
	return fmt.Sprintf("%s is refused for protocol violations against this node (penalty %.1f units); the refusal lifts by itself in about %s",
		e.Peer, e.Units, e.RefusedFor)
}

// HungUpError means the peer closed a new connection right after the
// handshake, before it identified: it refuses this node (trusted mode
// without trust in this node's DID, a block, or its resource limits).
type HungUpError struct {
	Peer peer.ID
	Addr string
	// Self is this node's DID, which the peer's operator would trust.
	Self did.DID
}

func (e *HungUpError) Error() string {
	return fmt.Sprintf("%s at %s closed the connection right after the handshake: it refuses this node", e.Peer, e.Addr)
}
