// Command wallet is a small member wallet for an ICN node's Gateway API,
// built on node/gateway/client: it keeps a member's Ed25519 key in a local
// file, signs in to a node with it, pays by signing ledger entries itself,
// and watches a balance over Server-Sent Events. The key never leaves this
// program. It is an example for cooperative developers (docs/gateway.md),
// not a hardened wallet: the key file is plain (mode 0600); keep real keys
// encrypted.
//
//	wallet -key alice.key keygen
//	wallet -key alice.key did
//	wallet -key alice.key sign TEXT            # base64 signature, for curl
//	wallet -key alice.key sign-bytes BASE64    # the same over decoded bytes
//	wallet -key alice.key -gateway URL pay TO UNITS SYMBOL ISSUER [MEMO]
//	wallet -key alice.key -gateway URL balance SYMBOL
//	wallet -key alice.key -gateway URL watch SYMBOL
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/ledger"
	"github.com/intercooperative/icn/node/gateway/client"
	"github.com/intercooperative/icn/node/gatewayapi"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wallet: error:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fl := flag.NewFlagSet("wallet", flag.ContinueOnError)
	keyPath := fl.String("key", "wallet.key", "the member key file (hex Ed25519 seed)")
	gw := fl.String("gateway", "http://127.0.0.1:8080", "the node's gateway (its health listener)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		return errors.New("give a command: keygen, did, sign, sign-bytes, pay, balance or watch")
	}
	cmd, rest := fl.Arg(0), fl.Args()[1:]
	if cmd == "keygen" {
		return keygen(*keyPath, out)
	}
	key, me, err := load(*keyPath)
	if err != nil {
		return err
	}
	switch cmd {
	case "did":
		fmt.Fprintln(out, me)
		return nil
	case "sign":
		if len(rest) != 1 {
			return errors.New("usage: sign TEXT")
		}
		fmt.Fprintln(out, base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(rest[0]))))
		return nil
	case "sign-bytes":
		if len(rest) != 1 {
			return errors.New("usage: sign-bytes BASE64")
		}
		msg, err := base64.StdEncoding.DecodeString(rest[0])
		if err != nil {
			return fmt.Errorf("not base64: %w", err)
		}
		fmt.Fprintln(out, base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg)))
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c := client.New(*gw, nil)
	if _, err := c.Login(ctx, me, key); err != nil {
		return err
	}
	switch cmd {
	case "pay":
		if len(rest) < 4 {
			return errors.New("usage: pay TO UNITS SYMBOL ISSUER [MEMO]")
		}
		to, err := did.Parse(rest[0])
		if err != nil {
			return err
		}
		units, err := strconv.ParseInt(rest[1], 10, 64)
		if err != nil {
			return fmt.Errorf("units %q: %w", rest[1], err)
		}
		issuer, err := did.Parse(rest[3])
		if err != nil {
			return err
		}
		memo := strings.Join(rest[4:], " ")
		s, err := c.Pay(ctx, me, key, client.Transfer{To: to, Currency: ledger.CurrencyID{Symbol: rest[2], Issuer: issuer}, Units: units, Memo: memo})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s seq %d %s\n", s.CID, s.Seq, s.Status)
		return nil
	case "balance", "watch":
		if len(rest) != 1 {
			return fmt.Errorf("usage: %s SYMBOL", cmd)
		}
		if err := printBalance(ctx, c, me, rest[0], out); err != nil || cmd == "balance" {
			return err
		}
		return watch(ctx, c, me, rest[0], out)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func keygen(path string, out io.Writer) error {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w (keygen never overwrites a key)", err)
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(seed)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, me, err := load(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, me)
	return nil
}

func load(path string) (ed25519.PrivateKey, did.DID, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, did.DID{}, fmt.Errorf("%w (make one with: wallet -key %s keygen)", err, path)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, did.DID{}, fmt.Errorf("%s does not hold a hex Ed25519 seed", path)
	}
	key := ed25519.NewKeyFromSeed(seed)
	me, err := did.FromPublicKey(key.Public().(ed25519.PublicKey))
	return key, me, err
}

func printBalance(ctx context.Context, c *client.Client, me did.DID, symbol string, out io.Writer) error {
	bs, err := c.Balances(ctx, me, symbol)
	if err != nil {
		return err
	}
	for _, b := range bs {
		fmt.Fprintf(out, "%s %s\n", b.Balance, b.Display)
	}
	return nil
}

// watch follows the currency's ledger topic and prints the balance again
// whenever an entry that names this member arrives.
func watch(ctx context.Context, c *client.Client, me did.DID, symbol string, out io.Writer) error {
	s, err := c.Events(ctx, "ledger:"+symbol, "")
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ev.Name == gatewayapi.EventEnd {
			return fmt.Errorf("the node ended the stream: %s", ev.Data)
		}
		if ev.Message == nil {
			continue
		}
		e, err := ledger.Decode(ev.Message.Data)
		if err != nil {
			continue // a state announcement, not an entry
		}
		for _, p := range e.Postings {
			if p.Account == me {
				if err := printBalance(ctx, c, me, symbol, out); err != nil {
					return err
				}
				break
			}
		}
	}
}
