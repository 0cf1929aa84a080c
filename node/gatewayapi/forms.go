package gatewayapi

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Entry is the JSON form of a signed ledger entry, field for field the
// entry's canonical CBOR (ledger.Entry): the node encodes it to the block
// and checks the signature over that block's signing bytes, so the JSON and
// the CBOR form of one entry are the same entry with the same CID. Amounts
// are integers in the currency's smallest unit; byte strings are base64.
type Entry struct {
	Author    string   `json:"author"`
	Seq       uint64   `json:"seq"`
	Prev      string   `json:"prev,omitempty"`
	Parents   []string `json:"parents,omitempty"`
	Timestamp int64    `json:"timestamp"`
	// Kind is "transfer" or "currency".
	Kind      string       `json:"kind"`
	Currency  *CurrencyDef `json:"currency,omitempty"`
	Postings  []Posting    `json:"postings,omitempty"`
	Memo      string       `json:"memo,omitempty"`
	Signature []byte       `json:"signature,omitempty"`
}

// CurrencyDef is the body of a currency entry; its issuer is the author.
type CurrencyDef struct {
	Symbol           string `json:"symbol"`
	Display          string `json:"display,omitempty"`
	Decimals         uint8  `json:"decimals"`
	CreditLimitUnits int64  `json:"credit_limit_units"`
}

// Posting changes one account's balance in one currency by Units.
type Posting struct {
	Account string `json:"account"`
	Symbol  string `json:"symbol"`
	Issuer  string `json:"issuer"`
	Units   int64  `json:"units"`
}

// EntryOf is the JSON form of e.
func EntryOf(e *ledger.Entry) Entry {
	out := Entry{Author: e.Author.String(), Seq: e.Seq, Timestamp: e.Timestamp, Kind: e.Kind.String(),
		Memo: e.Memo, Signature: e.Signature}
	if e.Prev.Defined() {
		out.Prev = e.Prev.String()
	}
	for _, p := range e.Parents {
		out.Parents = append(out.Parents, p.String())
	}
	if c := e.Currency; c != nil {
		out.Currency = &CurrencyDef{Symbol: c.Symbol, Display: c.Display, Decimals: c.Decimals, CreditLimitUnits: c.CreditLimit}
	}
	for _, p := range e.Postings {
		out.Postings = append(out.Postings, Posting{Account: p.Account.String(), Symbol: p.Currency.Symbol,
			Issuer: p.Currency.Issuer.String(), Units: p.Amount})
	}
	return out
}

// FieldError names the field of a JSON entry or envelope that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Ledger converts the JSON form to an entry. It checks that every DID and
// CID parses and the kind is known; the ledger's own rules (signature,
// sizes, postings) are checked when the entry is verified.
func (j Entry) Ledger() (*ledger.Entry, error) {
	bad := func(field string, err error) (*ledger.Entry, error) { return nil, &FieldError{Field: field, Err: err} }
	author, err := did.Parse(j.Author)
	if err != nil {
		return bad("author", err)
	}
	e := &ledger.Entry{Author: author, Seq: j.Seq, Timestamp: j.Timestamp, Memo: j.Memo, Signature: j.Signature}
	if j.Prev != "" {
		if e.Prev, err = cid.Decode(j.Prev); err != nil {
			return bad("prev", err)
		}
	}
	for i, p := range j.Parents {
		c, err := cid.Decode(p)
		if err != nil {
			return bad(fmt.Sprintf("parents[%d]", i), err)
		}
		e.Parents = append(e.Parents, c)
	}
	switch j.Kind {
	case ledger.KindTransfer.String():
		e.Kind = ledger.KindTransfer
	case ledger.KindCurrency.String():
		e.Kind = ledger.KindCurrency
	default:
		return bad("kind", fmt.Errorf("%q is not transfer or currency", j.Kind))
	}
	if c := j.Currency; c != nil {
		e.Currency = &ledger.CurrencyDef{Symbol: c.Symbol, Display: c.Display, Decimals: c.Decimals, CreditLimit: c.CreditLimitUnits}
	}
	for i, p := range j.Postings {
		acct, err := did.Parse(p.Account)
		if err != nil {
			return bad(fmt.Sprintf("postings[%d].account", i), err)
		}
		issuer, err := did.Parse(p.Issuer)
		if err != nil {
			return bad(fmt.Sprintf("postings[%d].issuer", i), err)
		}
		e.Postings = append(e.Postings, ledger.Posting{Account: acct, Currency: ledger.CurrencyID{Symbol: p.Symbol, Issuer: issuer}, Amount: p.Units})
	}
	return e, nil
}

// Block is the canonical CBOR block of the JSON entry (with its signature).
func (j Entry) Block() ([]byte, error) {
	e, err := j.Ledger()
	if err != nil {
		return nil, err
	}
	if len(e.Signature) == 0 {
		return nil, &FieldError{Field: "signature", Err: errors.New("the entry is not signed")}
	}
	return e.Encode()
}

// Envelope is the JSON form of a gossip envelope (gossip.Envelope); the
// signature is over gossip's SigningBytes for the topic's wire name (GET
// /v1/gossip/{topic} gives it).
type Envelope struct {
	Author    string `json:"author"`
	Seq       uint64 `json:"seq"`
	Timestamp uint64 `json:"timestamp"`
	Type      string `json:"type"`
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// EnvelopeOf is the JSON form of e.
func EnvelopeOf(e *gossip.Envelope) Envelope {
	return Envelope{Author: e.Author.String(), Seq: e.Seq, Timestamp: e.Timestamp, Type: e.Type, Payload: e.Payload, Signature: e.Signature}
}

// Gossip converts the JSON form to an envelope.
func (j Envelope) Gossip() (*gossip.Envelope, error) {
	author, err := did.Parse(j.Author)
	if err != nil {
		return nil, &FieldError{Field: "author", Err: err}
	}
	return &gossip.Envelope{Author: author, Seq: j.Seq, Timestamp: j.Timestamp, Type: j.Type, Payload: j.Payload, Signature: j.Signature}, nil
}

// Wire is the binary envelope (what gossip carries).
func (j Envelope) Wire() ([]byte, error) {
	e, err := j.Gossip()
	if err != nil {
		return nil, err
	}
	return e.Marshal()
}
