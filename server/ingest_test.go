package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore/storetest"
	"github.com/vigil-health/vigil/mappers/alerts"
	"github.com/vigil-health/vigil/server"
)

type ingestResp struct {
	Created, Duplicates, Rejected, Alerts int
	Committed                             bool
	Results                               []struct {
		Index                        int
		Status, Reason               string
		Observation, Device, Patient string
		Alerts                       []string
	}
}

func (ts *testServer) ingest(t *testing.T, body, query string) (*result, ingestResp) {
	t.Helper()
	r := ts.do(t, http.MethodPost, "/ingest/readings"+query, body, "Content-Type", "application/json")
	var out ingestResp
	if r.Status == http.StatusOK || r.Status == http.StatusUnprocessableEntity {
		if err := jsonUnmarshal(r.Body, &out); err != nil {
			t.Fatalf("ingest answer is not JSON: %v\n%s", err, r.Body)
		}
	}
	return r, out
}

// count returns the number of live resources of a type, through FHIR search.
func (ts *testServer) count(t *testing.T, query string) int {
	t.Helper()
	sep := "?"
	if strings.Contains(query, "?") {
		sep = "&"
	}
	r := ts.do(t, http.MethodGet, query+sep+"_summary=count", nil)
	r.wantStatus(t, http.StatusOK)
	n, _ := r.json(t)["total"].(interface{ String() string })
	var total int
	fmt.Sscan(n.String(), &total)
	return total
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIngest(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, b, func(c *server.Config) { c.Ingest.CreatePatients = true })
			vitals := readFile(t, "../testdata/ingest/vigil-vitals.json")

			t.Run("batch then retry", func(t *testing.T) {
				r, out := ts.ingest(t, vitals, "")
				r.wantStatus(t, http.StatusOK)
				if out.Created != 13 || out.Rejected != 0 || !out.Committed {
					t.Fatalf("first post: %+v", out)
				}
				if got := ts.count(t, "Observation?patient.identifier=urn:example:mrn|MRN-000123"); got != 13 {
					t.Fatalf("%d Observations of the patient, want 13", got)
				}
				// One device and one patient, whatever the number of readings.
				if got := ts.count(t, "Device?identifier=urn:example:gateway-devices|mon-0042"); got != 1 {
					t.Fatalf("%d Devices, want 1", got)
				}
				if got := ts.count(t, "Patient?identifier=urn:example:mrn|MRN-000123"); got != 1 {
					t.Fatalf("%d Patients, want 1", got)
				}
				r, again := ts.ingest(t, vitals, "")
				r.wantStatus(t, http.StatusOK)
				if again.Created != 0 || again.Duplicates != 13 {
					t.Fatalf("retry: %+v, want 13 duplicates", again)
				}
				for i := range again.Results {
					if again.Results[i].Observation != out.Results[i].Observation {
						t.Errorf("reading %d: duplicate points at %s, first stored as %s", i, again.Results[i].Observation, out.Results[i].Observation)
					}
				}
				if got := ts.count(t, "Observation?patient.identifier=urn:example:mrn|MRN-000123"); got != 13 {
					t.Fatalf("after the retry: %d Observations, want still 13", got)
				}
			})

			t.Run("partial rejection", func(t *testing.T) {
				before := ts.count(t, "Observation")
				r, out := ts.ingest(t, readFile(t, "../testdata/ingest/vigil-invalid.json"), "")
				r.wantStatus(t, http.StatusOK)
				if out.Rejected == 0 || out.Created == 0 {
					t.Fatalf("want some rejected and some created: %+v", out)
				}
				for _, res := range out.Results {
					if res.Status == "rejected" && res.Reason == "" {
						t.Errorf("reading %d rejected without a reason", res.Index)
					}
					if res.Status == "rejected" && res.Observation != "" {
						t.Errorf("reading %d rejected but stored as %s", res.Index, res.Observation)
					}
				}
				if got := ts.count(t, "Observation") - before; got != out.Created {
					t.Fatalf("%d Observations stored, %d reported created", got, out.Created)
				}
			})

			t.Run("atomic rejects the whole batch", func(t *testing.T) {
				before := ts.count(t, "Observation")
				r, out := ts.ingest(t, strings.ReplaceAll(readFile(t, "../testdata/ingest/vigil-invalid.json"), "MRN-000123", "MRN-ATOMIC"), "?atomic=true")
				r.wantStatus(t, http.StatusUnprocessableEntity)
				if out.Committed {
					t.Fatal("an atomic batch with bad readings must not commit")
				}
				if got := ts.count(t, "Observation"); got != before {
					t.Fatalf("atomic failure stored %d Observations", got-before)
				}
				if got := ts.count(t, "Patient?identifier=urn:example:mrn|MRN-ATOMIC"); got != 0 {
					t.Fatalf("atomic failure created the patient")
				}
			})

			t.Run("malformed document", func(t *testing.T) {
				r, _ := ts.ingest(t, `{"device": `, "")
				r.wantStatus(t, http.StatusBadRequest)
				if r.json(t)["resourceType"] != "OperationOutcome" {
					t.Fatalf("want an OperationOutcome: %s", r.Body)
				}
			})
		})
	}
}

