package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
)

// benchEnd is the instant the generated readings end at; fixed, so that a database loaded
// once can be queried by later runs with the same windows.
var benchEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// benchReadingEvery is the interval between two readings of one patient; the vital signs
// take turns, so each one recurs every len(benchVitals) intervals.
const benchReadingEvery = time.Minute

// benchMRNSystem is the identifier system of the generated patients.
const benchMRNSystem = "urn:vigil:bench:mrn"

// benchVital is one kind of generated reading.
type benchVital struct {
	loinc, display string
	mdc            string
	unit, ucum     string
	base, spread   float64
	device         int // which of the patient's devices measures it
}

var benchVitals = []benchVital{
	{"8867-4", "Heart rate", "147842", "/min", "/min", 60, 40, 0},
	{"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "150456", "%", "%", 92, 8, 0},
	{"9279-1", "Respiratory rate", "151562", "/min", "/min", 12, 10, 0},
	{"85354-9", "Blood pressure panel", "150020", "mm[Hg]", "mm[Hg]", 0, 0, 1},
	{"8310-5", "Body temperature", "150344", "Cel", "Cel", 36.2, 1.8, 2},
}

// benchDevices are the devices every generated patient has, by benchVital.device.
var benchDevices = []struct{ code, display string }{
	{"528391", "Pulse oximeter / monitor"},
	{"528409", "Blood pressure cuff"},
	{"528425", "Thermometer"},
}

// runBenchSearch is `vigil bench search`: with --load it fills the database with patients,
// their devices, vital-sign Observations and DetectedIssues through the store (many
// resources per transaction, several transactions at once), then it runs each of the
// device queries --queries times against Store.Search with random patients and prints
// p50/p99 per query. Without --load it queries a database loaded earlier with the same
// --patients.
func runBenchSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil bench search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", "", "database URL (postgres://... or sqlite:path); required")
	nObs := fs.Int("observations", 1_000_000, "Observations to load (with --load)")
	nPatients := fs.Int("patients", 2000, "patients (each with 3 devices)")
	load := fs.Bool("load", false, "load the data first (into an empty database)")
	queries := fs.Int("queries", 200, "runs of each query")
	workers := fs.Int("c", 4, "concurrent load transactions")
	batch := fs.Int("batch", 500, "resources per load transaction")
	indexer := fs.String("indexer", "search", "index to build while loading: search (every search parameter) or identifier (identifiers only; the baseline the indexing cost is measured against)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *dbURL == "" || *nPatients < 1 || *nObs < 0 || *queries < 0 || *workers < 1 || *batch < 1 {
		return usageError{errors.New("bench search: --database-url is required; --patients, -c and --batch must be at least 1")}
	}
	opts := fhirstore.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), MaxOpenConns: *workers + 4}
	switch *indexer {
	case "search":
	case "identifier":
		opts.Indexer = fhirstore.IdentifierIndexer{}
	default:
		return usageError{fmt.Errorf("bench search: --indexer must be search or identifier")}
	}
	st, err := fhirstore.Open(ctx, *dbURL, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	if *load {
		if err := benchLoad(ctx, st, *nPatients, *nObs, *workers, *batch, stdout); err != nil {
			return err
		}
	}
	if *queries == 0 {
		return nil
	}
	if *indexer != "search" {
		return usageError{errors.New("bench search: queries need --indexer search (use --queries 0 to only load)")}
	}
	perPatient := max(1, *nObs / *nPatients)
	for _, q := range benchQueries(perPatient) {
		lat, n, err := benchRun(ctx, st, q, *nPatients, *queries)
		if err != nil {
			return fmt.Errorf("bench search: %s: %w", q.name, err)
		}
		fmt.Fprintf(stdout, "%-44s p50 %8.2f ms  p99 %8.2f ms  (%d runs, %s)\n", q.name, ms(benchPct(lat, 0.50)), ms(benchPct(lat, 0.99)), len(lat), n)
	}
	return nil
}

func benchPct(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}

// benchPatientID, benchDeviceID name the generated resources.
func benchPatientID(p int) string   { return "bench-p" + strconv.Itoa(p) }
func benchDeviceID(p, k int) string { return "bench-d" + strconv.Itoa(p) + "-" + strconv.Itoa(k) }
func benchMRN(p int) string         { return "MRN" + strconv.Itoa(100000+p) }
func benchReading(p, j int) time.Time {
	return benchEnd.Add(-time.Duration(j)*benchReadingEvery - time.Duration(p)*time.Second)
}

