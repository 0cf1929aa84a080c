package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"go.opentelemetry.io/otel/attribute"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// What the gateway offers members who keep their own keys: the node never
// signs for them; it tells them what their next entry must carry, checks
// and stores what they signed, and passes it on.

// ErrEntryParents means a submitted entry names a prev or parents this node
// does not hold, so it cannot be checked (it would only wait as pending).
var ErrEntryParents = errors.New("the entry's prev or parents are not on this node")

// errDuplicate stops an Append of a block the ledger already holds.
var errDuplicate = errors.New("already stored")

// NextEntry says what the next entry by author must carry: its seq, the
// CID of its previous entry (undefined for the first), and the heads it
// names as parents.
func (n *Node) NextEntry(author did.DID) (seq uint64, prev cid.Cid, parents []cid.Cid) {
	n.ledger.Read(func(l *ledger.Ledger) { seq, prev, parents = l.Next(author) })
	return seq, prev, parents
}

// SubmitEntry checks a ledger block signed by its author elsewhere exactly
// as an entry from a peer (decoding, signature, static rules, causal
// rules), refuses it unless it would be accepted (nothing is stored then),
// stores it durably, and pushes it to peers. A block already held is not
// an error: dup is true and the stored entry is returned.
func (n *Node) SubmitEntry(ctx context.Context, block []byte) (out controlapi.Entry, dup bool, err error) {
	ctx, span := n.tracer.Start(ctx, "ledger.submit")
	defer func() {
		span.SetAttributes(attribute.Bool("icn.ledger.duplicate", dup))
		endSpan(span, err)
	}()
	v, err := n.ledger.VerifyBlock(block) // with the store's key cache
	if err != nil {
		return controlapi.Entry{}, false, err
	}
	if g := n.deps.trustG; g.trusted() {
		if err := g.admitEntry(n.DID())(v.Entry); err != nil {
			return controlapi.Entry{}, false, err
		}
	}
	res, err := n.ledger.Append(ctx, func(l *ledger.Ledger) ([]byte, error) {
		if l.Has(v.CID) {
			return nil, errDuplicate
		}
		return block, nil
	})
	switch {
	case errors.Is(err, errDuplicate):
		n.ledger.Read(func(l *ledger.Ledger) {
			st, reason := l.Status(v.CID)
			out = entryInfo(l, v, st, reason)
		})
		return out, true, nil
	case errors.Is(err, ledger.ErrIncomplete):
		return controlapi.Entry{}, false, fmt.Errorf("%w (%s seq %d)", ErrEntryParents, v.Entry.Author, v.Entry.Seq)
	case err != nil:
		return controlapi.Entry{}, false, err
	}
	n.ledger.Read(func(l *ledger.Ledger) { out = entryInfo(l, v, res.Status, res.Reason) })
	span.SetAttributes(attribute.String("icn.ledger.cid", res.CID.String()))
	n.published(ctx, res.CID)
	return out, false, nil
}

// PrepareTransfer builds the next transfer by author, unsigned: author's
// next seq, prev and parents, the currency resolved as Pay resolves it and
// the amount in its smallest unit. ts is unix milliseconds (0: now). The
// author signs e.SigningBytes() with its own key.
func (n *Node) PrepareTransfer(author did.DID, req controlapi.PayRequest, ts int64) (*ledger.Entry, error) {
	to, err := did.Parse(req.To)
	if err != nil {
		return nil, argErr(ArgPayee, req.To, err)
	}
	if to == author {
		return nil, ErrPaySelf
	}
	if len(req.Memo) > ledger.MaxMemo {
		return nil, argErrf(ArgMemo, req.Memo, "the memo is %d bytes; at most %d", len(req.Memo), ledger.MaxMemo)
	}
	if ts == 0 {
		ts = time.Now().UnixMilli()
	}
	var e *ledger.Entry
	n.ledger.Read(func(l *ledger.Ledger) {
		cur, cerr := resolveCurrency(l, req.Currency)
		if cerr != nil {
			err = cerr
			return
		}
		units, perr := ledger.ParseAmount(req.Amount, cur.Def.Decimals)
		if perr != nil {
			err = &ArgError{Arg: ArgAmount, Value: req.Amount, Err: perr, Decimals: cur.Def.Decimals}
			return
		}
		seq, prev, parents := l.Next(author)
		e = &ledger.Entry{Author: author, Seq: seq, Prev: prev, Parents: parents, Timestamp: ts, Kind: ledger.KindTransfer, Memo: req.Memo,
			Postings: []ledger.Posting{
				{Account: author, Currency: cur.ID, Amount: -units},
				{Account: to, Currency: cur.ID, Amount: units},
			}}
	})
	return e, err
}

// GossipPublishEnvelope publishes an envelope its author signed elsewhere
// (see gossip.Service.PublishEnvelope); the ledger's topics take entries
// only through SubmitEntry.
func (n *Node) GossipPublishEnvelope(ctx context.Context, topic string, raw []byte) (controlapi.GossipPublished, error) {
	topic = CanonicalTopic(topic)
	if err := gossip.CheckTopic(topic); err != nil {
		return controlapi.GossipPublished{}, argErr(ArgTopic, topic, err)
	}
	if strings.HasPrefix(topic, "ledger:") {
		return controlapi.GossipPublished{}, fmt.Errorf("%s carries the ledger; submit entries to /v1/ledger/entries: %w", topic, ErrLedgerTopic)
	}
	if topic == TrustTopic {
		return controlapi.GossipPublished{}, fmt.Errorf("%s carries the trust graph's attestations, which nodes make: %w", topic, ErrLedgerTopic)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := n.current().gossip.PublishEnvelope(ctx, topic, raw)
	if err != nil {
		return controlapi.GossipPublished{}, err
	}
	return controlapi.GossipPublished{ID: p.ID.String(), Topic: p.Topic, Seq: p.Seq, Peers: p.Peers}, nil
}

// GossipMaxMessageSize bounds one envelope in bytes (gossip.max_message_size).
func (n *Node) GossipMaxMessageSize() int { return n.cfg.Gossip.MaxMessageSize }

// DID is the node's own DID.
func (n *Node) DID() did.DID { return n.current().id.DID }
