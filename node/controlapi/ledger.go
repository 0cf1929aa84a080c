package controlapi

import (
	"context"
	"net/http"
	"net/url"
)

// Ledger routes.
const (
	RouteLedgerCurrency   = "/v0/ledger/currency"
	RouteLedgerCurrencies = "/v0/ledger/currencies"
	RouteLedgerPay        = "/v0/ledger/pay"
	RouteLedgerBalance    = "/v0/ledger/balance"
	RouteLedgerHistory    = "/v0/ledger/history"
	RouteLedgerHead       = "/v0/ledger/head"
	RouteLedgerVerify     = "/v0/ledger/verify"
	RouteLedgerQuarantine = "/v0/ledger/quarantine"
	// RouteLedgerSync is POST SyncRequest: pull now. The answer is a
	// progress stream of SyncEvents (see ProgressEvent).
	RouteLedgerSync = "/v0/ledger/sync"
)

// CurrencyRequest is POST /v0/ledger/currency: the node's DID issues it.
type CurrencyRequest struct {
	// Symbol in any letter case; the entry carries it lowercase, and the
	// currency is shown as written here (see CurrencyInfo.Display).
	Symbol   string `json:"symbol"`
	Decimals uint8  `json:"decimals"`
	// CreditLimit is a decimal string in the currency's unit ("100.00").
	CreditLimit string `json:"credit_limit"`
}

// PayRequest is POST /v0/ledger/pay: the node's DID pays To.
type PayRequest struct {
	To string `json:"to"`
	// Amount is a positive decimal string ("12.50").
	Amount string `json:"amount"`
	// Currency is a symbol, or symbol@issuer-DID when symbols collide, in
	// any letter case (HRS, hrs).
	Currency string `json:"currency"`
	Memo     string `json:"memo,omitempty"`
}

// Posting is one line of an entry, amounts as exact decimals.
type Posting struct {
	DID string `json:"did"`
	// Currency is the symbol in canonical form (lowercase), Display how
	// the currency is shown (see CurrencyInfo).
	Currency string `json:"currency"`
	Display  string `json:"display"`
	Issuer   string `json:"issuer"`
	Amount   string `json:"amount"`
	Units    int64  `json:"units"`
}

