package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/server"
)

// serveConfig is the typed configuration of `vigil serve`.
type serveConfig struct {
	HTTPAddr        string
	MLLPAddr        string
	DatabaseURL     string
	Auth            string
	BaseURL         string
	MaxBodyBytes    int64
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	CreatePatients  bool
	AlertRules      string
	// HL7Destinations is a JSON file of outbound HL7 v2 destinations ("" for none).
	HL7Destinations string
	// MLLPBatch is how many inbound messages may share one commit.
	MLLPBatch int64
	// MLLPMaxConnections caps open MLLP connections (0: no cap).
	MLLPMaxConnections int64
	// DebugAddr serves Go's runtime profiles (/debug/pprof/) on a loopback address ("" off).
	DebugAddr string
}

// envFlags binds each flag to a VIGIL_* variable: the variable sets the default, the flag
// overrides it, and -h shows both.
type envFlags struct {
	fs  *flag.FlagSet
	err error
}

func (e *envFlags) env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}

func (e *envFlags) String(p *string, name, envName, def, help string) {
	if v, ok := e.env(envName); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, fmt.Sprintf("%s (env %s)", help, envName))
}

func (e *envFlags) Bool(p *bool, name, envName string, def bool, help string) {
	if v, ok := e.env(envName); ok {
		b, err := strconv.ParseBool(v)
		if err != nil && e.err == nil {
			e.err = usageError{fmt.Errorf("%s=%q: not a boolean", envName, v)}
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, fmt.Sprintf("%s (env %s)", help, envName))
}

func (e *envFlags) Int64(p *int64, name, envName string, def int64, help string) {
	if v, ok := e.env(envName); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil && e.err == nil {
			e.err = usageError{fmt.Errorf("%s=%q: not an integer", envName, v)}
		}
		def = n
	}
	e.fs.Int64Var(p, name, def, fmt.Sprintf("%s (env %s)", help, envName))
}

func (e *envFlags) Duration(p *time.Duration, name, envName string, def time.Duration, help string) {
	if v, ok := e.env(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil && e.err == nil {
			e.err = usageError{fmt.Errorf("%s=%q: not a duration", envName, v)}
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, fmt.Sprintf("%s (env %s)", help, envName))
}

func parseServeFlags(args []string, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("vigil serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{}
	ef := &envFlags{fs: fs}
	ef.String(&c.HTTPAddr, "http-addr", "VIGIL_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	ef.String(&c.MLLPAddr, "mllp-addr", "VIGIL_MLLP_ADDR", "127.0.0.1:2575", "MLLP (HL7 v2) listen address; off disables")
	ef.String(&c.DatabaseURL, "database-url", "VIGIL_DATABASE_URL", "sqlite:./vigil-data/vigil.db", "database: sqlite:path (embedded) or postgres://user@host:5432/db?sslmode=disable")
	ef.String(&c.Auth, "auth", "VIGIL_AUTH", "off", "SMART on FHIR authorization: on or off (off only for local development, refused on non-loopback addresses)")
	ef.String(&c.BaseURL, "base-url", "VIGIL_BASE_URL", "", "public base URL used in links and Location headers (default http://<http-addr>)")
	ef.Int64(&c.MaxBodyBytes, "max-body-bytes", "VIGIL_MAX_BODY_BYTES", 16<<20, "largest accepted request body in bytes (413 above)")
	ef.Duration(&c.ShutdownTimeout, "shutdown-timeout", "VIGIL_SHUTDOWN_TIMEOUT", 30*time.Second, "how long a graceful shutdown waits for in-flight requests")
	ef.String(&c.LogLevel, "log-level", "VIGIL_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	ef.String(&c.LogFormat, "log-format", "VIGIL_LOG_FORMAT", "json", "log format: json or text")
	ef.Bool(&c.CreatePatients, "ingest-create-patients", "VIGIL_INGEST_CREATE_PATIENTS", true, "let device ingest create a Patient for an unknown patient identifier (false: such readings are rejected)")
	ef.String(&c.AlertRules, "alert-rules", "VIGIL_ALERT_RULES", "", "JSON file of alert rules overriding the defaults (thresholds, NEWS2, window)")
	ef.String(&c.HL7Destinations, "hl7-destinations", "VIGIL_HL7_DESTINATIONS", "", "JSON file of outbound HL7 v2 destinations (name, addr, tls, filter such as Observation?category=vital-signs); none by default")
	ef.Int64(&c.MLLPBatch, "mllp-batch", "VIGIL_MLLP_BATCH", 64, "how many inbound MLLP messages, from any connections, may share one commit (1: a commit per message)")
	ef.Int64(&c.MLLPMaxConnections, "mllp-max-connections", "VIGIL_MLLP_MAX_CONNECTIONS", 0, "cap on open MLLP connections (0: no cap)")
	ef.String(&c.DebugAddr, "debug-addr", "VIGIL_DEBUG_ADDR", "", "loopback address serving Go runtime profiles at /debug/pprof/ for diagnosing load (off by default; loopback only, as profiles can hold request data)")
	if ef.err != nil {
		return nil, ef.err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("serve: unexpected arguments %v", fs.Args())}
	}
	return c, c.validate()
}

func (c *serveConfig) validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return usageError{fmt.Errorf("--http-addr %q: %v", c.HTTPAddr, err)}
	}
	if c.MLLPAddr != "off" {
		if _, _, err := net.SplitHostPort(c.MLLPAddr); err != nil {
			return usageError{fmt.Errorf("--mllp-addr %q: %v (or off)", c.MLLPAddr, err)}
		}
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return usageError{fmt.Errorf("--database-url must start with sqlite: or postgres://")}
	}
	switch c.Auth {
	case "on":
		return usageError{fmt.Errorf("--auth=on: SMART on FHIR authorization is not available in this build yet; run with --auth=off on a loopback address for local development")}
	case "off":
		host, _, _ := net.SplitHostPort(c.HTTPAddr)
		if !isLoopback(host) {
			return usageError{fmt.Errorf("--auth=off is refused on the non-loopback address %q: without authorization the API would serve patient data to anyone who can reach it; bind to 127.0.0.1", c.HTTPAddr)}
		}
		if c.MLLPAddr != "off" {
			mh, _, _ := net.SplitHostPort(c.MLLPAddr)
			if !isLoopback(mh) {
				return usageError{fmt.Errorf("--auth=off is refused with the non-loopback MLLP address %q", c.MLLPAddr)}
			}
		}
	default:
		return usageError{fmt.Errorf("--auth must be on or off, got %q", c.Auth)}
	}
	if c.MLLPBatch < 1 || c.MLLPBatch > 10000 {
		return usageError{fmt.Errorf("--mllp-batch must be between 1 and 10000")}
	}
	if c.MLLPMaxConnections < 0 {
		return usageError{fmt.Errorf("--mllp-max-connections must not be negative")}
	}
	if c.DebugAddr != "" {
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if err != nil {
			return usageError{fmt.Errorf("--debug-addr %q: %v", c.DebugAddr, err)}
		}
		if !isLoopback(host) {
			return usageError{fmt.Errorf("--debug-addr must be a loopback address (profiles can hold request data), got %q", c.DebugAddr)}
		}
	}
	if c.MaxBodyBytes <= 0 {
		return usageError{fmt.Errorf("--max-body-bytes must be positive")}
	}
	if c.BaseURL != "" && !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		return usageError{fmt.Errorf("--base-url must be an http:// or https:// URL")}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func version() string { return server.Version }
