package hl7v2

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.hl7"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Parser{MaxBytes: 1 << 16, MaxSegments: 200, MaxRepetitions: 50}
		_, _ = p.ParseBatch(data)
		m, err := p.Parse(data)
		if err != nil {
			if AsError(err) == nil {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		// Reading anything must not panic.
		for _, s := range m.Segments() {
			for i := 1; i <= s.NumFields(); i++ {
				for _, r := range s.Field(i).Reps() {
					_, _ = r.TS()
					_, _ = r.SN()
					_ = r.CX()
					for _, c := range r.Components() {
						_ = c.Value()
					}
				}
			}
		}
		if IsACK(m) {
			return
		}
		_, _ = NewACK(m, AE, &Error{Code: CodeDataType, Location: Location{Segment: "PID", Field: 3}})
		// Encoding is stable: parse(encode(m)) encodes to the same bytes.
		out, err := m.Encode()
		if err != nil {
			return
		}
		m2, err := p.Parse(out)
		if err != nil {
			t.Fatalf("re-parse of encoded message failed: %v", err)
		}
		out2, err := m2.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(out), string(out2)); diff != "" {
			t.Fatalf("encode is not stable (-first +second):\n%s", diff)
		}
	})
}
