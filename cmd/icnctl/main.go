// Command icnctl controls an ICN node: it manages the identity keystore
// directly and talks to a running icnd over its control socket.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/fsowner"
	"github.com/intercooperative/icn/internal/passphrase"
	"github.com/intercooperative/icn/internal/tracing"
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
	// args are icnctl's arguments, for hints that repeat the command.
	args []string
}

// run executes icnctl and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, pass: passphrase.FromProcess(), args: args}
	tp, err := tracing.Setup(ctx, tracing.Config{Getenv: os.Getenv, ServiceName: "icnctl", Version: version.Version})
	if err != nil {
		a.printError(fmt.Errorf("%w (unset it, or fix it, to run icnctl)", err))
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
		defer cancel()
		_ = tp.Shutdown(sctx) // a collector that is not there must not fail the command
	}()
	root := a.rootCmd()
	var span trace.Span
	if tp.Enabled() {
		// Each command is one trace: its requests to icnd carry it, so a
		// restore of many batches is one trace across both processes.
		root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
			var sctx context.Context
			sctx, span = tp.Tracer("github.com/intercooperative/icn/cmd/icnctl").Start(cmd.Context(), cmd.CommandPath())
			cmd.SetContext(sctx)
		}
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if err != nil {
		a.printError(err)
		return 1
	}
	return 0
}

// tracingFlushTimeout bounds how long icnctl waits, at exit, for the
// collector to take its spans.
const tracingFlushTimeout = 2 * time.Second

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
	root.AddCommand(a.idCmd(), a.statusCmd(), a.networkCmd(), a.gossipCmd(), a.ledgerCmd(), a.gatewayCmd(), a.trustCmd())
	usageOnArgErrors(root)
	return root
}

// usageOnArgErrors makes a wrong number of arguments, on c and every command
// below it, an error whose hint is the command's usage line.
func usageOnArgErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		usageOnArgErrors(sub)
	}
	check := c.Args
	if check == nil {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		var h *hinted
		if err == nil || errors.As(err, &h) {
			return err
		}
		return withHint(err, "usage: "+cmd.UseLine()+" (`"+cmd.CommandPath()+" --help` explains each)")
	}
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
	socket := controlapi.SocketPath(dir)
	v, err := fn(controlapi.NewClient(socket), ctx)
	if errors.Is(err, fs.ErrPermission) {
		return v, a.socketAccessError(socket, dir, err)
	}
	return v, err
}

// socketAccessError explains a control socket this user may not connect
// to: it names the user owning it (or the data dir above it), and the
// command to run as that user.
func (a *app) socketAccessError(socket, dir string, err error) error {
	owner, at := fsowner.Of(socket)
	me := fsowner.Current()
	switch {
	case owner == "":
		return withHint(err, "check the permissions of "+socket+" and the directories above it")
	case owner == me:
		return withHint(fmt.Errorf("%w (%s is yours, but closed)", err, at),
			"`chmod 700 "+dir+"`; icnd makes icnd.sock 0600 for its own user")
	}
	args := a.args
	if !slices.ContainsFunc(args, func(s string) bool {
		return s == "--data-dir" || strings.HasPrefix(s, "--data-dir=") || s == "--config" || strings.HasPrefix(s, "--config=")
	}) {
		args = append([]string{"--data-dir", dir}, args...)
	}
	quoted := make([]string, len(args))
	for i, s := range args {
		quoted[i] = shellQuote(s)
	}
	return withHint(fmt.Errorf("%w (%s belongs to %s; icnctl runs as %s)", err, at, owner, me),
		fmt.Sprintf("icnd's control socket answers its own user only: `sudo -u %s icnctl %s`", owner, strings.Join(quoted, " ")))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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

func (a *app) printError(err error) {
	fmt.Fprintf(a.stderr, "icnctl: error: %s\n", err)
	if hint := a.hintFor(err); hint != "" {
		fmt.Fprintf(a.stderr, "icnctl: hint: %s\n", hint)
	}
}

func (a *app) hintFor(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	var hinter interface{ Hint() string } // such as *did.AccessError
	if errors.As(err, &hinter) {
		return hinter.Hint()
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
		return a.pass.WrongHint()
	case errors.Is(err, did.ErrNoKeystore):
		return "run `icnctl id init`, or pass the --data-dir that holds identity.age"
	case errors.Is(err, passphrase.ErrNoPassphrase):
		return "export " + passphrase.EnvVar + "=… or run icnctl in a terminal"
	}
	return ""
}
