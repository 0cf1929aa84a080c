package controlapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/intercooperative/icn/node/controlapi"
)

// The control socket lives in the node's data dir.
func ExampleSocketPath() {
	fmt.Println(controlapi.SocketPath("/var/lib/icn"))
	// Output: /var/lib/icn/icnd.sock
}

// A program that talks to the icnd running on a data dir: its status and
// the balances of its own DID. (Needs a running icnd, so it has no output
// to check.)
func ExampleNewClient() {
	c := controlapi.NewClient(controlapi.SocketPath("/var/lib/icn"))
	ctx, cancel := context.WithTimeout(context.Background(), controlapi.DefaultTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if errors.Is(err, controlapi.ErrDaemonNotRunning) {
		log.Fatalf("%v: start icnd first", err)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%d peers, ready %v)\n", st.DID, st.Peers, st.Ready)

	// Currencies are named by symbol in any letter case, or SYMBOL@ISSUER.
	bs, err := c.Balances(ctx, st.DID, "HOURS")
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range bs {
		fmt.Printf("%s %s (%d units)\n", b.Balance, b.Display, b.Units)
	}
}

// With nothing listening on the socket, every call fails with an error
// that matches ErrDaemonNotRunning and names the socket.
func ExampleClient_Status_notRunning() {
	dir, err := os.MkdirTemp("", "icn-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c := controlapi.NewClient(controlapi.SocketPath(dir))
	_, err = c.Status(context.Background())
	var nr *controlapi.NotRunningError
	fmt.Println(errors.Is(err, controlapi.ErrDaemonNotRunning), errors.As(err, &nr), filepath.Base(nr.Socket))
	// Output: true true icnd.sock
}

// A refusal arrives as an *Error: the HTTP status, the message and a hint
// that says what to do. Here a stand-in for icnd answers one route the
// way icnd does, with WriteError.
func ExampleError() {
	dir, err := os.MkdirTemp("", "icn-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", controlapi.SocketPath(dir))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+controlapi.RouteLedgerPay, func(w http.ResponseWriter, r *http.Request) {
		controlapi.WriteError(w, &controlapi.Error{Status: http.StatusNotFound, Message: `unknown currency "EURO"`,
			Hint: "create it with `icnctl ledger currency create EURO`"})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-done }()

	c := controlapi.NewClient(controlapi.SocketPath(dir))
	_, err = c.Pay(context.Background(), controlapi.PayRequest{To: "did:icn:z…", Amount: "5", Currency: "EURO"})
	var ce *controlapi.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Status)
		fmt.Println(ce.Message)
		fmt.Println(ce.Hint)
	}
	// Output:
	// 404
	// unknown currency "EURO"
	// create it with `icnctl ledger currency create EURO`
}
