package mappers_test

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/vigil-health/vigil/mappers"
)

// The ingest path: parse a batch, validate it against the server clock,
// map each good reading, and report each bad one by its index.
func Example() {
	body := []byte(`{
	  "device": {"serial": "SN-1", "type": "pulse-oximeter"},
	  "patient": {"identifier": {"system": "urn:example:mrn", "value": "MRN-1"}},
	  "readings": [
	    {"metric": "spo2", "value": 97, "unit": "%", "time": "2026-03-01T09:00:00+01:00"},
	    {"metric": "spo2", "value": 104, "unit": "%", "time": "2026-03-01T09:01:00+01:00"}
	  ]}`)
	batch, format, err := mappers.Parse(body, mappers.OMHOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	valid := batch.Validate(now, 5*time.Minute)
	for i := range valid.Readings {
		obs, err := mappers.Observation(&valid.Readings[i], mappers.Refs{Subject: "Patient/p1", Device: "Device/d1"})
		if err != nil {
			fmt.Println(err)
			return
		}
		enc := json.NewEncoder(os.Stdout)
		_ = enc.Encode(obs["valueQuantity"])
		fmt.Println(obs["effectiveDateTime"])
	}
	for _, e := range valid.Errors {
		fmt.Println(e)
	}
	fmt.Println(format)
	// Output:
	// {"code":"%","system":"http://unitsofmeasure.org","unit":"%","value":97}
	// 2026-03-01T09:00:00+01:00
	// item 1: invalid reading: value: 104 % is outside the physical range 0..100 % for spo2
	// vigil
}
