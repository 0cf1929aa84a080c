package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/did"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestWrongPassphrase(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	ks := filepath.Join(dir, "identity.age")
	before := readFile(t, ks)

	r := ctlEnv(t, withPass("not-the-passphrase"), dir, "id", "show")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "Failed to unlock keystore")
	r = ctlEnv(t, withPass("not-the-passphrase"), dir, "id", "rotate")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "Failed to unlock keystore")

	cfg, _ := writeConfig(t, dir, "127.0.0.1:0", "")
	d := spawn(t, withPass("not-the-passphrase"), nil, "--data-dir", dir, "--config", cfg)
	require.NotEqual(t, 0, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "Failed to unlock keystore")

	// The legacy variable is read too, and the primary one wins over it.
	r = ctlEnv(t, append(baseEnv(), "ICN_PASSPHRASE="+passphrase), dir, "id", "show")
	require.Equal(t, 0, r.code, r.stderr)
	r = ctlEnv(t, append(baseEnv(), "ICN_PASSPHRASE="+passphrase, "ICN_KEYSTORE_PASSPHRASE=wrong"), dir, "id", "show")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "Failed to unlock keystore")
	require.Contains(t, r.stderr, "icnctl: hint: the passphrase came from ICN_KEYSTORE_PASSPHRASE, which is read before ICN_PASSPHRASE")

	// A wrong legacy passphrase, the primary variable unset: the hint
	// names both, in icnctl and in icnd.
	legacy := append(baseEnv(), "ICN_PASSPHRASE=not-the-passphrase")
	r = ctlEnv(t, legacy, dir, "id", "show")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "icnctl: error: Failed to unlock keystore")
	require.Contains(t, r.stderr, "icnctl: hint: the passphrase came from the legacy ICN_PASSPHRASE (ICN_KEYSTORE_PASSPHRASE is not set)")
	d = spawn(t, legacy, nil, "--data-dir", dir, "--config", cfg)
	require.Equal(t, 1, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "icnd: error: Failed to unlock keystore")
	require.Contains(t, d.logs.String(), "icnd: hint: the passphrase came from the legacy ICN_PASSPHRASE (ICN_KEYSTORE_PASSPHRASE is not set)")

	require.Equal(t, before, readFile(t, ks), "keystore changed")
}

func TestNoPassphraseAndNoTerminalFailsFast(t *testing.T) {
	dir := tempDir(t)
	r := ctlEnv(t, baseEnv(), dir, "id", "init")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "ICN_KEYSTORE_PASSPHRASE")
	require.NoFileExists(t, filepath.Join(dir, "identity.age"))

	initID(t, dir)
	d := spawn(t, baseEnv(), nil, "--data-dir", dir, "--config", func() string { c, _ := writeConfig(t, dir, "127.0.0.1:0", ""); return c }())
	require.Equal(t, 1, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "ICN_KEYSTORE_PASSPHRASE")
}

func TestInitRefusesToOverwrite(t *testing.T) {
	dir := tempDir(t)
	id := initID(t, dir)
	ks := filepath.Join(dir, "identity.age")
	before := readFile(t, ks)
	r := fail(t, dir, "id", "init")
	require.Contains(t, r.stderr, "already exists")
	require.Contains(t, r.stderr, "icnctl: hint:")
	require.Equal(t, before, readFile(t, ks))
	require.Equal(t, id.DID, decode[idJSON](t, ok(t, dir, "id", "show", "--json")).DID)
}

