// Package controlserver serves icnd's control socket: the /v0 routes of
// node/controlapi over the node's domain API. It decodes requests, calls the
// node, and writes answers; Describe maps the node's typed errors to a
// status, a message and a hint in one place, for this server and for any
// other front door over the same API.
package controlserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/ledger/car"
	"github.com/intercooperative/icn/ledger/store"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/controlapi"
	"github.com/intercooperative/icn/protocols/gossip"
)

// Node is the domain API the control socket serves; *node.Node implements
// it.
type Node interface {
	Status() controlapi.Status
	IdentityInfo() controlapi.Identity
	Rotate(ctx context.Context, passphrase string) (controlapi.Identity, error)

	Peers() []controlapi.Peer
	Dial(ctx context.Context, req controlapi.DialRequest) (controlapi.Peer, error)
	Disconnect(target string) (controlapi.DisconnectResponse, error)
	Bootstrap(ctx context.Context) controlapi.BootstrapResult
	Resolve(ctx context.Context, d did.DID) (controlapi.Resolution, error)
	Limits() (controlapi.Limits, error)

	CreateCurrency(ctx context.Context, req controlapi.CurrencyRequest) (controlapi.Entry, error)
	Currencies() []controlapi.CurrencyInfo
	Pay(ctx context.Context, req controlapi.PayRequest) (controlapi.Entry, error)
	Balances(did, currency string) ([]controlapi.Balance, error)
	History(ctx context.Context, did string) ([]controlapi.Entry, error)
	LedgerHead() controlapi.Head
	Quarantine() []controlapi.Quarantined
	VerifyLedger(ctx context.Context, progress func(done, total int)) (controlapi.VerifyReport, error)
	LedgerBackup() *store.Backup
	ImportLedgerBlocks(ctx context.Context, blocks [][]byte, want []cid.Cid) ([]store.Result, error)
	StartLedgerSync(ctx context.Context, target string) (node.LedgerSyncRuns, error)
	WaitLedgerSync(ctx context.Context, runs node.LedgerSyncRuns, progress func(received, announced int)) (controlapi.SyncReport, error)

	Block(ctx context.Context, target string, d time.Duration, reason string) (controlapi.BlockResult, error)
	Unblock(ctx context.Context, target string) (controlapi.UnblockResult, error)
	Blocked() []controlapi.BlockEntry

	GossipTopics() []controlapi.GossipTopic
	GossipPublish(ctx context.Context, req controlapi.GossipPublishRequest) (controlapi.GossipPublished, error)
	GossipLeave(topic string) error
	GossipSubscribe(topic string) (*gossip.Subscription, error)
	GossipWireTopic(topic string) string

	TrustAdd(ctx context.Context, req controlapi.TrustAddRequest) (controlapi.TrustEdge, error)
	TrustRemove(ctx context.Context, did string) (controlapi.TrustEdge, error)
	TrustList() []controlapi.TrustEdge
	TrustShow(did string) (controlapi.TrustView, error)
	TrustGraph() controlapi.TrustGraph

	MintGatewayToken(ctx context.Context, req controlapi.GatewayTokenRequest) (controlapi.GatewayToken, error)
	RevokeGatewayTokens(ctx context.Context, req controlapi.GatewayRevokeRequest) (controlapi.GatewayRevokeResult, error)
}

var _ Node = (*node.Node)(nil)

// Handler returns what node.Options.Control wants: the control handler
// for a node, logging to log.
func Handler(log *slog.Logger) func(*node.Node) http.Handler {
	return func(n *node.Node) http.Handler { return New(n, log) }
}

// server holds what the handlers share; it is built once per node.
type server struct {
	n   Node
	log *slog.Logger
}

