package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/server"
)

// BenchmarkHTTP measures FHIR interactions end to end over HTTP on 127.0.0.1: parse and
// validate, store, answer. Allocations include the client's, which runs in the same
// process. Run with
//
//	go test -run '^$' -bench BenchmarkHTTP -benchtime 2s ./server/
//
// (PostgreSQL too when VIGIL_TEST_DATABASE_URL is set).
func BenchmarkHTTP(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ts := newTestServer(b, be)
			obs := mustJSON(b, heartRate("72.0", "Patient/p1"))
			want := func(b *testing.B, r *result, err error, status int) {
				if err != nil {
					b.Fatal(err)
				}
				if r.Status != status {
					b.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
				}
			}
			b.Run("create", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r, err := ts.try(http.MethodPost, "Observation", obs)
					want(b, r, err, http.StatusCreated)
				}
			})
			b.Run("create-parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 16 concurrent clients on 2 cores: writes share commits
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r, err := ts.try(http.MethodPost, "Observation", obs)
						want(b, r, err, http.StatusCreated)
					}
				})
			})
			id := ts.create(b, heartRate("72.0", "Patient/p1"))
			b.Run("read", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r, err := ts.try(http.MethodGet, "Observation/"+id, nil)
					want(b, r, err, http.StatusOK)
				}
			})
			b.Run("update", func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					n++
					o := heartRate(fmt.Sprintf("%d.5", 60+n%100), "Patient/p1")
					o["id"] = id
					o["issued"] = fmt.Sprintf("2026-01-02T10:%02d:%02d.%03dZ", n/60000%60, n/1000%60, n%1000)
					r, err := ts.try(http.MethodPut, "Observation/"+id, o)
					want(b, r, err, http.StatusOK)
				}
			})
			b.Run("transaction-10", func(b *testing.B) {
				b.ReportAllocs()
				entries := make([]map[string]any, 10)
				for i := range entries {
					entries[i] = txEntry(fmt.Sprintf("urn:uuid:6a1f0c2e-0000-4000-8000-%012d", i), "POST", "Observation", heartRate("72.0", "Patient/p1"))
				}
				tx := mustJSON(b, bundleOf("transaction", entries...))
				for b.Loop() {
					r, err := ts.try(http.MethodPost, "", tx)
					want(b, r, err, http.StatusOK)
				}
			})
		})
	}
}

// BenchmarkCreateIndexing measures what full search indexing costs the REST create rate
// (the core issue's figure): POST /fhir/Observation from 16 concurrent clients, device
// heart rates of 2,000 patients, alert rules and statistics upkeep on (as vigil serve
// runs), with the identifier-only index and with every search parameter indexed. The two run one after the other on fresh databases;
// repeat and compare medians, e.g.
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench 'BenchmarkCreateIndexing/postgres' -benchtime 4000x ./server/; done
func BenchmarkCreateIndexing(b *testing.B) {
	full, err := fhirstore.NewSearchIndexer()
	if err != nil {
		b.Fatal(err)
	}
	for _, be := range storetest.Backends() {
		for _, ix := range []struct {
			name string
			ix   fhirstore.Indexer
		}{{"identifier", fhirstore.IdentifierIndexer{}}, {"full", full}} {
			b.Run(be.Name+"/"+ix.name, func(b *testing.B) {
				st, err := fhirstore.Open(context.Background(), be.NewURL(b), fhirstore.Options{Logger: storetest.QuietLogger(), Indexer: ix.ix})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				st.AddHook(server.NewAlertHook(alerts.DefaultRules(), storetest.QuietLogger()))
				// As vigil serve does: statistics kept current while the tables fill.
				mctx, stop := context.WithCancel(context.Background())
				b.Cleanup(stop)
				go st.Maintain(mctx, time.Second)
				ts := startServer(b, st)
				var seq atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := seq.Add(1)
						o := heartRate(fmt.Sprintf("%d", 60+n%40), fmt.Sprintf("Patient/p%d", n%2000))
						o["effectiveDateTime"] = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second).Format(time.RFC3339)
						// A device reading's identifier, as every reading Vigil maps carries.
						o["identifier"] = []any{map[string]any{"system": "urn:vigil:reading", "value": fmt.Sprintf("bench-%d", n)}}
						r, err := ts.try(http.MethodPost, "Observation", o)
						if err != nil || r.Status != http.StatusCreated {
							b.Fatalf("create: %v %v", err, r)
						}
					}
				})
			})
		}
	}
}
