package mappers

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSchemaMatchesWireFormat keeps testdata/ingest/vigil-readings.schema.json
// in step with the structs ParseVigil decodes into.
func TestSchemaMatchesWireFormat(t *testing.T) {
	b, err := os.ReadFile("../testdata/ingest/vigil-readings.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	tests := []struct {
		name  string
		props map[string]any
		typ   any
	}{
		{"envelope", schema.Properties, wireEnvelope{}},
		{"reading", schema.Defs["reading"].Properties, wireReading{}},
		{"device", schema.Defs["device"].Properties, wireDevice{}},
		{"patient", schema.Defs["patient"].Properties, wirePatient{}},
		{"identifier", schema.Defs["identifier"].Properties, wireIdentifier{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want, got []string
			rt := reflect.TypeOf(tt.typ)
			for i := 0; i < rt.NumField(); i++ {
				name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				want = append(want, name)
			}
			for k := range tt.props {
				got = append(got, k)
			}
			sort.Strings(want)
			sort.Strings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("schema properties differ from the Go structs (-go +schema):\n%s", diff)
			}
		})
	}
}