// Entry is one ledger entry with its status.
type Entry struct {
	CID       string `json:"cid"`
	Author    string `json:"author"`
	Seq       uint64 `json:"seq"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Timestamp int64  `json:"timestamp_ms"`
	Memo      string `json:"memo,omitempty"`
	// Currency is set on currency definitions.
	Currency *CurrencyInfo `json:"currency,omitempty"`
	Postings []Posting     `json:"postings,omitempty"`
}

// CurrencyInfo describes a currency.
type CurrencyInfo struct {
	// Symbol is the canonical form (lowercase) that entries and gossip
	// topics carry; Display is how the currency is shown: as its issuer
	// wrote the symbol at creation, or the symbol in uppercase.
	Symbol      string `json:"symbol"`
	Display     string `json:"display"`
	Issuer      string `json:"issuer"`
	Decimals    uint8  `json:"decimals"`
	CreditLimit string `json:"credit_limit"`
}

// Balance is one row of `ledger balance`.
type Balance struct {
	DID string `json:"did"`
	// Currency is the symbol in canonical form (lowercase), Display how
	// the currency is shown (see CurrencyInfo).
	Currency string `json:"currency"`
	Display  string `json:"display"`
	Issuer   string `json:"issuer"`
	// Balance is the exact decimal in the currency's decimals ("-12.50").
	Balance string `json:"balance"`
	// Units is the integer in the currency's smallest unit.
	Units int64 `json:"units"`
}

// Head is `ledger head`.
type Head struct {
	Heads []string `json:"heads"`
	// Entries counts every stored entry (accepted and quarantined).
	Entries     int    `json:"entries"`
	Accepted    int    `json:"accepted"`
	Quarantined int    `json:"quarantined"`
	Pending     int    `json:"pending"`
	StateHash   string `json:"state_hash"`
}

// VerifyReport is the result of `ledger verify`.
type VerifyReport struct {
	Blocks      int      `json:"blocks"`
	Accepted    int      `json:"accepted"`
	Quarantined int      `json:"quarantined"`
	Pending     int      `json:"pending"`
	StateHash   string   `json:"state_hash"`
	OK          bool     `json:"ok"`
	Problems    []string `json:"problems"`
}

// VerifyEvent is one line of the verify stream: entries checked of the
// total, then the report.
type VerifyEvent = ProgressEvent[VerifyReport]

// SyncRequest is POST /v0/ledger/sync. Peer is a peer ID or a DID; empty
// means every connected peer that serves ledger sync.
type SyncRequest struct {
	Peer string `json:"peer,omitempty"`
}

// SyncPeer is what a pull from one peer did.
type SyncPeer struct {
	PeerID string `json:"peer_id"`
	DID    string `json:"did,omitempty"`
	// Announced is how many entries the peer said this node lacked.
	Announced int `json:"announced"`
	// Received entries were received and checked; New were not known
	// before; Rejected failed the checks (and cost the peer score).
	Received int `json:"received"`
	New      int `json:"new"`
	Rejected int `json:"rejected"`
	// Joined is true when a pull from this peer was already running (an
	// automatic one) and this request waited for it instead of starting a
	// second one.
	Joined bool `json:"joined"`
	// Error says why the pull failed; empty on success.
	Error string `json:"error,omitempty"`
}

// SyncReport is the result of a ledger sync: one SyncPeer per peer, sorted
// by peer ID, and the totals.
type SyncReport struct {
	Peers    []SyncPeer `json:"peers"`
	Received int        `json:"received"`
	New      int        `json:"new"`
	Rejected int        `json:"rejected"`
	// Failed counts the peers whose pull failed.
	Failed int `json:"failed"`
}

// SyncEvent is one line of the sync stream: entries received of those the
// peers announced (summed over the peers), then the report.
type SyncEvent = ProgressEvent[SyncReport]

// Quarantined is one entry of `ledger quarantine list`.
type Quarantined struct {
	CID    string `json:"cid"`
	Author string `json:"author"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// CreateCurrency defines a currency issued by the node's DID.
func (c *Client) CreateCurrency(ctx context.Context, req CurrencyRequest) (Entry, error) {
	var e Entry
	return e, c.do(ctx, http.MethodPost, RouteLedgerCurrency, req, &e)
}

// Currencies lists the defined currencies.
func (c *Client) Currencies(ctx context.Context) ([]CurrencyInfo, error) {
	var cs []CurrencyInfo
	return cs, c.do(ctx, http.MethodGet, RouteLedgerCurrencies, nil, &cs)
}

// Pay makes a payment from the node's DID.
func (c *Client) Pay(ctx context.Context, req PayRequest) (Entry, error) {
	var e Entry
	return e, c.do(ctx, http.MethodPost, RouteLedgerPay, req, &e)
}

// Balances lists balances, optionally for one DID and one currency.
func (c *Client) Balances(ctx context.Context, did, currency string) ([]Balance, error) {
	q := url.Values{}
	if did != "" {
		q.Set("did", did)
	}
	if currency != "" {
		q.Set("currency", currency)
	}
	var bs []Balance
	return bs, c.do(ctx, http.MethodGet, RouteLedgerBalance+"?"+q.Encode(), nil, &bs)
}

// History lists the entries by or to a DID ("" for the node's own).
func (c *Client) History(ctx context.Context, did string) ([]Entry, error) {
	q := url.Values{}
	if did != "" {
		q.Set("did", did)
	}
	var es []Entry
	return es, c.do(ctx, http.MethodGet, RouteLedgerHistory+"?"+q.Encode(), nil, &es)
}

// Head returns the heads, counts and state hash.
func (c *Client) Head(ctx context.Context) (Head, error) {
	var h Head
	return h, c.do(ctx, http.MethodGet, RouteLedgerHead, nil, &h)
}

// QuarantineList lists quarantined entries.
func (c *Client) QuarantineList(ctx context.Context) ([]Quarantined, error) {
	var qs []Quarantined
	return qs, c.do(ctx, http.MethodGet, RouteLedgerQuarantine, nil, &qs)
}

// Verify runs a full verification, calling progress for each progress event,
// and returns the report.
func (c *Client) Verify(ctx context.Context, progress func(done, total int)) (VerifyReport, error) {
	return streamProgress[VerifyReport](ctx, c, RouteLedgerVerify, nil, progress)
}

// Sync pulls missing ledger entries now, from req.Peer or from every
// connected peer, calling progress with the entries received so far and the
// entries the peers announced, and returns the report.
func (c *Client) Sync(ctx context.Context, req SyncRequest, progress func(received, announced int)) (SyncReport, error) {
	return streamProgress[SyncReport](ctx, c, RouteLedgerSync, req, progress)
}
