package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/mappers/sim"
)

// runSimulate streams simulated vital signs for N patients to the ingest API at a given
// rate, printing a live progress line. It is the demo and the load generator.
func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "server base URL (readings go to <url>/ingest/readings)")
	patients := fs.Int("patients", 20, "number of simulated patients, each with a bedside monitor")
	rateStr := fs.String("rate", "50/s", "readings per second over all patients (e.g. 200/s)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	deteriorate := fs.Float64("deteriorate", 0.05, "chance per patient-hour that a deterioration episode starts")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same patients)")
	clients := fs.Int("c", 4, "concurrent HTTP clients")
	header := fs.String("header", "", "extra request header, e.g. 'Authorization: Bearer ...'")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	rate, err := strconv.ParseFloat(strings.TrimSuffix(*rateStr, "/s"), 64)
	if err != nil || rate <= 0 {
		return usageError{fmt.Errorf("--rate %q: want readings per second, e.g. 50/s", *rateStr)}
	}
	if *patients < 1 || *clients < 1 {
		return usageError{fmt.Errorf("--patients and -c must be at least 1")}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	url := strings.TrimRight(*base, "/") + "/ingest/readings"
	gen := sim.New(*patients, *seed, *deteriorate)
	const perDoc = 5 // readings in one document (HR, SpO2, BP, RR, temperature)
	interval := time.Duration(float64(time.Second) * perDoc / rate)

	var st simStats
	jobs := make(chan []byte, *clients*2)
	hc := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				st.send(ctx, hc, url, *header, body)
			}
		}()
	}
	done := make(chan struct{})
	go func() { // progress line
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(stderr, "\r%s", st.line(time.Since(start)))
			}
		}
	}()

	last := make([]time.Time, *patients)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	next := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			i := next % *patients
			next++
			step := time.Minute
			if !last[i].IsZero() {
				step = now.Sub(last[i])
			}
			last[i] = now
			body, _ := json.Marshal(gen.Next(i, now, step))
			select {
			case jobs <- body:
			case <-ctx.Done():
				break loop
			}
		}
	}
	close(jobs)
	wg.Wait()
	close(done)
	fmt.Fprintf(stderr, "\r%s\n", st.line(time.Since(start)))
	fmt.Fprintln(stdout, st.line(time.Since(start)))
	if st.sent.Load() > 0 && st.accepted.Load()+st.duplicates.Load() == 0 {
		return fmt.Errorf("simulate: the server accepted no reading (first error: %s)", st.firstError())
	}
	return nil
}

type simStats struct {
	sent, accepted, duplicates, rejected, alerts, failed atomic.Int64
	mu                                                   sync.Mutex
	firstErr                                             string
}

func (s *simStats) send(ctx context.Context, hc *http.Client, url, header string, body []byte) {
	s.sent.Add(5)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		s.fail(5, err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		k, v, _ := strings.Cut(header, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(5, err.Error())
		}
		return
	}
	defer resp.Body.Close()
	var r struct {
		Created, Duplicates, Rejected, Alerts int64
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity) {
		s.fail(5, fmt.Sprintf("status %d: %.200s", resp.StatusCode, b))
		return
	}
	s.accepted.Add(r.Created)
	s.duplicates.Add(r.Duplicates)
	s.rejected.Add(r.Rejected)
	s.alerts.Add(r.Alerts)
}

func (s *simStats) fail(n int64, msg string) {
	s.failed.Add(n)
	s.mu.Lock()
	if s.firstErr == "" {
		s.firstErr = msg
	}
	s.mu.Unlock()
}

func (s *simStats) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

func (s *simStats) line(elapsed time.Duration) string {
	return fmt.Sprintf("sent %d  accepted %d  duplicate %d  rejected %d  failed %d  alerts %d  %.0f readings/s",
		s.sent.Load(), s.accepted.Load(), s.duplicates.Load(), s.rejected.Load(), s.failed.Load(), s.alerts.Load(),
		float64(s.accepted.Load()+s.duplicates.Load())/elapsed.Seconds())
}
