package node

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/ledger/car"
	"github.com/intercooperative/icn/node/controlapi"
)

// backupWriteTimeout bounds each stretch of a backup stream, so a client
// that stops reading does not hold the backup's view open for ever.
const backupWriteTimeout = time.Minute

// serveBackup streams a CARv1 archive of every stored block, as of the
// moment the request arrived; ingest goes on meanwhile.
func (n *Node) serveBackup(w http.ResponseWriter, r *http.Request) {
	b := n.ledger.Backup()
	defer b.Close()
	w.Header().Set("Content-Type", controlapi.ContentTypeCAR)
	w.Header().Set(controlapi.HeaderEntries, strconv.Itoa(b.Entries))
	w.Header().Set(controlapi.HeaderStateHash, fmt.Sprintf("%x", b.StateHash))
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	cw, err := car.NewWriter(w, b.Heads)
	if err != nil {
		writeErr(w, err)
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
		n.log.Warn("ledger backup stream failed", "after_blocks", written, "of", b.Entries, "err", err)
		panic(http.ErrAbortHandler)
	}
	n.log.Info("ledger backup sent", "entries", b.Entries)
}

// serveImport checks and stores the blocks of a small CARv1 archive, as if
// a peer had sent them (used by `icnctl ledger restore`).
func (n *Node) serveImport(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, controlapi.MaxImportBytes)
	cr, err := car.NewReader(body)
	if err != nil {
		writeErr(w, badRequest("the import is not a CAR archive: "+err.Error(), "icnctl ledger restore reads files written by icnctl ledger backup"))
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
			writeErr(w, badRequest("the import archive is damaged: "+err.Error(), ""))
			return
		}
		if len(blocks) == controlapi.MaxImportBlocks {
			writeErr(w, badRequest(fmt.Sprintf("an import holds at most %d blocks", controlapi.MaxImportBlocks), "send the archive in parts"))
			return
		}
		blocks, want = append(blocks, block), append(want, c)
	}
	rep.Received += len(blocks)
	res, err := n.ledger.Ingest(r.Context(), blocks, want)
	if err != nil {
		writeErr(w, fmt.Errorf("storing the imported blocks: %w", err))
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
		n.log.Warn("refused ledger blocks from an import", "refused", rep.Refused, "of", rep.Received,
			"first_cid", rep.Refusals[0].CID, "first_err", rep.Refusals[0].Reason)
	}
	controlapi.WriteJSON(w, http.StatusOK, rep)
}
