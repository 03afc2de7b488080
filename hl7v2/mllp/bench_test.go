package mllp

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

// BenchmarkRoundTrip sends the 6-OBX PCD-01 message over loopback to a server whose handler
// returns a ready acknowledgment, over 1 and 4 connections, and reports messages per second.
func BenchmarkRoundTrip(b *testing.B) {
	raw := readFixture(b, "pcd01_oru_r01_6obx.hl7")
	m, err := hl7v2.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	ackMsg, err := hl7v2.NewACK(m, hl7v2.AA)
	if err != nil {
		b.Fatal(err)
	}
	ack, _ := ackMsg.Encode()
	noop := HandlerFunc(func(context.Context, []byte) ([]byte, error) { return ack, nil })
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := &Server{Handler: noop, Logger: discardLogger()}
			go s.Serve(l)
			defer s.Shutdown(context.Background())
			clients := make([]*Client, conns)
			for i := range clients {
				if clients[i], err = Dial(context.Background(), l.Addr().String(), ClientOptions{}); err != nil {
					b.Fatal(err)
				}
				defer clients[i].Close()
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, c := range clients {
				n := b.N / conns
				if i < b.N%conns {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if _, err := c.Send(context.Background(), raw); err != nil {
							b.Error(err)
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
