// Command icnctl controls an ICN node: it manages the identity keystore
// directly and talks to a running icnd over its control socket.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/passphrase"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app holds the global flags and the streams; subcommands read them.
type app struct {
	dataDirFlag string
	configFlag  string
	jsonOut     bool
	// drewProgress is set while a progress line is on the terminal.
	drewProgress bool
	stdout       io.Writer
	stderr       io.Writer
	pass         passphrase.Source
}

// run executes icnctl and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, pass: passphrase.FromProcess()}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "icnctl",
		Short:         "Control an ICN node",
		Long:          "icnctl manages an ICN node's identity and talks to a running icnd over its control socket ({data_dir}/icnd.sock).",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dataDirFlag, "data-dir", "", "data directory (default: data_dir from --config, else $XDG_DATA_HOME/icn or ~/.local/share/icn)")
	root.PersistentFlags().StringVar(&a.configFlag, "config", "", "icnd config file, read only for its data_dir")
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print JSON instead of text")
	root.SetVersionTemplate("icnctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &hinted{err: err, hint: fmt.Sprintf("see `%s --help`", c.CommandPath())}
	})
	root.AddCommand(a.idCmd(), a.statusCmd(), a.networkCmd(), a.gossipCmd(), a.ledgerCmd())
	return root
}

// group returns a command that only holds subcommands: run bare it prints
// help, and an unknown subcommand is an error.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return withHint(fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()),
					fmt.Sprintf("see `%s --help`", cmd.CommandPath()))
			}
			return cmd.Help()
		},
	}
}

// dataDir applies the shared data dir rule.
func (a *app) dataDir() (string, error) {
	var fromConfig string
	if a.configFlag != "" {
		cfg, err := config.Load(a.configFlag)
		if err != nil {
			return "", err
		}
		fromConfig = cfg.DataDir
	}
	return config.ResolveDataDir(a.dataDirFlag, fromConfig)
}

func (a *app) keystore() (did.Keystore, error) {
	dir, err := a.dataDir()
	if err != nil {
		return did.Keystore{}, err
	}
	return did.Open(dir), nil
}

// call runs one control-socket request against the daemon of the data dir,
// bounded by timeout.
func call[T any](a *app, ctx context.Context, timeout time.Duration, fn func(*controlapi.Client, context.Context) (T, error)) (T, error) {
	dir, err := a.dataDir()
	if err != nil {
		var zero T
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(controlapi.NewClient(controlapi.SocketPath(dir)), ctx)
}

// output prints v as indented JSON with --json, else calls text.
func (a *app) output(v any, text func(w io.Writer)) error {
	if a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

// hinted is an error with a next step for the user.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, hint string) error { return &hinted{err: err, hint: hint} }

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "icnctl: error: %s\n", err)
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "icnctl: hint: %s\n", hint)
	}
}

func hintFor(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	var ce *controlapi.Error
	if errors.As(err, &ce) && ce.Hint != "" {
		return ce.Hint
	}
	var nr *controlapi.NotRunningError
	if errors.As(err, &nr) {
		return "start it with `icnd --data-dir DIR`, or give icnctl the --data-dir icnd runs with"
	}
	switch {
	case errors.Is(err, did.ErrWrongPassphrase):
		return "check " + passphrase.EnvVar + " (or the passphrase you typed); the keystore was not changed"
	case errors.Is(err, did.ErrNoKeystore):
		return "run `icnctl id init`, or pass the --data-dir that holds identity.age"
	case errors.Is(err, passphrase.ErrNoPassphrase):
		return "export " + passphrase.EnvVar + "=… or run icnctl in a terminal"
	}
	return ""
}