func TestExportImport(t *testing.T) {
	src, dst := tempDir(t), tempDir(t)
	id := initID(t, src)
	backup := filepath.Join(tempDir(t), "backup.age")
	ok(t, src, "id", "export", backup)
	fi, err := os.Stat(backup)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	// Export does not overwrite unless told to.
	exported := readFile(t, backup)
	r := fail(t, src, "id", "export", backup)
	require.Contains(t, r.stderr, "refusing to overwrite")
	require.Contains(t, r.stderr, "icnctl: hint: add --force to replace it")
	require.Equal(t, exported, readFile(t, backup))
	ok(t, src, "id", "export", backup, "--force")
	require.NotEqual(t, exported, readFile(t, backup), "a fresh encryption differs")
	fi, err = os.Stat(backup)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(backup), ".*"))
	require.NoError(t, err)
	require.Empty(t, leftovers, "the forced export leaves nothing beside the file")

	// Import into an empty data dir.
	got := decode[idJSON](t, ok(t, dst, "id", "import", backup, "--json"))
	require.Equal(t, id.DID, got.DID)
	require.Equal(t, id.PeerID, got.PeerID)

	// Over an existing keystore: refused without --force, bytes untouched.
	other := tempDir(t)
	otherID := initID(t, other)
	ks := filepath.Join(other, "identity.age")
	before := readFile(t, ks)
	r = fail(t, other, "id", "import", backup)
	require.Contains(t, r.stderr, "--force")
	require.Equal(t, before, readFile(t, ks))

	// A file that is not a keystore, and a keystore with another passphrase.
	garbage := filepath.Join(tempDir(t), "garbage.age")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not an age file\n"), 0o600))
	r = fail(t, other, "id", "import", garbage, "--force")
	require.Contains(t, r.stderr, "not an ICN keystore")
	require.Equal(t, before, readFile(t, ks))
	r = ctlEnv(t, withPass("some-other-passphrase"), other, "id", "import", backup, "--force")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "Failed to unlock keystore")
	require.Equal(t, before, readFile(t, ks))
	require.Equal(t, otherID.DID, decode[idJSON](t, ok(t, other, "id", "show", "--json")).DID)

	// With --force it replaces.
	got = decode[idJSON](t, ok(t, other, "id", "import", backup, "--force", "--json"))
	require.Equal(t, id.DID, got.DID)
}

func TestListenPortInUse(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer udp.Close()
	addr := udp.LocalAddr().String()
	cfg, _ := writeConfig(t, dir, addr, "")
	d := spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	require.NotEqual(t, 0, d.wait(30*time.Second))
	logs := d.logs.String()
	require.Contains(t, logs, addr)
	require.NoFileExists(t, filepath.Join(dir, "icnd.sock"), "a failed start must not leave the socket")
	// One clear line says it; libp2p's fx and swarm loggers, which repeat
	// the error libp2p.New returns, say nothing.
	var inUse []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		require.NotContains(t, line, "system=fx", logs)
		require.NotContains(t, line, "level=ERROR", logs)
		if strings.Contains(line, "address already in use") {
			inUse = append(inUse, line)
		}
	}
	require.Len(t, inUse, 1, logs)
	require.True(t, strings.HasPrefix(inUse[0], "icnd: error: "), logs)

	// The same for a health port in use.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcp.Close()
	port := tcp.Addr().(*net.TCPAddr).Port
	cfg, _ = writeConfig(t, dir, "127.0.0.1:0", "")
	body := readFile(t, cfg)
	body = bytes.Replace(body, []byte("health_port = "), []byte("health_port = "+strconv.Itoa(port)+"\n#"), 1)
	require.NoError(t, os.WriteFile(cfg, body, 0o600))
	d = spawn(t, withPass(passphrase), nil, "--data-dir", dir, "--config", cfg)
	require.NotEqual(t, 0, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "address already in use")
	require.Contains(t, d.logs.String(), "127.0.0.1:"+strconv.Itoa(port))
}

