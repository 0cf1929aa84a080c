package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intercooperative/icn/node/controlapi"
)

// subscriber is a running `icnctl gossip subscribe`.
type subscriber struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startSubscriber(t *testing.T, dataDir string, args ...string) *subscriber {
	t.Helper()
	cmd := exec.Command(bins.icnctl, append([]string{"--data-dir", dataDir, "gossip", "subscribe"}, args...)...)
	cmd.Env = withPass(passphrase)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	s := &subscriber{cmd: cmd, lines: make(chan string, 100), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { killUnlessDone(cmd, s.done) })
	require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), "subscribed to") },
		15*time.Second, 20*time.Millisecond, "icnctl never subscribed: %s", s.stderr)
	return s
}

func (s *subscriber) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		require.True(t, ok, "subscriber exited: %s", s.stderr)
		return l
	case <-time.After(20 * time.Second):
		t.Fatalf("no message within 20s; stderr: %s", s.stderr)
		return ""
	}
}

func (s *subscriber) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("icnctl gossip subscribe did not exit; stderr: %s", s.stderr)
	}
	if ee, ok := s.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(t, s.err)
	return 0
}

// ctlStdin runs icnctl with data on standard input.
func ctlStdin(t *testing.T, dataDir string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.icnctl, append([]string{"--data-dir", dataDir}, args...)...)
	cmd.Env = withPass(passphrase)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// `icnctl gossip subscribe` on one daemon prints what `icnctl gossip
// publish` sent on another; it exits 0 on Ctrl-C and 1 with a clear
// message when its daemon stops.
func TestGossipPublishSubscribeBetweenDaemons(t *testing.T) {
	dirA, dirB := tempDir(t), tempDir(t)
	initID(t, dirA)
	idB := initID(t, dirB)
	extra := "network_id = \"e2e\"\n[gossip]\nannounce_interval = \"500ms\"\n"
	cfgA, pa := writeConfig(t, dirA, "127.0.0.1:0", extra)
	cfgB, pb := writeConfig(t, dirB, "127.0.0.1:0", extra)
	a := startDaemon(t, dirA, cfgA, pa)
	startDaemon(t, dirB, cfgB, pb)
	sa := status(t, dirA)
	ok(t, dirB, "network", "dial", sa.ListenAddrs[0]+"/p2p/"+sa.PeerID)
	require.Eventually(t, func() bool { return hasPeer(peers(t, dirA), idB.PeerID, idB.DID) }, 10*time.Second, 100*time.Millisecond)

	const topic = "chat:e2e"
	jsonSub := startSubscriber(t, dirA, topic, "--json")
	textSub := startSubscriber(t, dirA, topic)
	require.Contains(t, jsonSub.stderr.String(), "icn/e2e/"+topic)

	// Had B not yet heard of A's subscription, A would still fetch the
	// message after B's next announce.
	pub := decode[controlapi.GossipPublished](t, ok(t, dirB, "gossip", "publish", topic, "hello from B", "--json"))
	require.Len(t, pub.ID, 64)
	require.Equal(t, topic, pub.Topic)
	require.NotZero(t, pub.Seq)

	var m controlapi.GossipMessage
	require.NoError(t, json.Unmarshal([]byte(jsonSub.line(t)), &m))
	require.Equal(t, pub.ID, m.ID)
	require.Equal(t, idB.DID, m.Author)
	require.Equal(t, "text/plain", m.Type)
	require.Equal(t, "hello from B", string(m.Data))
	require.Equal(t, "hello from B", m.Text)
	require.WithinDuration(t, time.Now(), m.Time, time.Minute)

	line := textSub.line(t)
	fields := strings.SplitN(line, " ", 3)
	require.Len(t, fields, 3, line)
	_, err := time.Parse("2006-01-02T15:04:05.000Z07:00", fields[0])
	require.NoError(t, err, line)
	require.Equal(t, idB.DID, fields[1])
	require.Equal(t, "hello from B", fields[2])

	// Standard input, binary data: text mode shows base64, the ID is printed.
	bin := []byte{0, 1, 2, 0xff}
	r := ctlStdin(t, dirB, bin, "gossip", "publish", topic, "-")
	require.Equal(t, 0, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.Len(t, id, 64)
	require.NoError(t, json.Unmarshal([]byte(jsonSub.line(t)), &m))
	require.Equal(t, id, m.ID)
	require.Equal(t, "application/octet-stream", m.Type)
	require.Equal(t, bin, m.Data)
	require.True(t, strings.HasSuffix(textSub.line(t), " base64:AAEC/w=="))

	// Both nodes list the topic; A has two local subscribers.
	// (Every node also joins ledger:*, where ledger state hashes go, and
	// trust:attestations.)
	var topics []controlapi.GossipTopic
	for _, tp := range decode[[]controlapi.GossipTopic](t, ok(t, dirA, "gossip", "topics", "--json")) {
		if tp.Topic != "ledger:*" && tp.Topic != "trust:attestations" {
			topics = append(topics, tp)
		}
	}
	require.Len(t, topics, 1)
	require.Equal(t, topic, topics[0].Topic)
	require.Equal(t, 2, topics[0].Subscribers)
	require.Equal(t, 1, topics[0].Peers)
	require.Contains(t, ok(t, dirB, "gossip", "topics"), topic)

	// Bad input: clear errors, exit 1.
	e := fail(t, dirB, "gossip", "publish", "bad/topic", "x")
	require.Contains(t, e.stderr, "'/'")
	require.Contains(t, e.stderr, "icnctl: hint:")
	e = fail(t, dirB, "gossip", "publish", topic, "{", "--type", "application/json")
	require.Contains(t, e.stderr, "not valid JSON")
	e = fail(t, dirB, "gossip", "publish", topic)
	require.Contains(t, e.stderr, "nothing to publish")
	e = fail(t, dirB, "gossip", "publish", topic, strings.Repeat("x", 70_000))
	require.Contains(t, e.stderr, "exceeds")

	// Ctrl-C ends a subscription cleanly.
	require.NoError(t, jsonSub.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 0, jsonSub.exitCode(t), jsonSub.stderr.String())

	// The daemon stopping ends the other one with a clear message.
	a.stop()
	require.Equal(t, 1, textSub.exitCode(t))
	require.Contains(t, textSub.stderr.String(), "icnctl: error: icnd ended the subscription")
	require.Contains(t, textSub.stderr.String(), "icnctl: hint:")
}
