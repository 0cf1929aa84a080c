package gateway

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
)

func (s *Server) status(_ http.ResponseWriter, _ *http.Request, c *auth.Claims) (any, int, error) {
	st := s.n.Status()
	return gatewayapi.Status{DID: st.DID, PeerID: st.PeerID, AnnounceAddrs: st.AnnounceAddrs, Protocols: st.Protocols, Peers: st.Peers,
		Version: st.Version, UptimeSeconds: st.UptimeSeconds, Ready: st.Ready, Problem: st.Problem,
		Subject: c.Subject.String(), Scopes: c.Scopes}, http.StatusOK, nil
}

func (s *Server) peers(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	ps := s.n.Peers()
	sort.Slice(ps, func(i, j int) bool { return ps[i].PeerID < ps[j].PeerID })
	return paginate(r, ps, func(p controlapi.Peer) string { return p.PeerID })
}

func (s *Server) currencies(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	cs := s.n.Currencies()
	key := func(c controlapi.CurrencyInfo) string { return c.Symbol + "@" + c.Issuer }
	sort.Slice(cs, func(i, j int) bool { return key(cs[i]) < key(cs[j]) })
	return paginate(r, cs, key)
}

func (s *Server) balances(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	d, err := pathDID(r)
	if err != nil {
		return nil, 0, err
	}
	bs, err := s.n.Balances(d.String(), r.URL.Query().Get("currency"))
	if err != nil {
		return nil, 0, err
	}
	key := func(b controlapi.Balance) string { return b.Currency + "@" + b.Issuer }
	sort.Slice(bs, func(i, j int) bool { return key(bs[i]) < key(bs[j]) })
	return paginate(r, bs, key)
}

// history pages through a DID's entries in the order the node stored them
// (new entries only ever come after), so an index is a stable cursor.
func (s *Server) history(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	d, err := pathDID(r)
	if err != nil {
		return nil, 0, err
	}
	es, err := s.n.History(r.Context(), d.String())
	if err != nil {
		return nil, 0, err
	}
	type indexed struct {
		i int
		e controlapi.Entry
	}
	all := make([]indexed, len(es))
	for i, e := range es {
		all[i] = indexed{i, e}
	}
	p, code, err := paginate(r, all, func(x indexed) string { return fmt.Sprintf("%012d", x.i) })
	if err != nil {
		return nil, 0, err
	}
	out := gatewayapi.Page[controlapi.Entry]{Items: make([]controlapi.Entry, len(p.Items)), NextCursor: p.NextCursor}
	for i, x := range p.Items {
		out.Items[i] = x.e
	}
	return out, code, nil
}

func (s *Server) head(http.ResponseWriter, *http.Request, *auth.Claims) (any, int, error) {
	return s.n.LedgerHead(), http.StatusOK, nil
}

func (s *Server) next(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	d, err := pathDID(r)
	if err != nil {
		return nil, 0, err
	}
	seq, prev, parents := s.n.NextEntry(d)
	out := gatewayapi.Next{Author: d.String(), Seq: seq, Parents: []string{}}
	if prev.Defined() {
		out.Prev = prev.String()
	}
	for _, p := range parents {
		out.Parents = append(out.Parents, p.String())
	}
	return out, http.StatusOK, nil
}

// mayWriteAs says whether the token may write as author: its own DID, or
// any with admin.
func mayWriteAs(c *auth.Claims, author string) error {
	if c.Has(auth.ScopeAdmin) || c.Subject.String() == author {
		return nil
	}
	return &controlapi.Error{Status: http.StatusForbidden,
		Message: fmt.Sprintf("this token is for %s; it cannot write as %s", c.Subject, echo(author)),
		Hint:    "sign in with that DID's key (POST " + gatewayapi.RouteAuthChallenge + ")"}
}

func (s *Server) prepare(_ http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error) {
	req, err := decode[gatewayapi.PrepareRequest](r)
	if err != nil {
		return nil, 0, err
	}
	if req.Author == "" {
		req.Author = c.Subject.String()
	}
	if err := mayWriteAs(c, req.Author); err != nil {
		return nil, 0, err
	}
	author, err := parseDID(req.Author)
	if err != nil {
		return nil, 0, err
	}
	e, err := s.n.PrepareTransfer(author, controlapi.PayRequest{To: req.To, Amount: req.Amount, Currency: req.Currency, Memo: req.Memo}, req.Timestamp)
	if err != nil {
		return nil, 0, err
	}
	sb, err := e.SigningBytes()
	if err != nil {
		return nil, 0, err
	}
	return gatewayapi.Prepared{Entry: gatewayapi.EntryOf(e), SigningBytes: sb}, http.StatusOK, nil
}

