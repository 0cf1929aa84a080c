package controlapi

import (
	"context"
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
