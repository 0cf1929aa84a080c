package e2e

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// asUser returns the credentials to run a binary as the named user, or
// skips the test when this process cannot switch users.
func asUser(t *testing.T, name string) (*syscall.SysProcAttr, int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binaries as other users")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no %s user to run as", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	require.NoError(t, os.Chmod(bins.dir, 0o755))
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, uid, gid
}

// nobodysDataDir makes a data dir owned by nobody (mode 0700) under a
// parent everyone may enter, with nobody's identity and a config nobody
// can read.
func nobodysDataDir(t *testing.T, nobody *syscall.SysProcAttr, uid, gid int) (dir, cfg string, p ports) {
	t.Helper()
	parent := tempDir(t)
	require.NoError(t, os.Chmod(parent, 0o755))
	dir = filepath.Join(parent, "icn")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, uid, gid))
	r := ctlAs(t, nobody, withPass(passphrase), dir, "id", "init")
	require.Equal(t, 0, r.code, r.stderr)
	cfg, p = writeConfig(t, parent, "127.0.0.1:0", "")
	require.NoError(t, os.Chmod(cfg, 0o644))
	return dir, cfg, p
}

// `icnctl ledger pay` without its arguments says how it is used.
func TestMissingArgumentsShowTheUsage(t *testing.T) {
	dir := tempDir(t)
	for _, args := range [][]string{{"ledger", "pay"}, {"ledger", "pay", "did:icn:zabc"}, {"id", "export"}} {
		r := fail(t, dir, args...)
		require.Contains(t, r.stderr, "icnctl: hint: usage: icnctl "+strings.Join(args[:2], " ")+" ", "%v", args)
	}
	r := fail(t, dir, "ledger", "pay")
	require.Contains(t, r.stderr, "usage: icnctl ledger pay DID AMOUNT CURRENCY [--memo TEXT]")
	require.Contains(t, r.stderr, "`icnctl ledger pay --help`")
}

// icnctl run as another user than icnd's is told whose socket it is and
// the command to run as that user.
func TestControlSocketOfAnotherUser(t *testing.T) {
	nobody, uid, gid := asUser(t, "nobody")
	other, _, _ := asUser(t, "daemon")
	dir, cfg, _ := nobodysDataDir(t, nobody, uid, gid)
	d := spawn(t, withPass(passphrase), nobody, "--data-dir", dir, "--config", cfg)
	require.Eventually(t, func() bool {
		select {
		case <-d.done:
			return true
		default:
		}
		return ctl(t, dir, "status").code == 0 // root may connect
	}, 30*time.Second, 100*time.Millisecond, "icnd never answered")

	r := ctlAs(t, other, baseEnv(), dir, "status", "--json")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "icnctl: error: control socket "+filepath.Join(dir, "icnd.sock"))
	require.Contains(t, r.stderr, "permission denied")
	require.Contains(t, r.stderr, dir+" belongs to nobody; icnctl runs as daemon")
	require.Contains(t, r.stderr, "icnctl: hint: icnd's control socket answers its own user only: `sudo -u nobody icnctl --data-dir "+dir+" status --json`")
	d.stop()
}

// A keystore icnd or icnctl may not read names its owner, with the chown
// (or sudo -u) that fixes it.
func TestKeystoreOfAnotherUser(t *testing.T) {
	nobody, uid, gid := asUser(t, "nobody")
	other, _, _ := asUser(t, "daemon")
	dir, cfg, _ := nobodysDataDir(t, nobody, uid, gid)
	ks := filepath.Join(dir, "identity.age")

	// Another user's data dir: run as its owner, or take it over.
	r := ctlAs(t, other, withPass(passphrase), dir, "id", "export", filepath.Join(tempDir(t), "b.age"))
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "permission denied ("+dir+" belongs to nobody; this runs as daemon)")
	require.Contains(t, r.stderr, "icnctl: hint: run the command as nobody (prefix it with `sudo -u nobody`), or, if the identity should be daemon's, `sudo chown -R daemon "+dir+"`")

	// The data dir is nobody's but the keystore root's (made with sudo).
	require.NoError(t, os.Chown(ks, 0, 0))
	hint := "hint: the data dir is nobody's but the keystore is root's (created with sudo?): `sudo chown nobody " + ks + "`"
	d := spawn(t, withPass(passphrase), nobody, "--data-dir", dir, "--config", cfg)
	require.Equal(t, 1, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "icnd: error: read keystore: open "+ks+": permission denied ("+ks+" belongs to root; this runs as nobody)")
	require.Contains(t, d.logs.String(), "icnd: "+hint)
	r = ctlAs(t, nobody, withPass(passphrase), dir, "id", "show")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "icnctl: "+hint)

	// After the chown it works.
	require.NoError(t, os.Chown(ks, uid, gid))
	r = ctlAs(t, nobody, withPass(passphrase), dir, "id", "show")
	require.Equal(t, 0, r.code, r.stderr)
}

// --log-level and log_level take any case; JSON logs write durations as
// strings, like text logs.
func TestLogLevelAnyCaseAndJSONDurations(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	body := strings.Replace(string(readFile(t, cfg)), `log_level = "debug"`, `log_level = "WARN"`, 1)
	require.NoError(t, os.WriteFile(cfg, []byte(body), 0o600))
	check := spawn(t, baseEnv(), nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 0, check.wait(10*time.Second), check.logs.String())
	require.Contains(t, check.logs.String(), `log_level = "warn"`)
	check = spawn(t, baseEnv(), nil, "--config", cfg, "--data-dir", dir, "--log-level", "DEBUG", "--log-format", "JSON", "--check-config")
	require.Equal(t, 0, check.wait(10*time.Second), check.logs.String())
	require.Contains(t, check.logs.String(), `log_level = "debug"`)
	require.Contains(t, check.logs.String(), `log_format = "json"`)

	d := spawn(t, withPass(passphrase), nil, "--config", cfg, "--data-dir", dir, "--log-level", "Info", "--log-format", "JSON")
	d.dataDir, d.ports = dir, p
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), `"msg":"icnd ready"`) }, 30*time.Second, 50*time.Millisecond)
	logs := d.logs.String()
	require.Contains(t, logs, `"msg":"ledger loaded"`)
	require.Regexp(t, `"took":"[0-9.]+(ns|µs|ms|s)"`, logs, "a duration in JSON is a string like the text format's")
	require.NotContains(t, logs, `"level":"DEBUG"`)
	d.stop()
}
