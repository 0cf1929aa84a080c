package gateway_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/internal/harness"
	"github.com/intercooperative/icn/internal/testutil"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/node/gateway"
	"github.com/intercooperative/icn/node/gateway/auth"
	"github.com/intercooperative/icn/node/gatewayapi"
)

// A member who is not the node signs in with its own key, pays another
// member with an entry it signed itself (JSON, then CBOR), and reads the
// balances and its history back, page by page.
func TestMemberPaysWithItsOwnKey(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	ctx := context.Background()
	_, err := n.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "hours", Decimals: 2, CreditLimit: "100"})
	require.NoError(t, err)

	alice, bob := newMember(t), newMember(t)
	tok := g.login(alice)
	require.Equal(t, alice.DID.String(), tok.Subject)
	require.Equal(t, auth.MemberScopes(), tok.Scopes)
	require.Equal(t, "Bearer", tok.TokenType)

	var st gatewayapi.Status
	g.do(http.MethodGet, gatewayapi.RouteStatus, tok.Token, nil, http.StatusOK, &st)
	require.Equal(t, n.DID().String(), st.DID)
	require.Equal(t, alice.DID.String(), st.Subject)

	// Prepare, sign, submit (JSON form).
	var prep gatewayapi.Prepared
	g.do(http.MethodPost, gatewayapi.RouteEntriesPrepare, tok.Token,
		gatewayapi.PrepareRequest{To: bob.DID.String(), Amount: "12.50", Currency: "HOURS", Memo: "bread"}, http.StatusOK, &prep)
	require.Equal(t, uint64(1), prep.Entry.Seq)
	require.Equal(t, alice.DID.String(), prep.Entry.Author)
	prep.Entry.Signature = ed25519.Sign(alice.Key, prep.SigningBytes)
	var sub gatewayapi.Submitted
	g.do(http.MethodPost, gatewayapi.RouteEntries, tok.Token, prep.Entry, http.StatusCreated, &sub)
	require.Equal(t, "accepted", sub.Status)
	require.False(t, sub.Duplicate)
	// The same entry again is not an error, and is not stored twice.
	g.do(http.MethodPost, gatewayapi.RouteEntries, tok.Token, prep.Entry, http.StatusOK, &sub)
	require.True(t, sub.Duplicate)

	// The next entry, built by the wallet itself from /next, sent as CBOR.
	var next gatewayapi.Next
	g.do(http.MethodGet, "/v1/ledger/next/"+alice.DID.String(), tok.Token, nil, http.StatusOK, &next)
	require.Equal(t, uint64(2), next.Seq)
	require.Equal(t, sub.CID, next.Prev)
	e := prep.Entry
	e.Seq, e.Prev, e.Parents, e.Memo, e.Signature = next.Seq, next.Prev, next.Parents, "", nil
	e.Postings[0].Units, e.Postings[1].Units = -250, 250
	le, err := e.Ledger()
	require.NoError(t, err)
	block, _, err := ledger.Sign(le, alice.Key)
	require.NoError(t, err)
	resp, data := g.request(http.MethodPost, gatewayapi.RouteEntries, tok.Token, block, "Content-Type", gatewayapi.ContentTypeCBOR)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", data)

	var bal gatewayapi.Page[controlapi.Balance]
	g.do(http.MethodGet, "/v1/ledger/balances/"+bob.DID.String(), tok.Token, nil, http.StatusOK, &bal)
	require.Len(t, bal.Items, 1)
	require.Equal(t, "15.00", bal.Items[0].Balance)
	g.do(http.MethodGet, "/v1/ledger/balances/"+alice.DID.String()+"?currency=hours", tok.Token, nil, http.StatusOK, &bal)
	require.Equal(t, "-15.00", bal.Items[0].Balance)

	// History, one entry a page.
	var seqs []uint64
	cursor := ""
	for range 5 {
		var page gatewayapi.Page[controlapi.Entry]
		g.do(http.MethodGet, "/v1/ledger/history/"+alice.DID.String()+"?limit=1&cursor="+cursor, tok.Token, nil, http.StatusOK, &page)
		for _, it := range page.Items {
			seqs = append(seqs, it.Seq)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	require.Equal(t, []uint64{1, 2}, seqs)

	// The node's own ledger holds both, accepted.
	bs, err := n.Balances(bob.DID.String(), "hours")
	require.NoError(t, err)
	require.Equal(t, "15.00", bs[0].Balance)
	require.Equal(t, float64(2), testutil.MetricSum(t, g.reg, "icn_gateway_requests_total", map[string]string{"route": "POST " + gatewayapi.RouteEntries, "code": "201"}))
}

// Paying as the node needs admin, or ledger:write with the node's own DID
// as subject; a member's token cannot.
func TestPayAsTheNode(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	_, err := n.CreateCurrency(context.Background(), controlapi.CurrencyRequest{Symbol: "hrs", CreditLimit: "100"})
	require.NoError(t, err)
	payee := newMember(t)
	req := controlapi.PayRequest{To: payee.DID.String(), Amount: "3", Currency: "hrs"}

	resp, data := g.request(http.MethodPost, gatewayapi.RoutePay, g.login(newMember(t)).Token, req)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", data)
	var e controlapi.Entry
	g.do(http.MethodPost, gatewayapi.RoutePay, g.token(n.DID(), auth.ScopeLedgerWrite), req, http.StatusCreated, &e)
	require.Equal(t, n.DID().String(), e.Author)
	g.do(http.MethodPost, gatewayapi.RoutePay, g.token(newMember(t).DID, auth.ScopeAdmin), req, http.StatusCreated, &e)
	// A domain error keeps its status and hint from the shared mapping.
	resp, data = g.request(http.MethodPost, gatewayapi.RoutePay, g.token(n.DID(), auth.ScopeAdmin),
		controlapi.PayRequest{To: payee.DID.String(), Amount: "3", Currency: "nope"})
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s", data)
	require.Contains(t, apiError(t, data).Hint, "known currencies: hrs")
}

// Every list is paginated with a cursor that survives items coming and
// going, and a bad limit or cursor is a 400.
func TestPagination(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	ctx := context.Background()
	for i := range 5 {
		_, err := n.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: fmt.Sprintf("cur%d", i), CreditLimit: "1"})
		require.NoError(t, err)
	}
	tok := g.token(newMember(t).DID, auth.ScopeLedgerRead)
	var got []string
	cursor := ""
	for {
		var p gatewayapi.Page[controlapi.CurrencyInfo]
		g.do(http.MethodGet, gatewayapi.RouteCurrencies+"?limit=2&cursor="+cursor, tok, nil, http.StatusOK, &p)
		require.LessOrEqual(t, len(p.Items), 2)
		for _, c := range p.Items {
			got = append(got, c.Symbol)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
		if len(got) == 2 {
			// A currency that sorts first arrives meanwhile: the next page
			// still starts after the last one seen.
			_, err := n.CreateCurrency(ctx, controlapi.CurrencyRequest{Symbol: "aaa", CreditLimit: "1"})
			require.NoError(t, err)
		}
	}
	require.Equal(t, []string{"cur0", "cur1", "cur2", "cur3", "cur4"}, got)

	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?cursor=%%%", "?cursor=!!"} {
		resp, data := g.request(http.MethodGet, gatewayapi.RouteCurrencies+q, tok, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", q, data)
		apiError(t, data)
	}
}