// submit takes a member-signed entry as CBOR (the block itself) or as its
// JSON form.
func (s *Server) submit(_ http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error) {
	var block []byte
	mt := "application/json"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			mt = ct
		}
	}
	switch mt {
	case gatewayapi.ContentTypeCBOR:
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, 0, err
		}
		block = b
	case "application/json":
		j, err := decode[gatewayapi.Entry](r)
		if err != nil {
			return nil, 0, err
		}
		if block, err = j.Block(); err != nil {
			return nil, 0, err
		}
	default:
		return nil, 0, &controlapi.Error{Status: http.StatusUnsupportedMediaType,
			Message: fmt.Sprintf("content type %s is neither application/json nor %s", echo(mt), gatewayapi.ContentTypeCBOR)}
	}
	author, err := s.blockAuthor(block)
	if err != nil {
		return nil, 0, err
	}
	if err := mayWriteAs(c, author); err != nil {
		return nil, 0, err
	}
	e, dup, err := s.n.SubmitEntry(r.Context(), block)
	if err != nil {
		return nil, 0, err
	}
	code := http.StatusCreated
	if dup {
		code = http.StatusOK
	} else {
		s.log.Info("ledger entry submitted through the gateway", "cid", e.CID, "author", e.Author, "seq", e.Seq, "sub", c.Subject, "remote", remoteIP(r))
	}
	return gatewayapi.Submitted{Entry: e, Duplicate: dup}, code, nil
}

// pay pays as the node's own DID: admin, or ledger:write for a token whose
// subject is the node.
func (s *Server) pay(_ http.ResponseWriter, r *http.Request, c *auth.Claims) (any, int, error) {
	if err := mayWriteAs(c, s.n.DID().String()); err != nil {
		return nil, 0, err
	}
	req, err := decode[controlapi.PayRequest](r)
	if err != nil {
		return nil, 0, err
	}
	e, err := s.n.Pay(r.Context(), req)
	if err != nil {
		return nil, 0, err
	}
	return e, http.StatusCreated, nil
}

// paginate returns the page of items (sorted by key) after ?cursor= with
// at most ?limit= items. A cursor is the last key of the previous page,
// base64url: opaque to clients, and stable while items come and go.
func paginate[T any](r *http.Request, items []T, key func(T) string) (gatewayapi.Page[T], int, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return gatewayapi.Page[T]{}, 0, badRequest("the query string is malformed: %v", err)
	}
	limit := gatewayapi.DefaultLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > gatewayapi.MaxLimit {
			return gatewayapi.Page[T]{}, 0, badRequest("limit %s is not a number from 1 to %d", echo(l), gatewayapi.MaxLimit)
		}
		limit = n
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		after, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return gatewayapi.Page[T]{}, 0, &controlapi.Error{Status: http.StatusBadRequest, Message: "the cursor is not one this gateway made",
				Hint: "pass next_cursor from the previous page unchanged, or leave cursor out for the first page"}
		}
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > string(after) })
	}
	end := min(start+limit, len(items))
	page := gatewayapi.Page[T]{Items: append(make([]T, 0, end-start), items[start:end]...)}
	if end < len(items) {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	}
	return page, http.StatusOK, nil
}

func parseDID(s string) (did.DID, error) {
	d, err := did.Parse(s)
	if err != nil {
		return did.DID{}, badDID(s, err)
	}
	return d, nil
}

// blockAuthor decodes a block to know whose it is; the node checks
// everything else. The keys it names are checked once, not on every
// entry (checking that a key is a valid DID was most of the cost).
func (s *Server) blockAuthor(block []byte) (string, error) {
	e, err := s.keys.Decode(block)
	if err != nil {
		return "", err
	}
	return e.Author.String(), nil
}

// trust is this node's view of a DID: its score, class, this node's direct
// attestation and the paths that gave the score.
func (s *Server) trust(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (any, int, error) {
	d, err := pathDID(r)
	if err != nil {
		return nil, 0, err
	}
	v, err := s.n.TrustShow(d.String())
	if err != nil {
		return nil, 0, err
	}
	return v, http.StatusOK, nil
}