// New returns the control API's handler over n.
func New(n Node, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	s := &server{n: n, log: log}
	mux := http.NewServeMux()
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			v, err := h(w, r)
			if err != nil {
				WriteError(w, err)
				return
			}
			controlapi.WriteJSON(w, http.StatusOK, v)
		})
	}
	handle("GET "+controlapi.RouteStatus, func(http.ResponseWriter, *http.Request) (any, error) { return n.Status(), nil })
	handle("GET "+controlapi.RouteIdentity, func(http.ResponseWriter, *http.Request) (any, error) { return n.IdentityInfo(), nil })
	handle("POST "+controlapi.RouteRotate, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.RotateRequest](w, r)
		if err != nil {
			return nil, err
		}
		return n.Rotate(r.Context(), req.Passphrase)
	})
	handle("GET "+controlapi.RoutePeers, func(http.ResponseWriter, *http.Request) (any, error) { return n.Peers(), nil })
	handle("POST "+controlapi.RouteDial, call(n.Dial))
	handle("POST "+controlapi.RouteDisconnect, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.DisconnectRequest](w, r)
		if err != nil {
			return nil, err
		}
		return n.Disconnect(req.Peer)
	})
	handle("POST "+controlapi.RouteBootstrap, func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return n.Bootstrap(r.Context()), nil
	})
	handle("POST "+controlapi.RouteResolve, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.ResolveRequest](w, r)
		if err != nil {
			return nil, err
		}
		d, err := did.Parse(req.DID)
		if err != nil {
			return nil, &node.ArgError{Arg: node.ArgDID, Value: req.DID, Err: err}
		}
		return n.Resolve(r.Context(), d)
	})
	handle("POST "+controlapi.RouteBlock, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.BlockRequest](w, r)
		if err != nil {
			return nil, err
		}
		var d time.Duration
		if req.For != "" {
			if d, err = time.ParseDuration(req.For); err != nil {
				return nil, &node.ArgError{Arg: node.ArgDuration, Value: req.For, Err: fmt.Errorf("block duration %q is not a duration", req.For)}
			}
			if d == 0 {
				return nil, &node.ArgError{Arg: node.ArgDuration, Value: req.For, Err: errors.New("block duration 0 would lapse at once")}
			}
		}
		return n.Block(r.Context(), req.Target, d, req.Reason)
	})
	handle("POST "+controlapi.RouteUnblock, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.UnblockRequest](w, r)
		if err != nil {
			return nil, err
		}
		return n.Unblock(r.Context(), req.Target)
	})
	handle("GET "+controlapi.RouteBlocked, func(http.ResponseWriter, *http.Request) (any, error) { return n.Blocked(), nil })
	handle("GET "+controlapi.RouteLimits, func(http.ResponseWriter, *http.Request) (any, error) { return n.Limits() })

	handle("POST "+controlapi.RouteLedgerCurrency, call(n.CreateCurrency))
	handle("GET "+controlapi.RouteLedgerCurrencies, func(http.ResponseWriter, *http.Request) (any, error) { return n.Currencies(), nil })
	handle("POST "+controlapi.RouteLedgerPay, call(n.Pay))
	handle("GET "+controlapi.RouteLedgerBalance, func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return n.Balances(r.URL.Query().Get("did"), r.URL.Query().Get("currency"))
	})
	handle("GET "+controlapi.RouteLedgerHistory, func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return n.History(r.Context(), r.URL.Query().Get("did"))
	})
	handle("GET "+controlapi.RouteLedgerHead, func(http.ResponseWriter, *http.Request) (any, error) { return n.LedgerHead(), nil })
	handle("GET "+controlapi.RouteLedgerQuarantine, func(http.ResponseWriter, *http.Request) (any, error) { return n.Quarantine(), nil })
	mux.HandleFunc("POST "+controlapi.RouteLedgerVerify, s.verify)
	mux.HandleFunc("GET "+controlapi.RouteLedgerBackup, s.backup)
	mux.HandleFunc("POST "+controlapi.RouteLedgerImport, s.importBlocks)
	mux.HandleFunc("POST "+controlapi.RouteLedgerSync, s.sync)

	handle("GET "+controlapi.RouteGossipTopics, func(http.ResponseWriter, *http.Request) (any, error) { return n.GossipTopics(), nil })
	handle("POST "+controlapi.RouteGossipPublish, call(n.GossipPublish))
	handle("POST "+controlapi.RouteGossipLeave, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.GossipLeaveRequest](w, r)
		if err != nil {
			return nil, err
		}
		if err := n.GossipLeave(req.Topic); err != nil {
			return nil, err
		}
		return map[string]string{"left": req.Topic}, nil
	})
	mux.HandleFunc("GET "+controlapi.RouteGossipSubscribe, s.gossipSubscribe)

	handle("POST "+controlapi.RouteGatewayToken, call(n.MintGatewayToken))
	handle("POST "+controlapi.RouteGatewayRevoke, call(n.RevokeGatewayTokens))

	handle("POST "+controlapi.RouteTrustAdd, call(n.TrustAdd))
	handle("POST "+controlapi.RouteTrustRemove, func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[controlapi.TrustRemoveRequest](w, r)
		if err != nil {
			return nil, err
		}
		return n.TrustRemove(r.Context(), req.DID)
	})
	handle("GET "+controlapi.RouteTrustList, func(http.ResponseWriter, *http.Request) (any, error) { return n.TrustList(), nil })
	handle("GET "+controlapi.RouteTrustShow, func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return n.TrustShow(r.URL.Query().Get("did"))
	})
	handle("GET "+controlapi.RouteTrustGraph, func(http.ResponseWriter, *http.Request) (any, error) { return n.TrustGraph(), nil })

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteError(w, &controlapi.Error{Status: http.StatusNotFound,
			Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path),
			Hint:    "icnctl and icnd may be different versions; this icnd is " + version.Version})
	})
	return mux
}

// WriteError writes err as the JSON error Describe makes of it.
func WriteError(w http.ResponseWriter, err error) { controlapi.WriteError(w, Describe(err)) }