func TestDataDirNotWritable(t *testing.T) {
	parent := tempDir(t)
	dir := filepath.Join(parent, "icn")
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		// root writes anywhere: run icnd as nobody against a root-owned dir.
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("running as root and there is no nobody user to drop to")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		require.NoError(t, os.Chmod(parent, 0o755))
		require.NoError(t, os.Chmod(bins.dir, 0o755))
		require.NoError(t, os.Mkdir(dir, 0o755))
	} else {
		require.NoError(t, os.Chmod(parent, 0o500))
		t.Cleanup(func() { os.Chmod(parent, 0o700) })
	}
	d := spawn(t, withPass(passphrase), attr, "--data-dir", dir, "--log-level", "error")
	require.NotEqual(t, 0, d.wait(30*time.Second))
	require.Contains(t, d.logs.String(), "permission denied")
	require.Contains(t, d.logs.String(), dir)
}

func TestMalformedConfig(t *testing.T) {
	dir := tempDir(t)
	cases := map[string]string{
		"bogus = 1\n":                           "bogus",
		"[network]\nlisten_addr = \"/ip4/x\"\n": "network.listen_addr",
		"[network]\nbootstrap_peers = [\"/ip4/1.2.3.4/udp/1/quic-v1\"]\n": "network.bootstrap_peers[0]",
		"[observability]\nmetrics_port = 123456\n":                        "observability.metrics_port",
		"[observability]\nhealth_port = \"x\"\n":                          "observability.health_port",
		"[network\n":                                                      "line 2: expected",
	}
	for body, want := range cases {
		cfg := filepath.Join(dir, "bad.toml")
		require.NoError(t, os.WriteFile(cfg, []byte(body), 0o600))
		for _, extra := range [][]string{{"--check-config"}, nil} {
			d := spawn(t, withPass(passphrase), nil, append([]string{"--config", cfg, "--data-dir", dir}, extra...)...)
			require.Equal(t, 1, d.wait(30*time.Second), body)
			require.Contains(t, d.logs.String(), want, body)
			require.Contains(t, d.logs.String(), "icnd: error:", body)
		}
	}
	d := spawn(t, baseEnv(), nil, "--log-level", "loud", "--data-dir", dir, "--check-config")
	require.Equal(t, 1, d.wait(10*time.Second))
	require.Contains(t, d.logs.String(), "--log-level")
}

