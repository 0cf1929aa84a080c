// Package tracing owns icnd's OpenTelemetry tracer provider: built from the
// standard OTEL_* environment (or [observability] otlp_endpoint), exporting
// over OTLP (HTTP/protobuf or gRPC) through a bounded queue that never
// blocks the node, and counting in Prometheus what it exported and what it
// dropped. With no endpoint it is a no-op provider and costs nothing.
//
// It is the only place that reads OTEL_* variables; the node and the
// protocols take a trace.TracerProvider and never look at the environment.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "icn-node"

// Queue defaults (the OTEL_BSP_* variables override them).
const (
	DefaultMaxQueue      = 2048
	DefaultBatch         = 512
	DefaultScheduleDelay = 5 * time.Second
	DefaultExportTimeout = 30 * time.Second
)

// Config says where spans go and what the resource is.
type Config struct {
	// Endpoint is the [observability] otlp_endpoint setting: the OTLP
	// base URL ("http://collector:4318"), used when the environment names
	// none. Empty with no OTEL_EXPORTER_OTLP_ENDPOINT: tracing is off.
	Endpoint string
	// Getenv reads the environment; nil means no variable is set.
	Getenv func(string) string
	// ServiceName is the default service.name; empty means
	// DefaultServiceName. OTEL_SERVICE_NAME overrides it.
	ServiceName string
	// Version is service.version.
	Version string
	// Attributes are added to the resource (the node's DID).
	Attributes []attribute.KeyValue
	// Registerer receives the icn_tracing_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger is told, at most once a minute, that export fails.
	Logger *slog.Logger
}

func (c Config) env(k string) string {
	if c.Getenv == nil {
		return ""
	}
	return strings.TrimSpace(c.Getenv(k))
}

// settings is what the environment and the config resolve to.
type settings struct {
	on       bool
	why      string // when off
	endpoint string // from the config file; "" when the environment has one
	fromEnv  string // the environment variable that named the endpoint
	protocol string
	queue    queueOptions
}

// Env names the error of a bad OTEL_* variable.
type EnvError struct {
	Var, Value, Want string
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("%s=%q is not valid: want %s", e.Var, e.Value, e.Want)
}

// resolve reads and checks the settings.
func (c Config) resolve() (settings, error) {
	s := settings{queue: queueOptions{maxQueue: DefaultMaxQueue, batch: DefaultBatch, delay: DefaultScheduleDelay, timeout: DefaultExportTimeout}}
	if v := c.env("OTEL_SDK_DISABLED"); strings.EqualFold(v, "true") {
		s.why = "OTEL_SDK_DISABLED=true"
		return s, nil
	}
	switch v := c.env("OTEL_TRACES_EXPORTER"); strings.ToLower(v) {
	case "", "otlp":
	case "none":
		s.why = "OTEL_TRACES_EXPORTER=none"
		return s, nil
	default:
		return s, &EnvError{"OTEL_TRACES_EXPORTER", v, `"otlp" or "none"`}
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := c.env(k); v != "" {
			if err := checkURL(v); err != nil {
				return s, &EnvError{k, v, "a URL such as http://collector:4318 (" + err.Error() + ")"}
			}
			s.fromEnv = k
			break
		}
	}
	if s.fromEnv == "" {
		if c.Endpoint == "" {
			s.why = "no OTEL_EXPORTER_OTLP_ENDPOINT and no observability.otlp_endpoint"
			return s, nil
		}
		if err := checkURL(c.Endpoint); err != nil {
			return s, fmt.Errorf("observability.otlp_endpoint %q: want a URL such as http://collector:4318 (%v)", c.Endpoint, err)
		}
		s.endpoint = c.Endpoint
	}
	s.protocol = "http/protobuf"
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := c.env(k); v != "" {
			if v != "grpc" && v != "http/protobuf" {
				return s, &EnvError{k, v, `"http/protobuf" or "grpc" (http/json is not supported)`}
			}
			s.protocol = v
			break
		}
	}
	if err := checkSampler(c.env("OTEL_TRACES_SAMPLER"), c.env("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return s, err
	}
	ints := []struct {
		k   string
		dst *int
	}{{"OTEL_BSP_MAX_QUEUE_SIZE", &s.queue.maxQueue}, {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &s.queue.batch}}
	for _, i := range ints {
		if v := c.env(i.k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return s, &EnvError{i.k, v, "a positive integer"}
			}
			*i.dst = n
		}
	}
	s.queue.batch = min(s.queue.batch, s.queue.maxQueue)
	ms := []struct {
		k   string
		dst *time.Duration
	}{{"OTEL_BSP_SCHEDULE_DELAY", &s.queue.delay}, {"OTEL_BSP_EXPORT_TIMEOUT", &s.queue.timeout}}
	for _, m := range ms {
		if v := c.env(m.k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return s, &EnvError{m.k, v, "a positive number of milliseconds"}
			}
			*m.dst = time.Duration(n) * time.Millisecond
		}
	}
	s.on = true
	return s, nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("the scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

func checkSampler(name, arg string) error {
	switch name {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return nil // the SDK's default ratio, 1.0
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return &EnvError{"OTEL_TRACES_SAMPLER_ARG", arg, "a ratio from 0 to 1"}
		}
		return nil
	default:
		return &EnvError{"OTEL_TRACES_SAMPLER", name, "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"}
	}
}

