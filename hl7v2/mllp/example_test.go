package mllp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/vigil-health/vigil/hl7v2"
	"github.com/vigil-health/vigil/hl7v2/mllp"
)

// store is what a receiver does before it acknowledges: here, nothing.
func store(context.Context, *hl7v2.Message) error { return nil }

func Example() {
	accept := hl7v2.Acceptance{MessageTypes: map[string][]string{"ORU": {"R01"}}}
	handler := mllp.HandlerFunc(func(ctx context.Context, raw []byte) ([]byte, error) {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			return nil, err // unparseable: nothing to acknowledge
		}
		if err = accept.Check(m); err == nil {
			err = store(ctx, m) // the ACK is sent only once this returns
		}
		code, ok := hl7v2.ResponseCode(m, err)
		if !ok {
			return nil, err
		}
		ack, aerr := hl7v2.NewACK(m, code, hl7v2.AsError(err))
		if aerr != nil {
			return nil, aerr
		}
		return ack.Encode()
	})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &mllp.Server{Handler: handler, Logger: slog.New(slog.DiscardHandler)}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	client := mllp.NewClient(l.Addr().String(), mllp.ClientOptions{})
	defer client.Close()
	for _, typ := range []string{"ORU^R01", "ADT^A01"} {
		msg := "MSH|^~\\&|MON||VIGIL||20261125093015||" + typ + "|C-" + typ[:3] + "|P|2.6\rPID|||MRN1\r"
		ack, err := client.Send(context.Background(), []byte(msg))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ack.Get("MSA-2"), ack.Get("MSA-1"), "ERR-3="+ack.Get("ERR-3"))
	}
	// Output:
	// C-ORU AA ERR-3=
	// C-ADT AR ERR-3=200
}