// Whatever start refuses from the config file alone, --check-config
// refuses too, with the same words; and localhost, which users type, works
// in both.
func TestCheckConfigRefusesWhatStartRefuses(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	// bind, when set, replaces the http_bind line; mdns_interfaces turns
	// mDNS on.
	cases := []struct{ extra, listen, bind, want string }{
		{`mdns_interfaces = ["eth9"]`, "127.0.0.1:0", "", `network.mdns_interfaces: no network interface named "eth9" (this host has: lo`},
		{"", "node.example.org:7790", "", `network.listen_addr: "node.example.org:7790": the node listens on an IP address of this host, not on the name "node.example.org"`},
		{"", "192.0.2.1:7790", "", "network.listen_addr: 192.0.2.1 is not an address of this host"},
		{"", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", "", "is not a QUIC v1 listen address"},
		{`bootstrap_peers = ["/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/ip4/192.0.2.1"]`, "127.0.0.1:0", "",
			"network.bootstrap_peers[0]: \"/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/ip4/192.0.2.1\" does not end in /p2p/<peer id>"},
		{"", "127.0.0.1:0", "192.0.2.1", "observability.http_bind: 192.0.2.1 is not an address of this host"},
		{"[limits]\nmax_memory_mb = 99999999999999", "127.0.0.1:0", "", "limits.max_memory_mb: 99999999999999 MiB is more bytes than a 64-bit count holds"},
	}
	for _, tc := range cases {
		cfg, _ := writeConfig(t, dir, tc.listen, tc.extra)
		body := readFile(t, cfg)
		if tc.bind != "" {
			body = bytes.Replace(body, []byte(`http_bind = "127.0.0.1"`), []byte("http_bind = "+strconv.Quote(tc.bind)), 1)
		}
		if strings.HasPrefix(tc.extra, "mdns_interfaces") {
			body = bytes.Replace(body, []byte("mdns_enabled = false"), []byte("mdns_enabled = true"), 1)
		}
		require.NoError(t, os.WriteFile(cfg, body, 0o600))
		check := spawn(t, baseEnv(), nil, "--config", cfg, "--data-dir", dir, "--check-config")
		require.Equal(t, 1, check.wait(30*time.Second), tc.want)
		checkOut := check.logs.String()
		require.Contains(t, checkOut, tc.want)
		require.True(t, strings.HasPrefix(checkOut, "icnd: error: config is not valid: "), checkOut)

		start := spawn(t, withPass(passphrase), nil, "--config", cfg, "--data-dir", dir)
		require.Equal(t, 1, start.wait(30*time.Second), tc.want)
		startOut := start.logs.String()
		require.Equal(t, strings.TrimPrefix(checkOut, "icnd: error: config is not valid: "), strings.TrimPrefix(startOut, "icnd: error: "),
			"start and --check-config say different things")
		require.NoFileExists(t, filepath.Join(dir, "icnd.sock"))
	}

	cfg, p := writeConfig(t, dir, "localhost:0", "")
	check := spawn(t, baseEnv(), nil, "--config", cfg, "--data-dir", dir, "--check-config")
	require.Equal(t, 0, check.wait(30*time.Second), check.logs.String())
	d := startDaemon(t, dir, cfg, p)
	require.True(t, strings.HasPrefix(status(t, dir).ListenAddrs[0], "/ip4/127.0.0.1/udp/"), status(t, dir).ListenAddrs)
	d.stop()
}

func TestIcnctlBadArguments(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")

	// Not running: says so, with the socket path.
	r := fail(t, dir, "status")
	require.Contains(t, r.stderr, "icnd is not running")
	require.Contains(t, r.stderr, filepath.Join(dir, "icnd.sock"))

	d := startDaemon(t, dir, cfg, p)
	for _, args := range [][]string{
		{"network", "dial", "did:icn:zzz", "127.0.0.1:1"},
		{"network", "dial", "did:key:z6Mk", "127.0.0.1:1"},
		{"network", "dial", "/ip4/999.1.1.1/udp/1/quic-v1"},
		{"network", "dial", "/ip4/127.0.0.1/udp/1/quic-v1"},
		{"network", "dial", "127.0.0.1:7777"},
		{"network", "disconnect", "nobody"},
		{"network", "dial"},
		{"id", "bogus"},
		{"status", "--bogus"},
	} {
		r := fail(t, dir, args...)
		require.NotContains(t, r.stderr, "panic", "%v", args)
	}
	d.stop()
}

// No file in the data dir, nor an export, ever holds the private keys in
// clear: raw, base64 or hex.
func TestNoPrivateKeyInClear(t *testing.T) {
	dir := tempDir(t)
	initID(t, dir)
	cfg, p := writeConfig(t, dir, "127.0.0.1:0", "")
	d := startDaemon(t, dir, cfg, p)
	ok(t, dir, "id", "rotate")
	backup := filepath.Join(dir, "backup.age")
	ok(t, dir, "id", "export", backup)
	d.stop()

	id, err := did.Open(dir).Unlock(passphrase)
	require.NoError(t, err)
	node, err := id.NodeKey.Raw()
	require.NoError(t, err)
	var secrets [][]byte
	for _, k := range [][]byte{id.DIDKey, id.DIDKey.Seed(), node, node[:32]} {
		secrets = append(secrets, k,
			[]byte(base64.StdEncoding.EncodeToString(k)), []byte(base64.RawURLEncoding.EncodeToString(k)),
			[]byte(hex.EncodeToString(k)))
	}
	files := 0
	require.NoError(t, filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		files++
		data := readFile(t, path)
		for _, s := range secrets {
			require.False(t, bytes.Contains(data, s), "%s holds a private key in clear", path)
		}
		if filepath.Base(path) == "identity.age" || path == backup {
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), path)
		}
		return nil
	}))
	require.GreaterOrEqual(t, files, 2)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}
