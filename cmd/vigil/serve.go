package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/hl7v2/mllp"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/server"
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// Every write decodes, indexes and encodes resources: with Go's default (100) the
		// collector took 15 % of the server's CPU under load. 400 trades a heap a few
		// times the live data (tens of MB) for a third of that work. GOGC overrides it.
		debug.SetGCPercent(400)
	}
	st, err := fhirstore.Open(ctx, cfg.DatabaseURL, fhirstore.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	rules := alerts.DefaultRules()
	if cfg.AlertRules != "" {
		f, err := os.Open(cfg.AlertRules)
		if err != nil {
			return usageError{fmt.Errorf("--alert-rules: %w", err)}
		}
		rules, err = alerts.LoadRules(f)
		f.Close()
		if err != nil {
			return usageError{fmt.Errorf("--alert-rules %s: %w", cfg.AlertRules, err)}
		}
	}
	st.AddHook(server.NewAlertHook(rules, log))
	mctx, stopMaintenance := context.WithCancel(ctx)
	defer stopMaintenance()
	go st.Maintain(mctx, 5*time.Second)

	var dests []server.HL7Destination
	if cfg.HL7Destinations != "" {
		data, err := os.ReadFile(cfg.HL7Destinations)
		if err != nil {
			return usageError{fmt.Errorf("--hl7-destinations: %w", err)}
		}
		if dests, err = server.LoadHL7Destinations(data); err != nil {
			return usageError{fmt.Errorf("--hl7-destinations %s: %w", cfg.HL7Destinations, err)}
		}
	}
	// The bridge's outbound hook is added after the alert hook, so alerts raised by a
	// reading are written before its outbound message.
	bridge, err := server.NewHL7Bridge(st, server.HL7Config{Logger: log, MaxBatch: int(cfg.MLLPBatch),
		Destinations: dests, DatabaseURL: cfg.DatabaseURL})
	if err != nil {
		return usageError{fmt.Errorf("--hl7-destinations: %w", err)}
	}

	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	var ml net.Listener
	if cfg.MLLPAddr != "off" {
		if ml, err = net.Listen("tcp", cfg.MLLPAddr); err != nil {
			l.Close()
			return fmt.Errorf("--mllp-addr: %w", err)
		}
	}
	base := cfg.BaseURL
	if base == "" {
		base = "http://" + l.Addr().String()
	}
	srv := server.New(st, server.Config{BaseURL: strings.TrimRight(base, "/"), MaxBodyBytes: cfg.MaxBodyBytes, Logger: log,
		Ingest: server.IngestConfig{CreatePatients: cfg.CreatePatients}})
	srv.RegisterHL7Admin(bridge)
	bridge.Start()

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	if cfg.DebugAddr != "" {
		dl, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		ds := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		defer ds.Close()
		go ds.Serve(dl)
		log.Info("serving runtime profiles", "debug_addr", dl.Addr().String())
	}
	var ms *mllp.Server
	mllpAddr := "off"
	if ml != nil {
		ms = &mllp.Server{Handler: bridge, Logger: log, MaxConnections: int(cfg.MLLPMaxConnections)}
		mllpAddr = ml.Addr().String()
		go func() {
			if err := ms.Serve(ml); err != nil && !errors.Is(err, mllp.ErrServerClosed) {
				errc <- fmt.Errorf("mllp: %w", err)
			}
		}()
	}
	log.Info("vigil serving", "http_addr", l.Addr().String(), "fhir_base", srv.FHIRBase(), "mllp_addr", mllpAddr,
		"hl7_destinations", len(dests), "backend", st.Backend(), "auth", cfg.Auth, "version", version())

	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight messages and requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Order: stop accepting MLLP and answer the messages in hand (their commits done),
	// then stop the committers and the outbound senders, then HTTP.
	if ms != nil {
		if err := ms.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("mllp shutdown cut short", "err", err)
		}
	}
	bridge.Close()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if serveErr != nil {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	ef := &envFlags{fs: fs}
	ef.String(&cfg.DatabaseURL, "database-url", "VIGIL_DATABASE_URL", "sqlite:./vigil-data/vigil.db", "database: sqlite:path or postgres://...")
	ef.String(&cfg.LogLevel, "log-level", "VIGIL_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	ef.String(&cfg.LogFormat, "log-format", "VIGIL_LOG_FORMAT", "json", "log format: json or text")
	if ef.err != nil {
		return ef.err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	st, err := fhirstore.OpenNoMigrate(cfg.DatabaseURL, fhirstore.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	before, err := st.AppliedVersion(ctx)
	if err != nil {
		return err
	}
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d (was %d)\n", fhirstore.SchemaVersion(), before)
	return nil
}

// debugMux serves Go's runtime profiles under /debug/pprof/.
func debugMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
