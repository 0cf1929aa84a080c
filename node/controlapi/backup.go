package controlapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ipfs/go-cid"

	"github.com/intercooperative/icn/ledger/car"
)

// Ledger backup routes.
const (
	// RouteLedgerBackup is GET: the answer is a CARv1 archive
	// (ContentTypeCAR) of every stored ledger block in arrival order, as of
	// one moment, with the heads of that moment as roots. The headers
	// HeaderEntries and HeaderStateHash say how many blocks follow and the
	// state hash they make.
	RouteLedgerBackup = "/v0/ledger/backup"
	// RouteLedgerImport is POST with a CARv1 archive of at most
	// MaxImportBlocks blocks (MaxImportBytes) as the body: each block is
	// checked and stored as if a peer had sent it. The answer is an
	// ImportReport.
	RouteLedgerImport = "/v0/ledger/import"
)

// Backup wire details.
const (
	ContentTypeCAR  = "application/vnd.ipld.car"
	HeaderEntries   = "X-Icn-Entries"
	HeaderStateHash = "X-Icn-State-Hash"
	MaxImportBlocks = 4096
	MaxImportBytes  = 16 << 20
	// maxRefusals bounds the refusals a report lists.
	maxRefusals = 10
)

// Refusal is a block that was not stored, and why.
type Refusal struct {
	CID    string `json:"cid"`
	Reason string `json:"reason"`
}

// ImportReport is the answer to RouteLedgerImport.
type ImportReport struct {
	Received int `json:"received"`
	// New blocks were stored; Duplicates were held already; Refused were
	// malformed, badly signed or broke a static rule (Refusals lists the
	// first ones).
	New        int       `json:"new"`
	Duplicates int       `json:"duplicates"`
	Refused    int       `json:"refused"`
	Refusals   []Refusal `json:"refusals,omitempty"`
}

// AddRefusal counts a refused block, listing the first few.
func (r *ImportReport) AddRefusal(c, reason string) { countRefusal(&r.Refused, &r.Refusals, c, reason) }

func countRefusal(n *int, list *[]Refusal, c, reason string) {
	*n++
	if len(*list) < maxRefusals {
		*list = append(*list, Refusal{CID: c, Reason: reason})
	}
}

// BackupReport is what Client.Backup wrote.
type BackupReport struct {
	Entries   int      `json:"entries"`
	Bytes     int64    `json:"bytes"`
	StateHash string   `json:"state_hash"`
	Heads     []string `json:"heads"`
}

// RestoreReport is what Client.Restore read and what the node did with it.
type RestoreReport struct {
	// Read counts the blocks read from the archive: New, Duplicates and
	// Refused as in ImportReport, a block that does not match its CID
	// counting as refused.
	Read       int       `json:"read"`
	New        int       `json:"new"`
	Duplicates int       `json:"duplicates"`
	Refused    int       `json:"refused"`
	Refusals   []Refusal `json:"refusals,omitempty"`
	// Entries and StateHash are the node's after the restore.
	Entries   int    `json:"entries"`
	StateHash string `json:"state_hash"`
}

func (r *RestoreReport) refuse(c, reason string) { countRefusal(&r.Refused, &r.Refusals, c, reason) }