// benchObservation is reading j of patient p (j = 0 is the newest).
func benchObservation(r *rand.Rand, p, j int) map[string]any {
	v := benchVitals[j%len(benchVitals)]
	obs := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}}}},
		"code": map[string]any{"coding": []any{
			map[string]any{"system": "http://loinc.org", "code": v.loinc, "display": v.display},
			map[string]any{"system": "urn:iso:std:iso:11073:10101", "code": v.mdc}}},
		"subject":           map[string]any{"reference": "Patient/" + benchPatientID(p)},
		"device":            map[string]any{"reference": "Device/" + benchDeviceID(p, v.device)},
		"effectiveDateTime": benchReading(p, j).Format(time.RFC3339),
		"identifier": []any{map[string]any{"system": "urn:vigil:bench:reading",
			"value": benchPatientID(p) + "-" + strconv.Itoa(j)}},
	}
	q := func(val float64, unit, code string) map[string]any {
		return map[string]any{"value": val, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}
	}
	if v.loinc == "85354-9" {
		sys := float64(100 + r.IntN(60))
		obs["component"] = []any{
			map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}}},
				"valueQuantity": q(sys, "mmHg", "mm[Hg]")},
			map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}}},
				"valueQuantity": q(sys-30-float64(r.IntN(20)), "mmHg", "mm[Hg]")},
		}
	} else {
		val := v.base + r.Float64()*v.spread
		obs["valueQuantity"] = q(float64(int(val*10))/10, v.unit, v.ucum)
	}
	return obs
}

