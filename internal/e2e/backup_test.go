package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// ledgerNode is a running daemon whose DID issued "hours" (no decimals, a
// large credit limit), and the DID of a member to pay.
type ledgerNode struct {
	dir   string
	cfg   string
	ports ports
	d     *daemon
	payee string
}

func startLedgerNode(t *testing.T) *ledgerNode {
	t.Helper()
	dir, other := tempDir(t), tempDir(t)
	initID(t, dir)
	payee := initID(t, other)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)
	ok(t, dir, "ledger", "currency", "create", "hours", "--decimals", "0", "--credit-limit", "1000000")
	return &ledgerNode{dir: dir, cfg: cfg, ports: p, d: d, payee: payee.DID}
}

// payer pays from a daemon's DID in several goroutines until stopped or
// until the daemon stops answering, keeping the CIDs it got back.
type payer struct {
	mu    sync.Mutex
	acked []string
	stopc chan struct{}
	wg    sync.WaitGroup
}

func startPaying(t *testing.T, dir, to, memo string, workers int) *payer {
	p := &payer{stopc: make(chan struct{})}
	for w := 0; w < workers; w++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c := controlapi.NewClient(controlapi.SocketPath(dir))
			for {
				select {
				case <-p.stopc:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				e, err := c.Pay(ctx, controlapi.PayRequest{To: to, Amount: "1", Currency: "hours", Memo: memo})
				cancel()
				if err != nil {
					return // the daemon is gone: this one was not acknowledged
				}
				p.mu.Lock()
				p.acked = append(p.acked, e.CID)
				p.mu.Unlock()
			}
		}()
	}
	t.Cleanup(p.stop)
	return p
}

