package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/intercooperative/icn/ledger/car"
	"github.com/intercooperative/icn/node/controlapi"
)

// backupTimeout bounds a backup or a restore.
const backupTimeout = 2 * time.Hour

// backupResult is the --json answer of `ledger backup`.
type backupResult struct {
	File string `json:"file"`
	controlapi.BackupReport
}

// restoreResult is the --json answer of `ledger restore`.
type restoreResult struct {
	File string `json:"file"`
	controlapi.RestoreReport
}

func (a *app) backupCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write every ledger entry the node holds to FILE (a CAR archive), while it runs",
		Long: "backup asks the running icnd for every ledger block it holds, as of one moment (payments go on\n" +
			"meanwhile), and writes them to FILE as a CARv1 archive. Each block is checked against its content\n" +
			"address on the way. FILE appears only once complete; an existing FILE is kept unless --force.\n" +
			"FILE - writes the archive to standard output (the summary then goes to standard error).\n" +
			"The identity keystore is not included: back it up with `icnctl id export`.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if path == "-" {
				return a.backupToStdout(cmd.Context())
			}
			if _, err := os.Stat(path); err == nil && !force {
				return withHint(fmt.Errorf("%s already exists", path), "choose another name, or pass --force to replace it")
			}
			tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
			if err != nil {
				return withHint(fmt.Errorf("cannot write the backup: %w", err), "check that the directory exists and is writable")
			}
			defer os.Remove(tmp.Name()) // a no-op once renamed
			progress := a.progress("backing up")
			rep, err := call(a, cmd.Context(), backupTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.BackupReport, error) {
				return c.Backup(ctx, tmp, progress)
			})
			a.progressDone()
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return err
			}
			if d, err := os.Open(filepath.Dir(path)); err == nil {
				_ = d.Sync() // the rename, durable too (best effort)
				d.Close()
			}
			res := backupResult{File: path, BackupReport: rep}
			return a.output(res, func(w io.Writer) { printBackup(w, res) })
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

func (a *app) backupToStdout(ctx context.Context) error {
	if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return withHint(errors.New("refusing to write a binary archive to a terminal"), "redirect it: `icnctl ledger backup - > ledger.car`, or give a FILE")
	}
	progress := a.progress("backing up")
	rep, err := call(a, ctx, backupTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.BackupReport, error) {
		return c.Backup(ctx, a.stdout, progress)
	})
	a.progressDone()
	if err != nil {
		return err
	}
	res := backupResult{File: "-", BackupReport: rep}
	summary := &app{jsonOut: a.jsonOut, stdout: a.stderr}
	return summary.output(res, func(w io.Writer) { printBackup(w, res) })
}

func printBackup(w io.Writer, r backupResult) {
	where := r.File
	if where == "-" {
		where = "standard output"
	}
	fmt.Fprintf(w, "backed up %d entries (%s) to %s\nstate_hash: %s\n", r.Entries, byteSize(r.Bytes), where, r.StateHash)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func (a *app) restoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Give the running node every entry of a backup archive (checked like entries from a peer)",
		Long: "restore reads a CAR archive written by `icnctl ledger backup` (FILE - reads standard input) and has\n" +
			"the running icnd check and store its entries, exactly as if a peer had sent them: nothing unsigned,\n" +
			"altered or against the rules gets in, and entries the node already holds are skipped, so restoring\n" +
			"into a node that has some or all of them is safe. Exit status 1 if any entry was refused or the\n" +
			"archive is damaged; the entries before the damage are kept.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			var in io.Reader
			total := 0
			if path == "-" {
				in = os.Stdin
			} else {
				f, err := os.Open(path)
				if err != nil {
					return withHint(fmt.Errorf("cannot read the backup: %w", err), "give the path of a file written by `icnctl ledger backup`")
				}
				defer f.Close()
				if total, err = countBlocks(f); err != nil {
					return withHint(fmt.Errorf("%s is not a ledger backup: %w", path, err), "restore reads files written by `icnctl ledger backup`")
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return err
				}
				in = f
			}
			progress := a.progress("restoring")
			rep, err := call(a, cmd.Context(), backupTimeout, func(c *controlapi.Client, ctx context.Context) (controlapi.RestoreReport, error) {
				return c.Restore(ctx, in, total, progress)
			})
			a.progressDone()
			res := restoreResult{File: path, RestoreReport: rep}
			if errors.Is(err, car.ErrMalformed) && !errors.Is(err, controlapi.ErrDamagedArchive) {
				return withHint(err, "restore reads files written by `icnctl ledger backup`")
			}
			if err != nil && !errors.Is(err, controlapi.ErrDamagedArchive) {
				return err
			}
			if oerr := a.output(res, func(w io.Writer) { printRestore(w, res) }); oerr != nil {
				return oerr
			}
			if err != nil {
				return withHint(err, "the entries read before the damage were restored; a peer or an older backup may have the rest")
			}
			if rep.Refused > 0 {
				return withHint(fmt.Errorf("%d of %d entries were refused", rep.Refused, rep.Read),
					"the archive was altered or holds entries that break the ledger's rules; the others were restored")
			}
			return nil
		},
	}
}

// countBlocks counts the blocks of an archive, for progress (without
// hashing them: the restore checks each block as it reads it).
func countBlocks(r io.Reader) (int, error) {
	cr, err := car.NewReader(r)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		switch err := cr.Skip(); {
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, nil // restore reports the damage where it is
		}
		n++
	}
}

func printRestore(w io.Writer, r restoreResult) {
	from := r.File
	if from == "-" {
		from = "standard input"
	}
	fmt.Fprintf(w, "read %d entries from %s: %d new, %d already held, %d refused\n", r.Read, from, r.New, r.Duplicates, r.Refused)
	for _, f := range r.Refusals {
		fmt.Fprintf(w, "refused %s: %s\n", f.CID, f.Reason)
	}
	if r.Refused > len(r.Refusals) {
		fmt.Fprintf(w, "(and %d more refused)\n", r.Refused-len(r.Refusals))
	}
	fmt.Fprintf(w, "the node now holds %d entries\nstate_hash: %s\n", r.Entries, r.StateHash)
}