func TestIngestPatientMatching(t *testing.T) {
	ts := newTestServer(t, storetest.Backends()[0], func(c *server.Config) { c.Ingest.CreatePatients = false })
	p := ts.do(t, http.MethodPost, "Patient", map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": "urn:example:mrn", "value": "MRN-000123"}}})
	p.wantStatus(t, http.StatusCreated)
	pid := p.json(t)["id"].(string)
	vitals := readFile(t, "../testdata/ingest/vigil-vitals.json")
	r, out := ts.ingest(t, vitals, "")
	r.wantStatus(t, http.StatusOK)
	if out.Created != 13 || out.Results[0].Patient != "Patient/"+pid {
		t.Fatalf("readings not matched to the existing patient %s: %+v", pid, out.Results[0])
	}
	// An unknown patient is refused when the deployment does not create patients.
	r, out = ts.ingest(t, strings.ReplaceAll(vitals, "MRN-000123", "MRN-UNKNOWN"), "")
	r.wantStatus(t, http.StatusUnprocessableEntity)
	if out.Rejected != 13 || !strings.Contains(out.Results[0].Reason, "no Patient") {
		t.Fatalf("unknown patient: %+v", out)
	}
	if got := ts.count(t, "Patient"); got != 1 {
		t.Fatalf("%d Patients, want 1", got)
	}
	// An identifier two Patients share names no one: refused, nothing stored.
	for range 2 {
		ts.do(t, http.MethodPost, "Patient", map[string]any{"resourceType": "Patient",
			"identifier": []any{map[string]any{"system": "urn:example:mrn", "value": "MRN-TWICE"}}}).wantStatus(t, http.StatusCreated)
	}
	before := ts.count(t, "Observation")
	r, out = ts.ingest(t, strings.ReplaceAll(vitals, "MRN-000123", "MRN-TWICE"), "")
	r.wantStatus(t, http.StatusUnprocessableEntity)
	if out.Rejected != 13 || !strings.Contains(out.Results[0].Reason, "more than one Patient") {
		t.Fatalf("ambiguous patient: %+v", out)
	}
	if got := ts.count(t, "Observation"); got != before {
		t.Fatalf("%d Observations after a refused batch, want %d", got, before)
	}
}

// vitalsDoc is a compact ingest document with one heart rate taken at t.
func vitalsDoc(mrn string, hr int, t time.Time) string {
	return fmt.Sprintf(`{"device": {"identifier": {"system": "urn:test:dev", "value": "mon-%s"}, "type": "multi-parameter-monitor"},
		"patient": {"identifier": {"system": "urn:test:mrn", "value": %q}},
		"readings": [{"metric": "heart-rate", "value": %d, "unit": "/min", "time": %q}]}`, mrn, mrn, hr, t.UTC().Format(time.RFC3339))
}

func TestAlerts(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, b, func(c *server.Config) { c.Ingest.CreatePatients = true })
			ts.Store.AddHook(server.NewAlertHook(alerts.DefaultRules(), nil))
			now := time.Now().Add(-10 * time.Minute)

			// Normal heart rate: no alert.
			_, out := ts.ingest(t, vitalsDoc("A1", 72, now), "")
			if out.Created != 1 || out.Alerts != 0 {
				t.Fatalf("normal reading: %+v", out)
			}
			// 140 /min is above the high threshold (130): one alert, high severity.
			_, out = ts.ingest(t, vitalsDoc("A1", 140, now.Add(time.Minute)), "")
			if out.Alerts != 1 {
				t.Fatalf("high heart rate raised %d alerts, want 1", out.Alerts)
			}
			pat := out.Results[0].Patient
			issues := ts.do(t, http.MethodGet, "DetectedIssue?patient="+pat+"&code=vital-out-of-range", nil)
			issues.wantStatus(t, http.StatusOK)
			entries, _ := issues.json(t)["entry"].([]any)
			if len(entries) != 1 {
				t.Fatalf("%d DetectedIssues, want 1:\n%s", len(entries), issues.Body)
			}
			di := entries[0].(map[string]any)["resource"].(map[string]any)
			if di["severity"] != "high" || di["patient"].(map[string]any)["reference"] != pat {
				t.Fatalf("alert severity %v patient %v", di["severity"], di["patient"])
			}
			// The condition persists: the same alert is updated, not duplicated.
			_, out = ts.ingest(t, vitalsDoc("A1", 145, now.Add(2*time.Minute)), "")
			if got := ts.count(t, "DetectedIssue?patient="+pat+"&code=vital-out-of-range"); got != 1 {
				t.Fatalf("persisting condition: %d alerts, want still 1", got)
			}
			// Several high readings in one batch (one transaction): still one alert.
			batch := fmt.Sprintf(`{"device": {"identifier": {"system": "urn:test:dev", "value": "mon-B1"}},
				"patient": {"identifier": {"system": "urn:test:mrn", "value": "B1"}},
				"readings": [{"metric": "heart-rate", "value": 72, "unit": "/min", "time": %q},
					{"metric": "heart-rate", "value": 140, "unit": "/min", "time": %q},
					{"metric": "heart-rate", "value": 150, "unit": "/min", "time": %q}]}`,
				now.UTC().Format(time.RFC3339), now.Add(time.Minute).UTC().Format(time.RFC3339), now.Add(2*time.Minute).UTC().Format(time.RFC3339))
			_, out = ts.ingest(t, batch, "")
			if out.Created != 3 || len(out.Results[0].Alerts) != 0 || len(out.Results[1].Alerts) != 1 {
				t.Fatalf("batch: %+v", out)
			}
			if got := ts.count(t, "DetectedIssue?patient="+out.Results[0].Patient+"&code=vital-out-of-range"); got != 1 {
				t.Fatalf("a batch of high readings raised %d alerts, want 1", got)
			}
			// An Observation written through the FHIR API is judged by the same rules.
			obs := map[string]any{
				"resourceType": "Observation", "status": "final",
				"category":          []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
				"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
				"subject":           map[string]any{"reference": "Patient/fhir-pat"},
				"effectiveDateTime": now.UTC().Format(time.RFC3339),
				"valueQuantity":     map[string]any{"value": 32, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
			}
			ts.do(t, http.MethodPut, "Patient/fhir-pat", map[string]any{"resourceType": "Patient", "id": "fhir-pat"}).wantStatus(t, http.StatusCreated)
			ts.do(t, http.MethodPost, "Observation", obs).wantStatus(t, http.StatusCreated)
			if got := ts.count(t, "DetectedIssue?patient=Patient/fhir-pat"); got != 1 {
				t.Fatalf("a FHIR-created low heart rate raised %d alerts, want 1", got)
			}
			// A Personal Health Device style transaction (Device + Observation) is judged too.
			phd := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": "urn:uuid:0b6f8a4e-3c1d-4e8a-9f00-2d1c5b7a9e11", "request": map[string]any{"method": "POST", "url": "Device"},
					"resource": map[string]any{"resourceType": "Device", "serialNumber": "PHD-1"}},
				map[string]any{"fullUrl": "urn:uuid:6a0e2f3b-7c4d-4b1e-8a5f-9e2d3c4b5a60", "request": map[string]any{"method": "POST", "url": "Observation"},
					"resource": func() map[string]any {
						o := map[string]any{}
						for k, v := range obs {
							o[k] = v
						}
						o["subject"] = map[string]any{"reference": "Patient/phd-pat"}
						o["device"] = map[string]any{"reference": "urn:uuid:0b6f8a4e-3c1d-4e8a-9f00-2d1c5b7a9e11"}
						o["valueQuantity"] = map[string]any{"value": 150, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
						return o
					}()},
			}}
			ts.do(t, http.MethodPut, "Patient/phd-pat", map[string]any{"resourceType": "Patient", "id": "phd-pat"}).wantStatus(t, http.StatusCreated)
			ts.do(t, http.MethodPost, "", phd).wantStatus(t, http.StatusOK)
			if got := ts.count(t, "DetectedIssue?patient=Patient/phd-pat&code=vital-out-of-range"); got != 1 {
				t.Fatalf("a device transaction with a high heart rate raised %d alerts, want 1", got)
			}
		})
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// The same ingest is a FHIR operation, POST /fhir/Device/$ingest.
func TestIngestOperation(t *testing.T) {
	ts := newTestServer(t, storetest.Backends()[0], func(c *server.Config) { c.Ingest.CreatePatients = true })
	r := ts.do(t, http.MethodPost, "Device/$ingest", readFile(t, "../testdata/ingest/vigil-vitals.json"))
	r.wantStatus(t, http.StatusOK)
	var out ingestResp
	if err := jsonUnmarshal(r.Body, &out); err != nil || out.Created != 13 {
		t.Fatalf("$ingest: %v %+v", err, out)
	}
	if got := ts.count(t, "Observation"); got != 13 {
		t.Fatalf("%d Observations after $ingest, want 13", got)
	}
}

