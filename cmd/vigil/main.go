// Command vigil is the Vigil FHIR R4 server and HL7 v2 bridge for connected medical
// devices. Subcommands:
//
//	vigil serve     run the server (FHIR REST API, health and metrics)
//	vigil migrate   create or upgrade the database schema and exit
//	vigil bench     load-test a running server
//	vigil simulate  stream simulated vital signs to the ingest API
//	vigil conformance run  run TestScripts against a FHIR server
//	vigil version   print the version
//
// Every flag has a VIGIL_* environment variable; flags win over variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vigil:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks errors caused by bad command-line input (exit status 2).
type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

const usage = `Usage: vigil <command> [flags]

Commands:
  serve     run the FHIR server
  migrate   create or upgrade the database schema
  bench     load-test a running server: bench crud|ingest|mllp -h
  simulate  stream simulated bedside-monitor vitals to the ingest API
  conformance run TestScripts against a FHIR server (vigil conformance run -h)
  hl7       send HL7 v2 message files over MLLP (vigil hl7 send -h)
  version   print the version

Run 'vigil <command> -h' for the flags of a command.
`

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "bench":
		if len(args) > 1 && args[1] == "mllp" {
			return runBenchMLLP(ctx, args[2:], stdout, stderr)
		}
		return runBench(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args[1:], stdout, stderr)
	case "conformance":
		return runConformance(ctx, args[1:], stdout, stderr)
	case "hl7":
		return runHL7(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "vigil", version())
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", args[0])}
}

func newLogger(w io.Writer, level string, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format must be json or text, got %q", format)}
}
