// Package e2e holds end-to-end tests: they build the real icnd and icnctl
// binaries and drive them as an operator would, over loopback only.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/intercooperative/icn/internal/testutil"
	"github.com/stretchr/testify/require"
)

// passphrase is what every e2e keystore uses.
const passphrase = "e2e-passphrase-long-enough"

var bins struct {
	dir    string
	icnd   string
	icnctl string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "icn-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.icnd = filepath.Join(dir, "icnd")
	bins.icnctl = filepath.Join(dir, "icnctl")
	build := exec.Command("go", "build", "-o", dir, "github.com/intercooperative/icn/cmd/icnd", "github.com/intercooperative/icn/cmd/icnctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tempDir returns a short temporary dir (unix socket paths are limited to
// 108 bytes) removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "icne")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// baseEnv is the process environment without any passphrase variable,
// gateway secret or OpenTelemetry setting.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ICN_KEYSTORE_PASSPHRASE=") || strings.HasPrefix(kv, "ICN_PASSPHRASE=") ||
			strings.HasPrefix(kv, "ICN_GATEWAY_JWT_SECRET=") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func withPass(p string) []string { return append(baseEnv(), "ICN_KEYSTORE_PASSPHRASE="+p) }

type result struct {
	stdout, stderr string
	code           int
}

// ctl runs icnctl with the e2e passphrase.
func ctl(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	return ctlEnv(t, withPass(passphrase), dataDir, args...)
}

func ctlEnv(t testing.TB, env []string, dataDir string, args ...string) result {
	t.Helper()
	return ctlAs(t, nil, env, dataDir, args...)
}

// ctlAs runs icnctl with attr (nil: as this process's user).
func ctlAs(t testing.TB, attr *syscall.SysProcAttr, env []string, dataDir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.icnctl, append([]string{"--data-dir", dataDir}, args...)...)
	cmd.Env = env
	cmd.SysProcAttr = attr
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = nil // not a terminal
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "icnctl %v hung", args)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs icnctl and requires success.
func ok(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	r := ctl(t, dataDir, args...)
	require.Equal(t, 0, r.code, "icnctl %v failed:\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	return r.stdout
}

// fail runs icnctl and requires exit status 1 with an icnctl-style error.
func fail(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	r := ctl(t, dataDir, args...)
	require.Equal(t, 1, r.code, "icnctl %v should fail:\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "icnctl: error: "), "stderr: %q", r.stderr)
	require.NotContains(t, r.stderr, "goroutine ", "stack trace leaked")
	return r
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "not JSON: %s", s)
	return v
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	return freeTCPPorts(t, 1)[0]
}

// freeTCPPorts is n distinct free ports: each listener is held until all
// are chosen, so the kernel cannot hand out one port twice (two calls of
// freeTCPPort can, and a config with health_port = metrics_port is
// refused).
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		out[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return out
}

// writeConfig writes a config for a loopback node and returns its path and
// ports; extra is TOML added to the [network] table.
type ports struct{ health, metrics int }

func writeConfig(t *testing.T, dir, listen string, extra string) (string, ports) {
	t.Helper()
	pp := freeTCPPorts(t, 2)
	p := ports{health: pp[0], metrics: pp[1]}
	body := fmt.Sprintf(`[network]
listen_addr = %q
mdns_enabled = false
%s
[observability]
health_port = %d
metrics_port = %d
http_bind = "127.0.0.1"
log_level = "debug"
`, listen, extra, p.health, p.metrics)
	path := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path, p
}

// daemon is a running icnd process.
type daemon struct {
	t       testing.TB
	dataDir string
	ports   ports
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
	err     error
}

// syncBuffer collects a process's output for assertions.
type syncBuffer = testutil.LogBuffer

// startDaemon starts icnd and waits until /ready answers 200 (or the
// control socket answers when the health port is off).
func startDaemon(t *testing.T, dataDir, cfgPath string, p ports) *daemon {
	t.Helper()
	return startDaemonEnv(t, withPass(passphrase), dataDir, cfgPath, p)
}

// startDaemonEnv is startDaemon with the environment env.
func startDaemonEnv(t *testing.T, env []string, dataDir, cfgPath string, p ports) *daemon {
	t.Helper()
	d := spawn(t, env, nil, "--data-dir", dataDir, "--config", cfgPath)
	d.dataDir, d.ports = dataDir, p
	require.Eventually(t, func() bool {
		select {
		case <-d.done:
			return true
		default:
		}
		return ctl(t, dataDir, "status").code == 0
	}, 30*time.Second, 100*time.Millisecond, "icnd never answered")
	select {
	case <-d.done:
		t.Fatalf("icnd exited early: %v\n%s", d.err, d.logs)
	default:
	}
	return d
}

// spawn starts icnd with args; it is killed at cleanup if still running.
func spawn(t testing.TB, env []string, attr *syscall.SysProcAttr, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bins.icnd, args...)
	cmd.Env = env
	cmd.SysProcAttr = attr
	return startCmd(t, cmd, fmt.Sprint(args))
}

// startCmd starts an icnd command, collecting its output; it is killed at
// cleanup if still running, and its logs are shown if the test failed.
func startCmd(t testing.TB, cmd *exec.Cmd, label string) *daemon {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	d := &daemon{t: t, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		killUnlessDone(cmd, d.done)
		if t.Failed() {
			t.Logf("icnd %s logs:\n%s", label, logs)
		}
	})
	return d
}

// wait waits for the process to exit and returns its exit code.
func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.t.Fatalf("icnd did not exit within %s\n%s", timeout, d.logs)
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(d.t, d.err)
	return 0
}

// stop sends SIGTERM and requires a clean exit within the shutdown bound.
func (d *daemon) stop() {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGTERM))
	code := d.wait(12 * time.Second)
	require.Equal(d.t, 0, code, "icnd exit status after SIGTERM\n%s", d.logs)
	_, err := os.Stat(filepath.Join(d.dataDir, "icnd.sock"))
	require.True(d.t, os.IsNotExist(err), "control socket left behind")
}

func (d *daemon) get(path string) (int, string) {
	d.t.Helper()
	port := d.ports.health
	if path == "/metrics" {
		port = d.ports.metrics
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	require.NoError(d.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err)
	return resp.StatusCode, string(b)
}

// killUnlessDone kills a process that has not exited yet (done closes when
// it has) and waits for it to go.
func killUnlessDone(cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
	default:
		_ = cmd.Process.Kill()
		<-done
	}
}
