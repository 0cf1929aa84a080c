// Command icnd is the ICN node daemon. It parses flags and the config file,
// unlocks the identity, and hands over to package node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	"github.com/intercooperative/icn/configs"
	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/internal/logging"
	"github.com/intercooperative/icn/internal/passphrase"
	"github.com/intercooperative/icn/internal/tracing"
	"github.com/intercooperative/icn/internal/version"
	"github.com/intercooperative/icn/node"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlserver"
	"github.com/intercooperative/icn/node/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	config      string
	dataDir     string
	logLevel    string
	logFormat   string
	checkConfig bool
	dev         bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	cmd := &cobra.Command{
		Use:   "icnd",
		Short: "ICN node daemon",
		Long: "icnd runs an ICN node: a libp2p host on QUIC with a DID identity, a control socket for icnctl,\n" +
			"health endpoints and Prometheus metrics. The keystore passphrase comes from\n" +
			passphrase.EnvVar + " (or the legacy " + passphrase.LegacyEnvVar + "), else a terminal prompt.",
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return daemon(cmd, f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "TOML config file (see configs/config.example.toml)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (overrides data_dir; default $XDG_DATA_HOME/icn or ~/.local/share/icn)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug|info|warn|error (overrides observability.log_level)")
	fl.StringVar(&f.logFormat, "log-format", "", "text|json (overrides observability.log_format)")
	fl.BoolVar(&f.checkConfig, "check-config", false, "validate the configuration, print the effective config, and exit")
	fl.BoolVar(&f.dev, "dev", false, "development mode: built-in dev config, a dev keystore created on first run with a public passphrase")
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetVersionTemplate("icnd {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w (see icnd --help)", err)
	})
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(stderr, "icnd: error: %s\n", err)
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			fmt.Fprintf(stderr, "icnd: hint: %s\n", h.Hint())
		}
		return 1
	}
	return 0
}

// gatewaySecret is the Gateway API's token secret and where it came from
// (config.GatewaySecretEnv or a file's path); both empty when none is
// configured.
type gatewaySecret struct {
	secret []byte
	source string
}

// loadConfig applies defaults < file < flags, resolves the data dir and
// loads the gateway secret.
func loadConfig(f flags) (config.Config, gatewaySecret, error) {
	cfg, err := loadConfigFile(f)
	if err != nil {
		return cfg, gatewaySecret{}, err
	}
	// Loaded here, for --check-config and a start alike, so both refuse an
	// unreadable file or a short secret with the same words; checked even
	// with the gateway turned off, so turning it on later holds no surprise.
	secret, source, err := config.LoadGatewaySecret(cfg.Gateway, os.Getenv, os.ReadFile)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && f.config != "" {
			return cfg, gatewaySecret{}, fmt.Errorf("config %s: %w", f.config, err)
		}
		return cfg, gatewaySecret{}, err
	}
	return cfg, gatewaySecret{secret: secret, source: source}, nil
}

// tracingFlushTimeout bounds how long a stopping icnd waits for the
// collector to take the spans still queued.
const tracingFlushTimeout = 5 * time.Second

// tracingConfig is what internal/tracing reads: the setting, the process
// environment and the version.
func tracingConfig(cfg config.Config) tracing.Config {
	return tracing.Config{Endpoint: cfg.Observability.OTLPEndpoint, Getenv: os.Getenv, Version: version.Version}
}

// gatewayLine says, for --check-config, whether the gateway will be served
// and where its secret comes from; never the secret.
func gatewayLine(cfg config.Config, gs gatewaySecret) string {
	if _, why := cfg.GatewayOff(gs.secret != nil); why != "" {
		return "# gateway: off: " + why
	}
	return "# gateway: on, under /v1/ on the health listener; secret from " + gs.source
}

func loadConfigFile(f flags) (config.Config, error) {
	cfg := config.Default()
	var err error
	switch {
	case f.config != "":
		if cfg, err = config.Load(f.config); err != nil {
			return cfg, err
		}
	case f.dev:
		if cfg, err = config.Parse(configs.Dev); err != nil {
			return cfg, fmt.Errorf("built-in dev config: %w", err)
		}
	}
	if f.logLevel != "" {
		cfg.Observability.LogLevel = strings.ToLower(f.logLevel)
	}
	if f.logFormat != "" {
		cfg.Observability.LogFormat = strings.ToLower(f.logFormat)
	}
	if cfg.DataDir, err = config.ResolveDataDir(f.dataDir, cfg.DataDir); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && (ce.Key == "observability.log_level" || ce.Key == "observability.log_format") {
			return cfg, fmt.Errorf("%w (from --%s or the config file)", err, flagName(ce.Key))
		}
		return cfg, err
	}
	// What names things on this host is checked here, for --check-config
	// and for a start alike, so both refuse a file with the same words.
	if err := cfg.CheckHost(); err != nil {
		if f.config != "" {
			return cfg, fmt.Errorf("config %s: %w", f.config, err)
		}
		return cfg, err
	}
	return cfg, nil
}

func flagName(key string) string {
	if key == "observability.log_format" {
		return "log-format"
	}
	return "log-level"
}