// The per-IP bucket on /v1/auth/*: a burst of 20 passes, the 21st gets 429
// with Retry-After, and it is counted and logged.
func TestAuthRateLimit(t *testing.T) {
	n := harness.Start(t, 1)[0]
	now := time.Now()
	g := startGateway(t, n, func(o *gateway.Options) { o.Now = func() time.Time { return now } })
	m := newMember(t)
	for i := range 20 {
		resp, data := g.request(http.MethodPost, gatewayapi.RouteAuthChallenge, "", gatewayapi.ChallengeRequest{DID: m.DID.String()})
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i+1, data)
	}
	resp, data := g.request(http.MethodPost, gatewayapi.RouteAuthVerify, "", gatewayapi.VerifyRequest{DID: m.DID.String()})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s", data)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	apiError(t, data)
	require.Equal(t, float64(1), testutil.MetricSum(t, g.reg, "icn_gateway_auth_failures_total", map[string]string{"reason": "rate_limited"}))
	require.Contains(t, g.log.String(), "SECURITY gateway request refused")
	require.Contains(t, g.log.String(), "reason=rate_limited")
	// A second later one token is back.
	now = now.Add(time.Second)
	resp, _ = g.request(http.MethodPost, gatewayapi.RouteAuthChallenge, "", gatewayapi.ChallengeRequest{DID: m.DID.String()})
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// /v1/openapi.json describes exactly the routes the gateway serves, with a
// scope for each that needs one, and every $ref in it resolves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	resp, data := g.request(http.MethodGet, gatewayapi.RouteOpenAPI, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
			var o struct {
				Scope    string         `json:"x-icn-scope"`
				Security []any          `json:"security"`
				Resp     map[string]any `json:"responses"`
			}
			require.NoError(t, json.Unmarshal(op, &o))
			require.NotEmpty(t, o.Resp, "%s %s has no responses", method, path)
		}
	}
	served := map[string]bool{}
	for _, rt := range g.srv.Routes() {
		key := rt.Method + " " + rt.Path
		served[key] = true
		require.True(t, documented[key], "%s is served but not in openapi.json", key)
		var o struct {
			Scope    string `json:"x-icn-scope"`
			Security []any  `json:"security"`
		}
		path := rt.Path
		require.NoError(t, json.Unmarshal(doc.Paths[path][strings.ToLower(rt.Method)], &o))
		if rt.Scope == "" {
			require.Empty(t, o.Security, "%s needs no token", key)
		} else {
			require.NotEmpty(t, o.Scope, "%s: document its scope", key)
			require.NotEmpty(t, o.Security, "%s needs a token", key)
			// The document names the scope the route checks.
			if rt.Scope != "read" {
				require.Contains(t, o.Scope, rt.Scope, key)
			}
		}
	}
	for key := range documented {
		require.True(t, served[key], "%s is in openapi.json but not served", key)
	}
	// Every reference resolves.
	for _, ref := range refs(data) {
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		require.Len(t, parts, 2, ref)
		_, ok := doc.Components[parts[0]][parts[1]]
		require.True(t, ok, "%s does not resolve", ref)
	}
}