// Check validates the settings as Setup would, without building anything:
// for --check-config. It returns a line that says whether tracing is on and
// where spans go.
func Check(c Config) (string, error) {
	s, err := c.resolve()
	if err != nil {
		return "", err
	}
	return s.describe(), nil
}

func (s settings) describe() string {
	if !s.on {
		return "tracing: off (" + s.why + ")"
	}
	where := s.endpoint
	if s.fromEnv != "" {
		where = "the endpoint in " + s.fromEnv
	}
	return fmt.Sprintf("tracing: on, OTLP %s to %s", s.protocol, where)
}

// Provider is the tracer provider of a process. Shutdown flushes it.
type Provider struct {
	trace.TracerProvider
	sdk  *sdktrace.TracerProvider
	desc string
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// String says whether tracing is on and where spans go.
func (p *Provider) String() string { return p.desc }

// Shutdown exports what is queued (until ctx ends) and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// ForceFlush exports what is queued now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Setup builds the provider. Nothing connects to the collector here: the
// exporter dials on its first export, and an unreachable collector costs
// dropped spans (counted), never a blocked or slower node.
func Setup(ctx context.Context, c Config) (*Provider, error) {
	s, err := c.resolve()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(c.Registerer)
	if err != nil {
		return nil, err
	}
	if !s.on {
		return &Provider{TracerProvider: noop.NewTracerProvider(), desc: s.describe()}, nil
	}
	exp, err := newExporter(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := append([]attribute.KeyValue{
		attribute.String("service.name", name),
		attribute.String("service.version", c.Version),
	}, c.Attributes...)
	// Later options win: the environment (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES) overrides the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(),
		resource.WithDetectors(envDetector{c}))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := newQueue(exp, s.queue, m, log)
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(q),
		sdktrace.WithSampler(sampler(c.env("OTEL_TRACES_SAMPLER"), c.env("OTEL_TRACES_SAMPLER_ARG"))))
	return &Provider{TracerProvider: tp, sdk: tp, desc: s.describe()}, nil
}

func newExporter(ctx context.Context, s settings) (sdktrace.SpanExporter, error) {
	if s.protocol == "grpc" {
		var opts []otlptracegrpc.Option
		if s.endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(s.endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	var opts []otlptracehttp.Option
	if s.endpoint != "" {
		// Like OTEL_EXPORTER_OTLP_ENDPOINT, the setting is the base URL.
		u := strings.TrimSuffix(s.endpoint, "/")
		if !strings.HasSuffix(u, "/v1/traces") {
			u += "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	}
	return otlptracehttp.New(ctx, opts...)
}

// sampler is the SDK's reading of OTEL_TRACES_SAMPLER, checked already by
// resolve; the default is parent-based always-on.
func sampler(name, arg string) sdktrace.Sampler {
	ratio := 1.0
	if f, err := strconv.ParseFloat(arg, 64); err == nil {
		ratio = f
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// envDetector is resource.WithFromEnv reading Config.Getenv rather than
// the process environment (tests run several nodes in one process).
type envDetector struct{ c Config }

func (d envDetector) Detect(context.Context) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	for _, kv := range strings.Split(d.c.env("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			continue
		}
		if uv, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
			v = uv
		}
		attrs = append(attrs, attribute.String(strings.TrimSpace(k), v))
	}
	if name := d.c.env("OTEL_SERVICE_NAME"); name != "" {
		attrs = append(attrs, attribute.String("service.name", name))
	}
	return resource.NewSchemaless(attrs...), nil
}
