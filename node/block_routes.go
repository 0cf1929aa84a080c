package node

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/intercooperative/icn/node/blocklist"
	"github.com/intercooperative/icn/node/controlapi"
)

// blockRoutes serves the blocklist routes and maps blocklist's errors to
// status, message and hint.
func (n *Node) blockRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+controlapi.RouteBlock, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.BlockRequest
		if !decodeBody(w, r, &req) {
			return
		}
		var d time.Duration
		if req.For != "" {
			var err error
			if d, err = time.ParseDuration(req.For); err != nil {
				writeErr(w, badRequest(fmt.Sprintf("block duration %q is not a duration", req.For), durationHint))
				return
			}
			if d == 0 {
				writeErr(w, badRequest("block duration 0 would lapse at once", durationHint))
				return
			}
		}
		res, err := n.Block(r.Context(), req.Target, d, req.Reason)
		if err != nil {
			writeErr(w, blockError(err))
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+controlapi.RouteUnblock, func(w http.ResponseWriter, r *http.Request) {
		var req controlapi.UnblockRequest
		if !decodeBody(w, r, &req) {
			return
		}
		res, err := n.Unblock(r.Context(), req.Target)
		if err != nil {
			writeErr(w, blockError(err))
			return
		}
		controlapi.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET "+controlapi.RouteBlocked, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteJSON(w, http.StatusOK, n.Blocked())
	})
}

const durationHint = "--for takes a positive duration such as 30m, 24h or 168h; leave it out to block until `icnctl network unblock`"

// blockError maps the blocklist's errors to the control API's.
func blockError(err error) error {
	var (
		te *blocklist.TargetError
		de *blocklist.DurationError
		re *blocklist.ReasonError
		be *blocklist.BlockedError
	)
	switch {
	case errors.Is(err, blocklist.ErrSelf):
		return &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(),
			Hint: "block another node's peer ID or DID; `icnctl network peers` lists them"}
	case errors.As(err, &te):
		return &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(),
			Hint: "give a peer ID (12D3Koo…) or a DID (did:icn:z…); `icnctl network peers` lists both"}
	case errors.As(err, &de):
		return &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(), Hint: durationHint}
	case errors.As(err, &re):
		return &controlapi.Error{Status: http.StatusBadRequest, Message: err.Error(),
			Hint: fmt.Sprintf("--reason takes one line of text, at most %d bytes", blocklist.MaxReasonLen)}
	case errors.As(err, &be):
		return &controlapi.Error{Status: http.StatusConflict, Message: err.Error(),
			Hint: fmt.Sprintf("`icnctl network unblock %s` lifts the block", be.Entry.Target)}
	case errors.Is(err, blocklist.ErrNotBlocked):
		return &controlapi.Error{Status: http.StatusNotFound, Message: err.Error(),
			Hint: "`icnctl network blocked` lists them"}
	}
	return err
}