func refs(doc []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "$ref" {
					out = append(out, s)
				}
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	var v any
	_ = json.Unmarshal(doc, &v)
	walk(v)
	return out
}

// A CORS preflight from an allowed origin is answered; any other origin
// gets no CORS headers (and a 403 to its preflight).
func TestCORS(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n, func(o *gateway.Options) { o.Config.CORSOrigins = []string{"https://wallet.example.coop"} })
	resp, _ := g.request(http.MethodOptions, gatewayapi.RouteStatus, "", nil, "Origin", "https://wallet.example.coop", "Access-Control-Request-Method", "GET")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://wallet.example.coop", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	resp, _ = g.request(http.MethodOptions, gatewayapi.RouteStatus, "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp, _ = g.request(http.MethodGet, gatewayapi.RouteOpenAPI, "", nil, "Origin", "https://evil.example")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// GET /v1/trust/{did} shows the node's view of a DID to a trust:read token.
func TestTrustView(t *testing.T) {
	n := harness.Start(t, 1)[0]
	g := startGateway(t, n)
	alice := newMember(t)
	_, err := n.TrustAdd(context.Background(), controlapi.TrustAddRequest{DID: alice.DID.String(), Score: 0.5})
	require.NoError(t, err)
	var v controlapi.TrustView
	g.do(http.MethodGet, "/v1/trust/"+alice.DID.String(), g.login(newMember(t)).Token, nil, http.StatusOK, &v)
	require.Equal(t, "partner", v.Class)
	require.NotNil(t, v.Direct)
	require.Equal(t, "open", v.Mode)
	resp, data := g.request(http.MethodGet, "/v1/trust/"+alice.DID.String(), g.token(alice.DID, auth.ScopeLedgerRead), nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", data)
}