func (p *payer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// stop stops paying and waits for the goroutines; it may be called more
// than once. acked is complete once it returns.
func (p *payer) stop() {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	p.wg.Wait()
}

// A backup taken while payments go on restores, into a node that lost its
// datastore, every entry the backup counted and the state hash it reported;
// the node then pays on without equivocating. Restoring again changes
// nothing; an altered or cut archive is refused where it is bad and the rest
// is kept.
func TestLedgerBackupAndRestore(t *testing.T) {
	n := startLedgerNode(t)
	dir, cfg, p, d := n.dir, n.cfg, n.ports, n.d
	payee := n.payee

	pay := startPaying(t, dir, payee, "backup", 3)
	require.Eventually(t, func() bool { return pay.count() >= 200 }, 60*time.Second, 10*time.Millisecond)
	ackedBefore := pay.count()
	archive := filepath.Join(tempDir(t), "ledger.car")
	b := decode[backupResult](t, ok(t, dir, "ledger", "backup", archive, "--json"))
	require.Equal(t, archive, b.File)
	require.GreaterOrEqual(t, b.Entries, ackedBefore+1, "the currency and every payment acknowledged before the backup")
	require.Len(t, b.StateHash, 64)
	st, err := os.Stat(archive)
	require.NoError(t, err)
	require.Equal(t, b.Bytes, st.Size())
	require.Eventually(t, func() bool { return pay.count() >= ackedBefore+100 }, 60*time.Second, 10*time.Millisecond,
		"payments go on while and after the backup is taken")

	// An existing file is kept unless --force; nothing half-written is left.
	r := fail(t, dir, "ledger", "backup", archive)
	require.Contains(t, r.stderr, "already exists")
	require.Contains(t, r.stderr, "--force")
	entries, err := os.ReadDir(filepath.Dir(archive))
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the archive")

	// A later one to standard output, the summary on standard error.
	out := ctl(t, dir, "ledger", "backup", "-", "--json")
	require.Equal(t, 0, out.code, out.stderr)
	later := decode[backupResult](t, out.stderr)
	require.Equal(t, "-", later.File)
	require.Greater(t, later.Entries, b.Entries)
	require.Equal(t, later.Bytes, int64(len(out.stdout)))
	pay.stop()

	// The node loses its datastore.
	d.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "datastore")))
	d = startDaemon(t, dir, cfg, p)
	require.Zero(t, decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json")).Entries)

	res := decode[restoreResult](t, ok(t, dir, "ledger", "restore", archive, "--json"))
	require.Equal(t, b.Entries, res.Read)
	require.Equal(t, b.Entries, res.New)
	require.Zero(t, res.Refused)
	require.Equal(t, b.Entries, res.Entries)
	require.Equal(t, b.StateHash, res.StateHash, "the restored state is the one the backup reported")
	rep := decode[controlapi.VerifyReport](t, ok(t, dir, "ledger", "verify", "--json"))
	require.True(t, rep.OK, "%v", rep.Problems)

	// The later backup, from standard input: only what came after is new.
	fromStdin := ctlStdin(t, dir, []byte(out.stdout), "ledger", "restore", "-", "--json")
	require.Equal(t, 0, fromStdin.code, fromStdin.stderr)
	res2 := decode[restoreResult](t, fromStdin.stdout)
	require.Equal(t, later.Entries-b.Entries, res2.New)
	require.Equal(t, b.Entries, res2.Duplicates)
	require.Equal(t, later.StateHash, res2.StateHash)

	// It pays on from its own last restored entry: nothing is quarantined.
	e := decode[controlapi.Entry](t, ok(t, dir, "ledger", "pay", payee, "1", "hours", "--json"))
	require.Equal(t, "accepted", e.Status)
	require.Empty(t, decode[[]controlapi.Quarantined](t, ok(t, dir, "ledger", "quarantine", "list", "--json")))

	// Restoring again changes nothing.
	again := decode[restoreResult](t, ok(t, dir, "ledger", "restore", archive, "--json"))
	require.Equal(t, b.Entries, again.Duplicates)
	require.Zero(t, again.New)
	require.Equal(t, later.Entries+1, again.Entries)

	data, err := os.ReadFile(archive)
	require.NoError(t, err)
	// One altered byte in the last block: that block is refused, by its
	// content address, and the run fails; the others are held already.
	bad := append([]byte(nil), data...)
	bad[len(bad)-2] ^= 0x01
	altered := ctlStdin(t, dir, bad, "ledger", "restore", "-")
	require.Equal(t, 1, altered.code)
	require.Contains(t, altered.stdout, "1 refused")
	require.Contains(t, altered.stderr, "icnctl: error: 1 of ")

	// A cut archive: what comes before the cut is read, then the damage is
	// named.
	cut := ctlStdin(t, dir, data[:len(data)*2/3], "ledger", "restore", "-")
	require.Equal(t, 1, cut.code)
	require.Contains(t, cut.stderr, "archive is damaged after")
	require.True(t, strings.HasPrefix(cut.stderr, "icnctl: error: "), cut.stderr)

	// Not an archive at all.
	junk := ctlStdin(t, dir, []byte("hello"), "ledger", "restore", "-")
	require.Equal(t, 1, junk.code)
	require.Contains(t, junk.stderr, "not a valid CARv1 archive")
	d.stop()
}

type backupResult struct {
	File string `json:"file"`
	controlapi.BackupReport
}

type restoreResult struct {
	File string `json:"file"`
	controlapi.RestoreReport
}