func (r *RestoreReport) add(o ImportReport) {
	r.New += o.New
	r.Duplicates += o.Duplicates
	for _, f := range o.Refusals {
		r.refuse(f.CID, f.Reason)
	}
	r.Refused += o.Refused - len(o.Refusals)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Backup writes a CARv1 archive of the node's ledger to w, checking each
// block against its CID on the way, and calls progress with the blocks
// written and the total. It fails unless every block the node announced
// arrived.
func (c *Client) Backup(ctx context.Context, w io.Writer, progress func(done, total int)) (BackupReport, error) {
	var rep BackupReport
	resp, err := c.send(ctx, http.MethodGet, RouteLedgerBackup, nil)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	total, err := strconv.Atoi(resp.Header.Get(HeaderEntries))
	if err != nil {
		return rep, fmt.Errorf("icnd's backup answer has no valid %s header (icnctl and icnd may be different versions)", HeaderEntries)
	}
	rep.StateHash = resp.Header.Get(HeaderStateHash)
	r, err := car.NewReader(resp.Body)
	if err != nil {
		return rep, fmt.Errorf("reading the backup from icnd: %w", err)
	}
	for _, h := range r.Roots() {
		rep.Heads = append(rep.Heads, h.String())
	}
	if rep.Heads == nil {
		rep.Heads = []string{}
	}
	cw := &countingWriter{w: w}
	out, err := car.NewWriter(cw, r.Roots())
	if err != nil {
		return rep, err
	}
	if progress != nil {
		progress(0, total)
	}
	for {
		cc, block, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("reading the backup from icnd after %d of %d blocks: %w", rep.Entries, total, err)
		}
		if err := out.Write(cc, block); err != nil {
			return rep, err
		}
		rep.Entries++
		if progress != nil && (rep.Entries%1024 == 0 || rep.Entries == total) {
			progress(rep.Entries, total)
		}
	}
	if rep.Entries != total {
		return rep, fmt.Errorf("icnd's backup ended after %d of %d blocks", rep.Entries, total)
	}
	if err := out.Close(); err != nil {
		return rep, err
	}
	rep.Bytes = cw.n
	return rep, nil
}

// Import sends one archive of at most MaxImportBlocks blocks to the node.
func (c *Client) Import(ctx context.Context, archive []byte) (ImportReport, error) {
	var rep ImportReport
	resp, err := c.sendBody(ctx, http.MethodPost, RouteLedgerImport, ContentTypeCAR, bytes.NewReader(archive))
	if err != nil {
		return rep, err
	}
	return rep, c.decodeAnswer(resp, RouteLedgerImport, &rep)
}

// ErrDamagedArchive means Restore could not read the archive to its end;
// the blocks before the damage were restored.
var ErrDamagedArchive = errors.New("the archive is damaged")

// Restore reads a CARv1 archive from r and has the node check and store its
// blocks, in batches, calling progress with the blocks read and total
// (total is 0 when unknown). A block that does not match its CID is counted
// as refused and skipped; an archive that cannot be read to its end stops
// the restore with an error wrapping ErrDamagedArchive, after the blocks
// before the damage were sent.
func (c *Client) Restore(ctx context.Context, r io.Reader, total int, progress func(done, total int)) (RestoreReport, error) {
	var rep RestoreReport
	cr, err := car.NewReader(r)
	if err != nil {
		return rep, fmt.Errorf("not a ledger backup: %w", err)
	}
	var batch bytes.Buffer
	var w *car.Writer
	inBatch := 0
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		if err := w.Close(); err != nil {
			return err
		}
		ir, err := c.Import(ctx, batch.Bytes())
		if err != nil {
			return err
		}
		rep.add(ir)
		inBatch = 0
		if progress != nil {
			progress(rep.Read, max(total, rep.Read))
		}
		return nil
	}
	const batchBlocks, batchBytes = 1024, 4 << 20
	for {
		cc, block, err := cr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, car.ErrHashMismatch) {
			rep.Read++
			rep.refuse(cc.String(), err.Error())
			continue
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return rep, ferr
			}
			if herr := c.head(ctx, &rep); herr != nil {
				return rep, herr
			}
			return rep, fmt.Errorf("%w after %d entries: %w", ErrDamagedArchive, rep.Read, err)
		}
		if inBatch == 0 {
			batch.Reset()
			if w, err = car.NewWriter(&batch, []cid.Cid{}); err != nil {
				return rep, err
			}
		}
		if err := w.Write(cc, block); err != nil {
			return rep, err
		}
		rep.Read++
		inBatch++
		if inBatch == batchBlocks || batch.Len() >= batchBytes {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	return rep, c.head(ctx, &rep)
}

// head fills in the node's entries and state hash after a restore.
func (c *Client) head(ctx context.Context, rep *RestoreReport) error {
	h, err := c.Head(ctx)
	rep.Entries, rep.StateHash = h.Entries, h.StateHash
	return err
}
