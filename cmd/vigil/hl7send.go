package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-health/vigil/hl7v2/mllp"
)

// runHL7 is `vigil hl7 send --addr host:port FILE...`: it sends each file as one HL7 v2
// message over MLLP, waits for its acknowledgment and prints the code. It exits non-zero
// unless every message was accepted (AA or CA).
func runHL7(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "send" {
		fmt.Fprintln(stderr, "Usage: vigil hl7 send --addr 127.0.0.1:2575 [--timeout 10s] FILE...")
		return usageError{fmt.Errorf("hl7: want the send command")}
	}
	fs := flag.NewFlagSet("vigil hl7 send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2575", "MLLP address of the receiver")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for each acknowledgment")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("hl7 send: name at least one message file")}
	}
	c := mllp.NewClient(*addr, mllp.ClientOptions{Timeout: *timeout})
	defer c.Close()
	failed := 0
	for _, path := range fs.Args() {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Files keep one segment per line; HL7 separates segments with CR.
		raw = bytes.ReplaceAll(bytes.ReplaceAll(bytes.TrimSpace(raw), []byte("\r\n"), []byte("\r")), []byte("\n"), []byte("\r"))
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		ack, err := c.Send(sctx, raw)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: no acknowledgment: %v\n", path, err)
			continue
		}
		code := ack.Get("MSA-1")
		fmt.Fprintf(stdout, "%s: %s %s\n", path, code, ack.Get("MSA-2"))
		if code != "AA" && code != "CA" {
			failed++
			if e := ack.Get("ERR-3.2"); e != "" {
				fmt.Fprintf(stdout, "  error: %s (%s)\n", e, ack.Get("ERR-2"))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("hl7 send: %d of %d messages not accepted", failed, fs.NArg())
	}
	return nil
}