// benchLoad writes the patients, devices, DetectedIssues and nObs Observations, batch
// resources per transaction from workers goroutines, and reports the create rate.
func benchLoad(ctx context.Context, st *fhirstore.Store, nPatients, nObs, workers, batch int, stdout io.Writer) error {
	perPatient := nObs / nPatients
	extra := nObs % nPatients
	type job struct {
		typ  string
		id   string
		body map[string]any
	}
	jobs := make(chan []job, workers*2)
	var created atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for js := range jobs {
				// Runs of one type go in one CreateMany (a few multi-row statements), the
				// write path of the ingest API. The ids are new: the database is empty.
				err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
					for i := 0; i < len(js); {
						k := i
						var ids []string
						var bodies []map[string]any
						for ; k < len(js) && js[k].typ == js[i].typ; k++ {
							ids = append(ids, js[k].id)
							bodies = append(bodies, js[k].body)
						}
						if _, err := tx.CreateMany(ctx, js[i].typ, ids, bodies); err != nil {
							return err
						}
						i = k
					}
					return nil
				})
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				created.Add(int64(len(js)))
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := created.Load()
				fmt.Fprintf(stdout, "  loaded %d resources, %.0f/s\n", n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	var cur []job
	send := func(j job) bool {
		cur = append(cur, j)
		if len(cur) < batch {
			return true
		}
		select {
		case jobs <- cur:
		case <-ctx.Done():
			return false
		}
		cur = nil
		return true
	}
	// Patients and devices first, then the readings round-robin over the patients, the
	// oldest first, as they would arrive.
	for p := 0; p < nPatients; p++ {
		send(job{"Patient", benchPatientID(p), map[string]any{"resourceType": "Patient",
			"identifier": []any{map[string]any{"system": benchMRNSystem, "value": benchMRN(p)}},
			"name":       []any{map[string]any{"family": "Bench" + strconv.Itoa(p), "given": []any{"Pat"}}},
			"gender":     []string{"female", "male"}[p%2], "birthDate": fmt.Sprintf("%d-0%d-1%d", 1940+p%60, 1+p%9, p%10)}})
		for k, d := range benchDevices {
			send(job{"Device", benchDeviceID(p, k), map[string]any{"resourceType": "Device",
				"patient":      map[string]any{"reference": "Patient/" + benchPatientID(p)},
				"type":         map[string]any{"coding": []any{map[string]any{"system": "urn:iso:std:iso:11073:10101", "code": d.code, "display": d.display}}},
				"serialNumber": fmt.Sprintf("SN-%d-%d", p, k)}})
		}
		// A few alerts per patient, one per 100 readings.
		for k := 0; k < max(1, perPatient/100); k++ {
			send(job{"DetectedIssue", fhirstore.NewID(), map[string]any{"resourceType": "DetectedIssue", "status": "final",
				"code":               map[string]any{"coding": []any{map[string]any{"system": "urn:vigil:alert", "code": "news2-high"}}},
				"severity":           "high",
				"patient":            map[string]any{"reference": "Patient/" + benchPatientID(p)},
				"identifiedDateTime": benchReading(p, k*100).Format(time.RFC3339)}})
		}
	}
	for j := perPatient; j >= 0; j-- {
		for p := 0; p < nPatients; p++ {
			if j == perPatient && p >= extra {
				continue // the remainder: one more reading for the first patients
			}
			if !send(job{"Observation", fhirstore.NewID(), benchObservation(r, p, j)}) {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(cur) > 0 && ctx.Err() == nil {
		jobs <- cur
	}
	close(jobs)
	wg.Wait()
	close(done)
	if firstErr != nil {
		return fmt.Errorf("bench search: load: %w", firstErr)
	}
	el := time.Since(start)
	n := created.Load()
	fmt.Fprintf(stdout, "loaded %d resources (%d Observations) in %s: %.0f resources/s\n", n, nObs, el.Round(time.Second), float64(n)/el.Seconds())
	if st.Backend() == "postgres" {
		// What autovacuum does to an insert-only table after a while: statistics for the
		// planner and the visibility map that index-only scans need.
		t := time.Now()
		if _, err := st.DB().ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			return fmt.Errorf("bench search: vacuum analyze: %w", err)
		}
		fmt.Fprintf(stdout, "vacuum analyze: %s\n", time.Since(t).Round(time.Second))
	}
	return nil
}

// benchQuery is one measured query; run performs it for patient p and returns how many
// resources it returned.
type benchQuery struct {
	name string
	run  func(ctx context.Context, st *fhirstore.Store, p int) (int, error)
}

func benchSearchQ(typ, q string) func(ctx context.Context, st *fhirstore.Store, p int) (int, error) {
	return func(ctx context.Context, st *fhirstore.Store, p int) (int, error) {
		v, err := url.ParseQuery(fmt.Sprintf(q, benchPatientID(p)))
		if err != nil {
			return 0, err
		}
		return searchValues(ctx, st, typ, v)
	}
}

func searchValues(ctx context.Context, st *fhirstore.Store, typ string, v url.Values) (int, error) {
	res, err := st.Search(ctx, fhirstore.SearchRequest{Type: typ, Params: v})
	if err != nil {
		return 0, err
	}
	if res.Total != nil {
		return *res.Total, nil
	}
	return len(res.Matches) + len(res.Included), nil
}

func benchQueries(perPatient int) []benchQuery {
	// A one-hour window inside the patient's history.
	span := time.Duration(perPatient) * benchReadingEvery
	return []benchQuery{
		{"latest HR (patient, code, _sort=-date, _count=1)", benchSearchQ("Observation", "patient=%s&code=http://loinc.org|8867-4&_sort=-date&_count=1")},
		{"1 h window (patient, category, date ge/lt)", func(ctx context.Context, st *fhirstore.Store, p int) (int, error) {
			hi := benchEnd.Add(-span / 3)
			v := url.Values{"patient": {benchPatientID(p)}, "category": {"vital-signs"},
				"date": {"ge" + hi.Add(-time.Hour).Format(time.RFC3339), "lt" + hi.Format(time.RFC3339)}, "_count": {"100"}}
			return searchValues(ctx, st, "Observation", v)
		}},
		{"devices of a patient", benchSearchQ("Device", "patient=%s")},
		{"DetectedIssue (patient, _sort=-identified)", benchSearchQ("DetectedIssue", "patient=%s&_sort=-identified")},
		{"$lastn (patient, every code, max=1)", func(ctx context.Context, st *fhirstore.Store, p int) (int, error) {
			rs, err := st.LastN(ctx, benchPatientID(p), nil, 1)
			return len(rs), err
		}},
		{"count of one code (_summary=count)", func(ctx context.Context, st *fhirstore.Store, _ int) (int, error) {
			return searchValues(ctx, st, "Observation", url.Values{"code": {"http://loinc.org|8867-4"}, "_summary": {"count"}})
		}},
		{"chain (patient.identifier, code, _count=10)", func(ctx context.Context, st *fhirstore.Store, p int) (int, error) {
			return searchValues(ctx, st, "Observation", url.Values{"patient.identifier": {benchMRNSystem + "|" + benchMRN(p)},
				"code": {"8867-4"}, "_count": {"10"}})
		}},
		{"_include (BP, -date, 10, Observation:device)", benchSearchQ("Observation", "patient=%s&code=85354-9&_sort=-date&_count=10&_include=Observation:device")},
	}
}

// benchRun runs q n times with random patients, sequentially, and returns the sorted
// latencies and a summary of the result sizes.
func benchRun(ctx context.Context, st *fhirstore.Store, q benchQuery, nPatients, n int) ([]time.Duration, string, error) {
	r := rand.New(rand.NewPCG(7, 11))
	// One warm-up run: plans cached, pages in memory as in a running server.
	if _, err := q.run(ctx, st, r.IntN(nPatients)); err != nil {
		return nil, "", err
	}
	lat := make([]time.Duration, 0, n)
	lo, hi := -1, 0
	for i := 0; i < n; i++ {
		p := r.IntN(nPatients)
		t := time.Now()
		got, err := q.run(ctx, st, p)
		if err != nil {
			return nil, "", err
		}
		lat = append(lat, time.Since(t))
		if lo < 0 || got < lo {
			lo = got
		}
		hi = max(hi, got)
	}
	slices.Sort(lat)
	return lat, fmt.Sprintf("%d-%d results", lo, hi), nil
}