// A dateTime search value whose "+02:00" offset was sent unescaped (so it arrives as a
// space) is read as the offset, not refused.
func TestSearchUnescapedOffset(t *testing.T) {
	ts := newTestServer(t, storetest.Backends()[0])
	obs := map[string]any{"resourceType": "Observation", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
		"effectiveDateTime": "2026-03-01T10:00:00+02:00"}
	ts.do(t, http.MethodPost, "Observation", obs).wantStatus(t, http.StatusCreated)
	tests := []struct {
		query string
		want  int
	}{
		{"Observation?date=ge2026-03-01T09:00:00+02:00", 1},   // 08:00Z <= 08:00Z
		{"Observation?date=gt2026-03-01T10:00:00+02:00", 0},   // after the reading
		{"Observation?date=ge2026-03-01T09:00:00%2B02:00", 1}, // properly escaped
	}
	for _, tc := range tests {
		if got := ts.count(t, tc.query); got != tc.want {
			t.Errorf("%s: %d matches, want %d", tc.query, got, tc.want)
		}
	}
}

// A custom SearchParameter applies to resources stored before it once $reindex has run.
func TestReindexCustomSearchParameter(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		ts.do(t, http.MethodPost, "Patient", map[string]any{"resourceType": "Patient", "gender": "female",
			"maritalStatus": map[string]any{"text": "widowed"}}).wantStatus(t, http.StatusCreated)
		sp := map[string]any{"resourceType": "SearchParameter", "url": "http://example.org/sp/marital-text", "name": "marital-text",
			"status": "active", "description": "Marital status text", "code": "marital-text", "base": []any{"Patient"},
			"type": "string", "expression": "Patient.maritalStatus.text"}
		ts.do(t, http.MethodPost, "SearchParameter", sp).wantStatus(t, http.StatusCreated)
		if got := ts.count(t, "Patient?marital-text=widow"); got != 0 {
			t.Fatalf("before $reindex the old Patient is not indexed: %d matches", got)
		}
		r := ts.do(t, http.MethodPost, "Patient/$reindex", nil)
		r.wantStatus(t, http.StatusOK)
		if !strings.Contains(string(r.Body), "reindexed 1 of 1 Patient") {
			t.Fatalf("$reindex answer: %s", r.Body)
		}
		if got := ts.count(t, "Patient?marital-text=widow"); got != 1 {
			t.Fatalf("after $reindex: %d matches, want 1", got)
		}
		ts.do(t, http.MethodPost, "$reindex", nil).wantStatus(t, http.StatusOK)
	})
}
