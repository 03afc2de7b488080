package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/mappers/sim"
	"github.com/vigil-health/vigil/server"
)

// BenchmarkIngest posts batches of 100 simulated readings (alert rules on); readings/s is
// 100 / (ns/op).
func BenchmarkIngest(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ts := newTestServer(b, be, func(c *server.Config) { c.Ingest.CreatePatients = true })
			ts.Store.AddHook(server.NewAlertHook(alerts.DefaultRules(), nil))
			gen := sim.New(200, 1, 0.05)
			start := time.Now().Add(-30 * time.Minute)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				p := n % 200
				doc := gen.Next(p, start.Add(time.Duration(n)*time.Millisecond), time.Second)
				for len(doc.Readings) < 100 {
					n++
					doc.Readings = append(doc.Readings, gen.Next(p, start.Add(time.Duration(n)*time.Millisecond), time.Second).Readings...)
				}
				n++
				doc.Readings = doc.Readings[:100]
				body, _ := json.Marshal(doc)
				r, err := ts.try(http.MethodPost, "/ingest/readings", body, "Content-Type", "application/json")
				if err != nil || r.Status != http.StatusOK {
					b.Fatalf("ingest: %v %v", err, r)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
