package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClientSaysWhenDaemonIsNotRunning(t *testing.T) {
	dir := t.TempDir()
	c := NewClient(SocketPath(dir))
	_, err := c.Status(context.Background())
	require.ErrorIs(t, err, ErrDaemonNotRunning)
	require.Contains(t, err.Error(), filepath.Join(dir, SocketName))

	// A stale socket file nobody listens on is "not running" too.
	ln, err := net.Listen("unix", SocketPath(dir))
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	_, err = os.Stat(SocketPath(dir))
	require.NoError(t, err)
	_, err = c.Status(context.Background())
	require.ErrorIs(t, err, ErrDaemonNotRunning)
}

func TestClientDecodesErrors(t *testing.T) {
	dir, err := os.MkdirTemp("", "capi")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", SocketPath(dir))
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RouteDial, func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &Error{Status: http.StatusBadRequest, Message: "bad address", Hint: "fix it"})
	})
	mux.HandleFunc("GET "+RouteStatus, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway) // not JSON
	})
	mux.HandleFunc("GET "+RoutePeers, func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, []Peer{{PeerID: "p", DID: "d", Addrs: []string{"a"}}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := NewClient(SocketPath(dir))
	_, err = c.Dial(context.Background(), DialRequest{Addr: "x"})
	var ce *Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, http.StatusBadRequest, ce.Status)
	require.Equal(t, "bad address", ce.Message)
	require.Equal(t, "fix it", ce.Hint)

	_, err = c.Status(context.Background())
	require.True(t, errors.As(err, &ce))
	require.Contains(t, ce.Message, "502")

	ps, err := c.Peers(context.Background())
	require.NoError(t, err)
	require.Equal(t, []Peer{{PeerID: "p", DID: "d", Addrs: []string{"a"}}}, ps)
}

// A progress stream delivers its progress lines, then the report; an error
// after the stream began arrives as an *Error; one before it, with its status
// and hint.
func TestProgressStream(t *testing.T) {
	dir, err := os.MkdirTemp("", "capi")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", SocketPath(dir))
	require.NoError(t, err)
	fail := ""
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RouteLedgerSync, func(w http.ResponseWriter, r *http.Request) {
		var req SyncRequest
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		if req.Peer == "nobody" {
			WriteError(w, &Error{Status: http.StatusNotFound, Message: "not connected to nobody", Hint: "dial it"})
			return
		}
		StreamProgress(w, func(progress func(done, total int)) (SyncReport, error) {
			for i := 0; i <= 4; i++ {
				progress(i, 4) // throttled: the first and the last get through
			}
			if fail != "" {
				return SyncReport{}, errors.New(fail)
			}
			return SyncReport{Peers: []SyncPeer{{PeerID: req.Peer, Received: 4, New: 4}}, Received: 4, New: 4}, nil
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := NewClient(SocketPath(dir))
	var calls [][2]int
	rep, err := c.Sync(context.Background(), SyncRequest{Peer: "p"}, func(r, a int) { calls = append(calls, [2]int{r, a}) })
	require.NoError(t, err)
	require.Equal(t, SyncReport{Peers: []SyncPeer{{PeerID: "p", Received: 4, New: 4}}, Received: 4, New: 4}, rep)
	require.Equal(t, [2]int{0, 4}, calls[0])
	require.Equal(t, [2]int{4, 4}, calls[len(calls)-1])
	require.Less(t, len(calls), 5, "progress is throttled")

	fail = "the disk is full"
	_, err = c.Sync(context.Background(), SyncRequest{Peer: "p"}, nil)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "the disk is full", ce.Message)

	_, err = c.Sync(context.Background(), SyncRequest{Peer: "nobody"}, nil)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusNotFound, ce.Status)
	require.Equal(t, "dial it", ce.Hint)

	_, err = NewClient(filepath.Join(dir, "nothing.sock")).Sync(context.Background(), SyncRequest{}, nil)
	require.ErrorIs(t, err, ErrDaemonNotRunning)
}