// A datastore that cannot be opened (here: a table file missing, as in a
// copy of a running node's files) stops icnd with the cause and the way
// out, in icnd's own log format; following the hint starts the node.
func TestDamagedDatastoreNamesTheWayOut(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)
	ok(t, dir, "ledger", "currency", "create", "hours")
	d.stop()
	tables, err := filepath.Glob(filepath.Join(dir, "datastore", "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, tables, "a clean stop writes the memtable to a table")
	for _, f := range tables {
		require.NoError(t, os.Remove(f))
	}

	d = spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	require.Equal(t, 1, d.wait(30*time.Second))
	logs := d.logs.String()
	ds := filepath.Join(dir, "datastore")
	require.Contains(t, logs, "icnd: error: the ledger datastore cannot be opened: ")
	require.Contains(t, logs, "icnd: hint: ")
	require.Contains(t, logs, "mv "+ds+" "+ds+".broken")
	require.Contains(t, logs, "component=badger4", "Badger's own report comes in icnd's format")
	require.NotContains(t, logs, "\tERROR\t", "no zap-formatted lines")

	require.NoError(t, os.Rename(ds, ds+".broken"))
	d = startDaemon(t, dir, cfg, p)
	require.Zero(t, decode[controlapi.Head](t, ok(t, dir, "ledger", "head", "--json")).Entries)
	d.stop()
}

// scripts/icn-backup.sh, as the backup timer runs it, backs up a node that
// keeps paying: a ledger archive that restores cleanly and a tarball of the
// data dir without the datastore; backups past their days are deleted.
func TestBackupScriptOnARunningNode(t *testing.T) {
	n, dest, other := startLedgerNode(t), tempDir(t), tempDir(t)
	dir, d := n.dir, n.d
	pay := startPaying(t, dir, n.payee, "script", 2)
	require.Eventually(t, func() bool { return pay.count() >= 50 }, 60*time.Second, 10*time.Millisecond)

	old := filepath.Join(dest, "ledger-2000-01-01.car")
	other2 := filepath.Join(dest, "notes.txt")
	for _, f := range []string{old, other2} {
		require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
		long := time.Now().Add(-30 * 24 * time.Hour)
		require.NoError(t, os.Chtimes(f, long, long))
	}

	script, err := filepath.Abs("../../scripts/icn-backup.sh")
	require.NoError(t, err)
	run := func(env ...string) (string, int) {
		cmd := exec.Command("sh", script)
		cmd.Env = append(baseEnv(), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return string(out), code
	}
	env := []string{"ICN_DATA_DIR=" + dir, "ICN_BACKUP_DIR=" + dest, "ICNCTL=" + bins.icnctl}
	out, code := run(env...)
	require.Equal(t, 0, code, out)
	day := time.Now().Format("2006-01-02")
	car := filepath.Join(dest, "ledger-"+day+".car")
	tgz := filepath.Join(dest, "icn-"+day+".tar.gz")
	require.Contains(t, out, "icn-backup: wrote "+car)
	require.NoFileExists(t, old, "older than ICN_BACKUP_KEEP_DAYS")
	require.FileExists(t, other2, "only backups are deleted")

	list, err := exec.Command("tar", "-tzf", tgz).CombinedOutput()
	require.NoError(t, err, "%s", list)
	require.Contains(t, string(list), "./identity.age")
	require.NotContains(t, string(list), "datastore")
	require.NotContains(t, string(list), "icnd.sock")
	entries, err := os.ReadDir(dest)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), "left behind: %s", e.Name())
	}

	res := decode[restoreResult](t, ok(t, dir, "ledger", "restore", car, "--json"))
	require.Zero(t, res.Refused)
	require.Zero(t, res.New)
	require.Greater(t, res.Duplicates, 50)

	// Run again the same day: the day's files are replaced.
	out, code = run(env...)
	require.Equal(t, 0, code, out)

	// Bad settings are named.
	out, code = run("ICN_DATA_DIR="+other+"/nope", "ICN_BACKUP_DIR="+dest, "ICNCTL="+bins.icnctl)
	require.Equal(t, 2, code)
	require.Contains(t, out, "no identity.age")
	out, code = run(append(env, "ICN_BACKUP_KEEP_DAYS=two")...)
	require.Equal(t, 2, code)
	require.Contains(t, out, "whole number")

	// A stopped node fails the run (and the unit) instead of writing nothing.
	pay.stop()
	d.stop()
	out, code = run(env...)
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "icnd is not running")
}
