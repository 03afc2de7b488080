package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/hl7v2/mllp"
	"github.com/vigil-health/vigil/server"
)

// BenchmarkHL7MLLP measures 6-OBX PCD-01 ORU^R01 messages persisted and acknowledged over
// real TCP, each a new reading (its own MSH-10 and time) from one of 1,000 patients and
// monitors, over 1 and 4 connections, with shared commits (batch 64) and with a commit per
// message (batch 1). It reports msgs/s. The alert rules run on every Observation, as in
// vigil serve.
//
//	VIGIL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test ./server -run '^$' -bench HL7MLLP -benchtime 3000x
func BenchmarkHL7MLLP(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, batch := range []int{64, 1} {
			for _, conns := range []int{1, 4} {
				b.Run(fmt.Sprintf("%s/batch=%d/conns=%d", be.Name, batch, conns), func(b *testing.B) {
					st, _ := storetest.Open(b, be)
					env := startHL7(b, st, server.HL7Config{MaxBatch: batch})
					base := time.Now().UTC().Add(-time.Minute)
					tmpl := pcd01(b, "ID", "72")
					msgs := make([][]byte, b.N)
					for i := range msgs {
						ts := base.Add(-time.Duration(i)*time.Second).Format("20060102150405") + "+0000"
						m := strings.ReplaceAll(tmpl, "20261125093000+0000", ts)
						m = strings.ReplaceAll(m, "MRN0012345", fmt.Sprintf("MRN%07d", i%1000))
						m = strings.ReplaceAll(m, "0012A1FFFE3C4D5E", fmt.Sprintf("0012A1FFFE3C%04X", i%1000))
						msgs[i] = []byte(strings.Replace(m, "|ID|", fmt.Sprintf("|BM-%d|", i), 1))
					}
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ReportAllocs()
					b.ResetTimer()
					start := time.Now()
					for range conns {
						wg.Add(1)
						go func() {
							defer wg.Done()
							c := mllp.NewClient(env.MLLPAddr, mllp.ClientOptions{})
							defer c.Close()
							for {
								i := int(next.Add(1)) - 1
								if i >= len(msgs) {
									return
								}
								ack, err := c.Send(context.Background(), msgs[i])
								if err != nil || ack.Get("MSA-1") != "AA" {
									b.Errorf("message %d: %v %v", i, err, ack)
									return
								}
							}
						}()
					}
					wg.Wait()
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
				})
			}
		}
	}
}