// call serves a route whose JSON body is f's request.
func call[Req, Resp any](f func(context.Context, Req) (Resp, error)) func(http.ResponseWriter, *http.Request) (any, error) {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		req, err := decode[Req](w, r)
		if err != nil {
			return nil, err
		}
		return f(r.Context(), req)
	}
}

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

// decode reads a JSON request body strictly (unknown fields are refused);
// an empty body is the zero request.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil && !errors.Is(err, io.EOF) {
		return v, &controlapi.Error{Status: http.StatusBadRequest, Message: "bad request body: " + err.Error()}
	}
	return v, nil
}

// verify streams progress as JSON lines, then the report.
func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	controlapi.StreamProgress(w, func(progress func(done, total int)) (controlapi.VerifyReport, error) {
		return s.n.VerifyLedger(r.Context(), progress)
	})
}

// sync starts the pulls (or joins those already running), answering with an
// ordinary JSON error if it cannot, then streams their progress and the
// report.
func (s *server) sync(w http.ResponseWriter, r *http.Request) {
	req, err := decode[controlapi.SyncRequest](w, r)
	if err != nil {
		WriteError(w, err)
		return
	}
	runs, err := s.n.StartLedgerSync(r.Context(), req.Peer)
	if err != nil {
		WriteError(w, err)
		return
	}
	controlapi.StreamProgress(w, func(progress func(done, total int)) (controlapi.SyncReport, error) {
		return s.n.WaitLedgerSync(r.Context(), runs, progress)
	})
}

// backupWriteTimeout bounds each stretch of a backup stream, so a client
// that stops reading does not hold the backup's view open for ever.
const backupWriteTimeout = time.Minute

// backup streams a CARv1 archive of every stored block, as of the moment
// the request arrived; ingest goes on meanwhile.
func (s *server) backup(w http.ResponseWriter, r *http.Request) {
	b := s.n.LedgerBackup()
	defer b.Close()
	w.Header().Set("Content-Type", controlapi.ContentTypeCAR)
	w.Header().Set(controlapi.HeaderEntries, strconv.Itoa(b.Entries))
	w.Header().Set(controlapi.HeaderStateHash, fmt.Sprintf("%x", b.StateHash))
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	cw, err := car.NewWriter(w, b.Heads)
	if err != nil {
		WriteError(w, err)
		return
	}
	written := 0
	err = b.Each(r.Context(), func(c cid.Cid, block []byte) error {
		if err := cw.Write(c, block); err != nil {
			return err
		}
		if written++; written%1024 == 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
		}
		return nil
	})
	if err == nil {
		err = cw.Close()
	}
	if err != nil {
		// The client sees the stream end early (it knows how many blocks
		// to expect) and reports it.
		s.log.Warn("ledger backup stream failed", "after_blocks", written, "of", b.Entries, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("ledger backup sent", "entries", b.Entries)
}

// importBlocks checks and stores the blocks of a small CARv1 archive, as if
// a peer had sent them (used by `icnctl ledger restore`).
func (s *server) importBlocks(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, controlapi.MaxImportBytes)
	archiveErr := func(format string, args ...any) {
		WriteError(w, &node.ArgError{Arg: node.ArgArchive, Err: fmt.Errorf(format, args...)})
	}
	cr, err := car.NewReader(body)
	if err != nil {
		archiveErr("the import is not a CAR archive: %w", err)
		return
	}
	var rep controlapi.ImportReport
	var blocks [][]byte
	var want []cid.Cid
	for {
		c, block, err := cr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, car.ErrHashMismatch) {
			rep.Received++
			rep.AddRefusal(c.String(), err.Error())
			continue
		}
		if err != nil {
			archiveErr("the import archive is damaged: %w", err)
			return
		}
		if len(blocks) == controlapi.MaxImportBlocks {
			WriteError(w, &controlapi.Error{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("an import holds at most %d blocks", controlapi.MaxImportBlocks), Hint: "send the archive in parts"})
			return
		}
		blocks, want = append(blocks, block), append(want, c)
	}
	rep.Received += len(blocks)
	res, err := s.n.ImportLedgerBlocks(r.Context(), blocks, want)
	if err != nil {
		WriteError(w, fmt.Errorf("storing the imported blocks: %w", err))
		return
	}
	for _, x := range res {
		switch {
		case x.Err != nil:
			rep.AddRefusal(x.CID.String(), x.Err.Error())
		case x.Duplicate:
			rep.Duplicates++
		default:
			rep.New++
		}
	}
	if rep.Refused > 0 {
		s.log.Warn("refused ledger blocks from an import", "refused", rep.Refused, "of", rep.Received,
			"first_cid", rep.Refusals[0].CID, "first_err", rep.Refusals[0].Reason)
	}
	controlapi.WriteJSON(w, http.StatusOK, rep)
}