func daemon(cmd *cobra.Command, f flags, stdout, stderr io.Writer) error {
	cfg, gs, err := loadConfig(f)
	if f.checkConfig {
		if err != nil {
			return fmt.Errorf("config is not valid: %w", err)
		}
		out, err := cfg.Encode()
		if err != nil {
			return err
		}
		tl, err := tracing.Check(tracingConfig(cfg))
		if err != nil {
			return fmt.Errorf("config is not valid: %w", err)
		}
		fmt.Fprintln(stdout, "# effective configuration (defaults < config file < flags); valid")
		fmt.Fprintln(stdout, gatewayLine(cfg, gs))
		fmt.Fprintln(stdout, "# "+tl)
		_, err = stdout.Write(out)
		return err
	}
	if err != nil {
		return err
	}
	// A bad OTEL_* variable stops the start, as a bad setting does.
	if _, err := tracing.Check(tracingConfig(cfg)); err != nil {
		return err
	}
	level, err := config.ParseLogLevel(cfg.Observability.LogLevel)
	if err != nil {
		return err // Validate has already refused it
	}
	log := logging.New(stderr, level, cfg.Observability.LogFormat)
	// go-libp2p reports some start-up errors through slog's default logger,
	// and logs through gologshim otherwise: send both to our handler.
	slog.SetDefault(log)
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		gologshim.SetDefaultHandler(logging.Libp2pHandler(log.Handler()))
		golog.SetPrimaryCore(logging.GoLogCore(logging.Libp2pHandler(log.Handler())))
	}

	if err := config.EnsureDataDir(cfg.DataDir); err != nil {
		return err
	}
	// node logs its own warning, with the sysctl to run, when UDP buffers
	// are too small; quic-go's would only repeat it less helpfully.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	id, ks, err := unlock(cfg, f.dev, log)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := node.NewRegistry()
	tc := tracingConfig(cfg)
	tc.Registerer, tc.Logger = reg, log
	tc.Attributes = []attribute.KeyValue{attribute.String("service.instance.id", id.DID.String()), attribute.String("icn.did", id.DID.String())}
	tp, err := tracing.Setup(ctx, tc)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans still queued at exit were not exported", "err", err)
		}
	}()
	opts := node.Options{Config: cfg, Identity: id, Keystore: ks, Logger: log, Registry: reg, Control: controlserver.Handler(log),
		GatewaySecret: gs.secret, Gateway: gateway.Handler(log)}
	if tp.Enabled() {
		log.Info(tp.String())
		opts.TracerProvider = tp
		// The one global: the Kademlia DHT makes its spans with otel's
		// global provider, so its lookups show up in the same traces.
		otel.SetTracerProvider(tp)
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Debug("opentelemetry", "err", err) }))
	}
	n, err := node.New(ctx, opts)
	if err != nil {
		return err
	}
	// Unlocking (scrypt: 256 MiB) and replaying the ledger leave garbage
	// far larger than what the node keeps; hand it back to the OS now
	// rather than whenever the collector next runs.
	debug.FreeOSMemory()
	// The soft memory limit is process-wide policy, so it lives here and
	// not in package node (tests run many nodes in one process).
	limiterCtx, stopLimiter := context.WithCancel(context.Background())
	limiterDone := make(chan struct{})
	go func() {
		defer close(limiterDone)
		_ = memoryLimiter{fixed: int64(cfg.Limits.MemorySoftLimitMB) << 20, log: log}.Run(limiterCtx)
	}()
	defer func() { stopLimiter(); <-limiterDone }()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("stopping (a second signal exits at once)", "timeout", node.ShutdownTimeout)
		stop()
		second := make(chan os.Signal, 1)
		signal.Notify(second, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(second)
		select {
		case err = <-errc:
		case sig := <-second:
			log.Warn("second signal: exiting without a clean stop", "signal", sig.String())
			os.Exit(130)
		}
	}
	if err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// unlock opens the keystore. In dev mode a missing keystore is created with
// the public dev passphrase, and a loud warning is logged.
func unlock(cfg config.Config, dev bool, log *slog.Logger) (*did.Identity, did.Keystore, error) {
	ks := did.Open(cfg.DataDir)
	src := passphrase.FromProcess()
	if dev {
		pass, ok := src.FromEnv()
		if !ok {
			pass = configs.DevPassphrase
			log.Warn("DEVELOPMENT MODE: the keystore uses the public dev passphrase; nothing this node holds is secret. Never use --dev in production.",
				"passphrase", configs.DevPassphrase, "data_dir", cfg.DataDir)
		}
		exists, err := ks.Exists()
		if err != nil {
			return nil, ks, err
		}
		if !exists {
			id, err := ks.Create(pass, time.Now())
			if err != nil {
				return nil, ks, err
			}
			log.Warn("DEVELOPMENT MODE: created a dev identity", "did", id.DID, "keystore", ks.Path)
			return id, ks, nil
		}
		id, err := ks.Unlock(pass)
		if errors.Is(err, did.ErrWrongPassphrase) {
			hint := src.WrongHint()
			if _, fromEnv := src.FromEnv(); !fromEnv {
				hint = "this keystore was not made with the dev passphrase: set " + passphrase.EnvVar + " to its own; the keystore was not changed"
			}
			return nil, ks, &hinted{err: err, hint: hint}
		}
		return id, ks, err
	}
	exists, err := ks.Exists()
	if err != nil {
		return nil, ks, err
	}
	if !exists {
		return nil, ks, fmt.Errorf("%w at %s: create one with `icnctl --data-dir %s id init`", did.ErrNoKeystore, ks.Path, cfg.DataDir)
	}
	pass, err := src.Get("Keystore passphrase: ", false)
	if err != nil {
		return nil, ks, fmt.Errorf("%w (set %s for unattended starts)", err, passphrase.EnvVar)
	}
	id, err := ks.Unlock(pass)
	if errors.Is(err, did.ErrWrongPassphrase) {
		return nil, ks, &hinted{err: err, hint: src.WrongHint()}
	}
	return id, ks, err
}

// hinted is an error with a next step, printed as `icnd: hint: …`.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }
func (h *hinted) Hint() string  { return h.hint }
