package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/hl7v2/mllp"
)

// pcd01SixOBX is the 6-OBX IHE PCD-01 ORU^R01 of testdata/hl7/pcd01_oru_r01_6obx.hl7 (an
// invented patient and monitor), the message `vigil bench mllp` sends by default.
var pcd01SixOBX = strings.Join([]string{
	`MSH|^~\&|VIGIL_MON^0012A1FFFE3C4D5E^EUI-64|ICU_WEST|VIGIL^^|VIGIL_HOSP|20261125093015+0000||ORU^R01^ORU_R01|PCD20261125093015002|P|2.6|||NE|AL||UNICODE UTF-8|EN^English^ISO639||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO`,
	`PID|||MRN0012345^^^VIGIL_HOSP&2.16.840.1.113883.3.9999&ISO^MR~998877665^^^USSSA^SS||Doe^Jane^Q^^^^L||19580214|F`,
	`PV1||I|ICU^W12^1^VIGIL_HOSP||||1234^Attending^Amy`,
	`OBR|1|PCD20261125093015001^VIGIL_MON^0012A1FFFE3C4D5E^EUI-64|PCD20261125093015001^VIGIL_MON^0012A1FFFE3C4D5E^EUI-64|182777000^monitoring of patient^SCT|||20261125093000+0000`,
	`OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|50-120||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
	`OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|90-100||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
	`OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.3.1.1|120|266016^MDC_DIM_MMHG^MDC|90-140||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
	`OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.3.1.2|80|266016^MDC_DIM_MMHG^MDC|60-90||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
	`OBX|5|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1|16|264928^MDC_DIM_RESP_PER_MIN^MDC|8-30||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
	`OBX|6|NM|150344^MDC_TEMP^MDC|1.5.1.1|37.20|268192^MDC_DIM_DEGC^MDC|36.0-38.0||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64`,
}, "\r") + "\r"

// runBenchMLLP is `vigil bench mllp`: c connections send a PCD-01 ORU^R01 back to back for
// a while, each with a fresh MSH-10, and it reports the acknowledged messages per second
// and the ACK latency percentiles. args are the flags after "mllp".
func runBenchMLLP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil bench mllp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2575", "MLLP address of the server")
	conns := fs.Int("c", 4, "concurrent connections")
	dur := fs.Duration("d", 20*time.Second, "duration")
	file := fs.String("message", "", "file holding the HL7 v2 message to send (default: the 6-OBX PCD-01 ORU^R01 fixture)")
	fresh := fs.Bool("fresh-readings", true, "give every message its own reading time (OBR-7, OBX-14), one second apart going back from now, so each stores new Observations; false resends the same readings, which the server recognises and stores once")
	patients := fs.Int("patients", 1000, "spread the messages over this many patients and monitors (MRN and EUI-64 of the default message varied), as a hospital's monitors would; 1 sends everything for one patient")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *conns < 1 || *dur <= 0 || *patients < 1 || *patients > 65536 {
		return usageError{fmt.Errorf("bench mllp: -c must be >= 1, -d > 0, --patients between 1 and 65536")}
	}
	text := pcd01SixOBX
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return usageError{fmt.Errorf("--message: %w", err)}
		}
		text = string(b)
	}
	run := fmt.Sprintf("B%d", time.Now().UnixNano()%1e10)
	start := time.Now()
	var seq atomic.Int64
	// build returns message n: a fresh MSH-10 and, with fresh readings, its own time.
	build := func(n int64) ([]byte, string, error) {
		src := text
		if *patients > 1 {
			p := n % int64(*patients)
			src = strings.ReplaceAll(src, "MRN0012345", fmt.Sprintf("MRN%07d", p))
			src = strings.ReplaceAll(src, "0012A1FFFE3C4D5E", fmt.Sprintf("0012A1FFFE3C%04X", p))
		}
		m, err := hl7v2.Parse([]byte(src))
		if err != nil {
			return nil, "", err
		}
		id := fmt.Sprintf("%s-%d", run, n)
		if err := m.Set("MSH-10", id); err != nil {
			return nil, "", err
		}
		if *fresh {
			ts := start.UTC().Add(-time.Duration(n+60)*time.Second).Format("20060102150405") + "+0000"
			if m.Segment("OBR") != nil {
				m.Set("OBR-7", ts)
			}
			for i := range m.SegmentsNamed("OBX") {
				m.Set(fmt.Sprintf("OBX(%d)-14", i+1), ts)
			}
		}
		b, err := m.Encode()
		return b, id, err
	}
	if _, _, err := build(0); err != nil {
		return usageError{fmt.Errorf("bench mllp: the message: %w", err)}
	}

	rctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var mu sync.Mutex
	var lats []time.Duration
	var ok, nak, fails atomic.Int64
	var firstErr error
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mllp.NewClient(*addr, mllp.ClientOptions{Timeout: 30 * time.Second})
			defer c.Close()
			var local []time.Duration
			for rctx.Err() == nil {
				msg, id, err := build(seq.Add(1))
				if err != nil {
					fails.Add(1)
					continue
				}
				t0 := time.Now()
				ack, err := c.Send(context.WithoutCancel(rctx), msg)
				d := time.Since(t0)
				switch {
				case err != nil:
					fails.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if errors.Is(err, mllp.ErrClientClosed) {
						return
					}
					time.Sleep(100 * time.Millisecond)
				case ack.Get("MSA-2") != id:
					fails.Add(1)
				case ack.Get("MSA-1") == "AA" || ack.Get("MSA-1") == "CA":
					ok.Add(1)
					local = append(local, d)
				default:
					nak.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("acknowledgment %s (ERR-3 %s)", ack.Get("MSA-1"), ack.Get("ERR-3"))
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(float64(len(lats))*p))]
	}
	fmt.Fprintf(stdout, "mllp: %d connections, %s: %d acknowledged (AA/CA), %d refused, %d failed; %.0f msgs/s; ACK latency p50 %s p99 %s\n",
		*conns, elapsed.Round(time.Millisecond), ok.Load(), nak.Load(), fails.Load(),
		float64(ok.Load())/elapsed.Seconds(), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond))
	if firstErr != nil {
		fmt.Fprintf(stdout, "first error: %v\n", firstErr)
	}
	if ok.Load() == 0 {
		return fmt.Errorf("bench mllp: no message was acknowledged; is vigil serve listening for MLLP on %s?", *addr)
	}
	return nil
}
