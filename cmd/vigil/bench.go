package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/mappers/sim"
)

// runBench is the load command: `vigil bench crud --url ... -c 16 -d 20s` creates vital-sign
// Observations for a while, then reads them back by id, and reports throughput and latency
// percentiles of each phase.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "search" {
		return runBenchSearch(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "ingest" {
		return runBenchIngest(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "crud" {
		fmt.Fprintln(stderr, "Usage: vigil bench crud|ingest|mllp|search -h")
		return usageError{fmt.Errorf("bench: want the crud, ingest, mllp or search scenario")}
	}
	fs := flag.NewFlagSet("vigil bench crud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "server base URL (the FHIR base is <url>/fhir)")
	clients := fs.Int("c", 16, "concurrent clients")
	dur := fs.Duration("d", 20*time.Second, "duration of each phase (create, then read)")
	header := fs.String("header", "", "extra request header, e.g. 'Authorization: Bearer ...'")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *clients < 1 || *dur <= 0 {
		return usageError{fmt.Errorf("bench: -c must be >= 1 and -d > 0")}
	}
	fhirBase := strings.TrimRight(*base, "/") + "/fhir"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2, MaxConnsPerHost: *clients * 2}, Timeout: 30 * time.Second}
	b := &bench{hc: hc, base: fhirBase, header: *header}

	var idsMu sync.Mutex
	var ids []string
	create := b.phase(ctx, "create", *clients, *dur, func(r *rand.Rand) error {
		id, err := b.create(ctx, r)
		if err == nil {
			idsMu.Lock()
			ids = append(ids, id)
			idsMu.Unlock()
		}
		return err
	})
	fmt.Fprintln(stdout, create)
	if len(ids) == 0 {
		return fmt.Errorf("bench: no resource was created; is the server at %s?", fhirBase)
	}
	read := b.phase(ctx, "read", *clients, *dur, func(r *rand.Rand) error {
		return b.read(ctx, ids[r.IntN(len(ids))])
	})
	fmt.Fprintln(stdout, read)
	return nil
}

type bench struct {
	hc     *http.Client
	base   string
	header string
}

type phaseResult struct {
	name      string
	ok, fails int64
	elapsed   time.Duration
	lat       []time.Duration
	firstErr  error
}

func (p phaseResult) String() string {
	slices.Sort(p.lat)
	pct := func(q float64) time.Duration {
		if len(p.lat) == 0 {
			return 0
		}
		return p.lat[min(len(p.lat)-1, int(q*float64(len(p.lat))))]
	}
	s := fmt.Sprintf("%-6s %8d ok %6d failed  %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms",
		p.name, p.ok, p.fails, float64(p.ok)/p.elapsed.Seconds(),
		ms(pct(0.50)), ms(pct(0.99)), ms(pct(1)))
	if p.firstErr != nil {
		s += "\n       first error: " + p.firstErr.Error()
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (b *bench) phase(ctx context.Context, name string, clients int, d time.Duration, op func(*rand.Rand) error) phaseResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, fails atomic.Int64
	var mu sync.Mutex
	res := phaseResult{name: name}
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, seed*7919))
			var lat []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				err := op(r)
				if ctx.Err() != nil && err != nil {
					break // cut off by the end of the phase
				}
				lat = append(lat, time.Since(t))
				if err != nil {
					fails.Add(1)
					mu.Lock()
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}(uint64(c + 1))
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok, res.fails = ok.Load(), fails.Load()
	return res
}

func (b *bench) do(ctx context.Context, method, url string, body []byte, want int) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	if b.header != "" {
		k, v, _ := strings.Cut(b.header, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != want {
		return resp, rb, fmt.Errorf("%s %s: status %d: %.200s", method, url, resp.StatusCode, rb)
	}
	return resp, rb, nil
}

func (b *bench) create(ctx context.Context, r *rand.Rand) (string, error) {
	hr := 50 + r.IntN(70)
	obs := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
		"code": map[string]any{"coding": []any{
			map[string]any{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
			map[string]any{"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"}}},
		"subject":           map[string]any{"reference": fmt.Sprintf("Patient/bench-%d", r.IntN(2000))},
		"effectiveDateTime": time.Now().UTC().Format(time.RFC3339),
		"valueQuantity":     map[string]any{"value": hr, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
	}
	body, _ := json.Marshal(obs)
	resp, _, err := b.do(ctx, http.MethodPost, b.base+"/Observation", body, http.StatusCreated)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	i := strings.Index(loc, "/Observation/")
	if i < 0 {
		return "", fmt.Errorf("create: no Location header")
	}
	id, _, _ := strings.Cut(loc[i+len("/Observation/"):], "/")
	return id, nil
}

func (b *bench) read(ctx context.Context, id string) error {
	_, _, err := b.do(ctx, http.MethodGet, b.base+"/Observation/"+id, nil, http.StatusOK)
	return err
}

// runBenchIngest posts simulated vital signs to /ingest/readings in batches of -b readings
// from -c clients and reports readings/s and request latency.
func runBenchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "server base URL")
	clients := fs.Int("c", 16, "concurrent clients")
	dur := fs.Duration("d", 20*time.Second, "duration")
	batch := fs.Int("b", 100, "readings per request (1..1000)")
	patients := fs.Int("patients", 2000, "simulated patients")
	header := fs.String("header", "", "extra request header, e.g. 'Authorization: Bearer ...'")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *batch < 1 || *batch > 1000 || *clients < 1 || *patients < 1 {
		return usageError{fmt.Errorf("bench ingest: -b must be 1..1000, -c and --patients at least 1")}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients * 2}, Timeout: 60 * time.Second}
	b := &bench{hc: hc, base: strings.TrimRight(*base, "/"), header: *header}
	gen := sim.New(*patients, uint64(time.Now().UnixNano()), 0.05)
	var genMu sync.Mutex
	var next atomic.Int64
	var readings atomic.Int64
	start := time.Now().Add(-30 * time.Minute)
	res := b.phase(ctx, fmt.Sprintf("ingest b=%d", *batch), *clients, *dur, func(r *rand.Rand) error {
		n := next.Add(1)
		p := int(n % int64(*patients))
		genMu.Lock()
		doc := gen.Next(p, start.Add(time.Duration(n)*time.Millisecond), time.Second)
		for len(doc.Readings) < *batch {
			n = next.Add(1)
			more := gen.Next(p, start.Add(time.Duration(n)*time.Millisecond), time.Second)
			doc.Readings = append(doc.Readings, more.Readings...)
		}
		genMu.Unlock()
		doc.Readings = doc.Readings[:*batch]
		body, _ := json.Marshal(doc)
		_, rb, err := b.do(ctx, http.MethodPost, b.base+"/ingest/readings", body, http.StatusOK)
		if err != nil {
			return err
		}
		var out struct{ Created, Duplicates int64 }
		json.Unmarshal(rb, &out)
		readings.Add(out.Created + out.Duplicates)
		return nil
	})
	fmt.Fprintln(stdout, res)
	fmt.Fprintf(stdout, "       %d readings stored, %.0f readings/s\n", readings.Load(), float64(readings.Load())/res.elapsed.Seconds())
	return nil
}
