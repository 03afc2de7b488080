package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/vigil-health/vigil/fhirstore"
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

	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	base := cfg.BaseURL
	if base == "" {
		base = "http://" + l.Addr().String()
	}
	srv := server.New(st, server.Config{BaseURL: strings.TrimRight(base, "/"), MaxBodyBytes: cfg.MaxBodyBytes, Logger: log,
		Ingest: server.IngestConfig{CreatePatients: cfg.CreatePatients}})

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("vigil serving", "http_addr", l.Addr().String(), "fhir_base", srv.FHIRBase(),
		"backend", st.Backend(), "auth", cfg.Auth, "version", version())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
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
