package server

import (
	"encoding/json"
	"testing"
)

// FuzzJSONPatch applies arbitrary JSON Patch documents (client input) to a resource: the
// server must never panic, a failure must be a 400 or 422 Error, and a success a JSON
// object.
func FuzzJSONPatch(f *testing.F) {
	for _, seed := range []string{
		`[{"op":"add","path":"/name/-","value":{"family":"X"}}]`,
		`[{"op":"remove","path":"/name/0/given/0"}]`,
		`[{"op":"replace","path":"/active","value":false}]`,
		`[{"op":"move","from":"/name/0","path":"/name/1"}]`,
		`[{"op":"move","from":"/name","path":"/name/0"}]`,
		`[{"op":"copy","from":"/name/0/given","path":"/x"}]`,
		`[{"op":"test","path":"/birthDate","value":"1970-01-02"}]`,
		`[{"op":"add","path":"","value":[]}]`,
		`[{"op":"remove","path":"/name/01"}]`,
		`[{"op":"add","path":"/a~1b~0c","value":1}]`,
		`[{"op":"add","path":"/name/0/given/-","value":null},{"op":"remove","path":"/name/0/given/1"}]`,
	} {
		f.Add([]byte(seed))
	}
	const doc = `{"resourceType":"Patient","id":"p","active":true,"birthDate":"1970-01-02","name":[{"family":"A","given":["B","C"]}]}`
	f.Fuzz(func(t *testing.T, patch []byte) {
		var ops []jsonPatchOp
		if json.Unmarshal(patch, &ops) != nil {
			return
		}
		d, err := decodeJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		out, fe := applyJSONPatch(d, ops)
		if fe != nil {
			if fe.Status != 400 && fe.Status != 422 {
				t.Fatalf("status %d for a bad patch: %v", fe.Status, fe)
			}
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("patched document does not encode: %v", err)
		}
	})
}
