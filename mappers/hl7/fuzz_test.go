package hl7map_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

// FuzzMapMessage feeds parsed messages, seeded from testdata/hl7, to
// MapMessage: it must never panic, and it either maps or fails with a
// *MappingError whose problems all carry a table 0357 code.
func FuzzMapMessage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.hl7"))
	more, _ := filepath.Glob(filepath.Join(goldenDir, "*.hl7"))
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(valueTypesMessage))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7v2.Parse(data)
		if err != nil {
			return
		}
		res, err := hl7map.MapMessage(m, goldenOpts)
		if err != nil {
			var me *hl7map.MappingError
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error is not a MappingError with problems: %v", err)
			}
			for _, p := range me.Problems {
				if p.Code < 100 || p.Code > 207 {
					t.Fatalf("problem without a table 0357 code: %v", p)
				}
			}
			return
		}
		for _, e := range res.Entries {
			if e.Resource["resourceType"] == nil || e.FullURL == "" {
				t.Fatalf("entry without a type or fullUrl: %v", e)
			}
		}
	})
}
