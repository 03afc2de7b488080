package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// responseBundle is the part of a transaction-response or batch-response the tests read.
type responseBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status       string          `json:"status"`
			Location     string          `json:"location"`
			Etag         string          `json:"etag"`
			LastModified string          `json:"lastModified"`
			Outcome      json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

func (r *result) responseBundle(t testing.TB, typ string) *responseBundle {
	t.Helper()
	r.wantStatus(t, http.StatusOK)
	var rb responseBundle
	if err := json.Unmarshal(r.Body, &rb); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, r.Body)
	}
	if rb.ResourceType != "Bundle" || rb.Type != typ {
		t.Fatalf("got a %s of type %q, want a Bundle of type %s:\n%s", rb.ResourceType, rb.Type, typ, r.Body)
	}
	return &rb
}

// statuses lists the entries' response status codes ("201", "200", ...).
func (rb *responseBundle) statuses() []string {
	var out []string
	for _, e := range rb.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		out = append(out, code)
	}
	return out
}

// bundleOf builds a transaction or batch Bundle from entries.
func bundleOf(typ string, entries ...map[string]any) map[string]any {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": es}
}

// txEntry builds an entry; extra holds request fields such as ifMatch or ifNoneExist.
func txEntry(fullURL, method, u string, res map[string]any, extra ...string) map[string]any {
	req := map[string]any{"method": method, "url": u}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	e := map[string]any{"request": req}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	if res != nil {
		e["resource"] = res
	}
	return e
}

// typeTotal returns the number of versions of a type (through type history).
func (ts *testServer) typeTotal(t testing.TB, typ string) int {
	t.Helper()
	return *ts.do(t, http.MethodGet, typ+"/_history?_count=1", nil).history(t).Total
}

// TestTransaction covers a transaction that creates, updates, deletes, patches and reads:
// urn:uuid fullUrls and conditional references resolved, entry responses in request
// order with status, location and etag, the processing order, and Prefer.
func TestTransaction(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		existing := ts.create(t, patient("Existing", mrn+"|tx-existing"))
		toDelete := ts.create(t, patient("ToDelete"))
		toPatch := ts.create(t, patient("ToPatch"))
		toRead := patient("ToRead")
		toRead["id"] = "to-read"
		ts.do(t, http.MethodPut, "Patient/to-read", toRead).wantStatus(t, http.StatusCreated)

		const patUUID = "urn:uuid:2b9d6f61-8b8b-4ad4-9a26-1d6a9b0b0f01"
		const obsUUID = "urn:uuid:7c4a3d9e-0c1f-4f55-8f1c-3b8fd6c0aa02"
		obs := heartRate("88.10", patUUID)
		obs["performer"] = []any{map[string]any{"reference": "Patient?identifier=" + mrn + "|tx-existing"}}
		obs["derivedFrom"] = []any{map[string]any{"reference": obsUUID}}
		// A uri element equal to a fullUrl is rewritten; a string element is not.
		obs["extension"] = []any{map[string]any{"url": "http://example.org/fhir/StructureDefinition/source", "valueUri": patUUID}}
		obs["identifier"] = []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": patUUID}}
		obs2 := heartRate("90", patUUID)
		updated := patient("ToRead-updated")
		updated["id"] = "to-read"
		jsonPatch := map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
			"data": base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/active","value":false}]`))}
		tx := bundleOf("transaction",
			// A read listed first still runs after the writes: it sees the update below.
			txEntry("", "GET", "Patient/to-read", nil),
			txEntry(obsUUID+"-first", "POST", "Observation", obs),
			txEntry(patUUID, "POST", "Patient", patient("New", mrn+"|tx-new")),
			txEntry("", "POST", "Patient", patient("Existing", mrn+"|tx-existing"), "ifNoneExist", "identifier="+mrn+"|tx-existing"),
			txEntry(ts.FHIR+"/Patient/to-read", "PUT", "Patient/to-read", updated, "ifMatch", etag(1)),
			txEntry("", "DELETE", "Patient/"+toDelete, nil),
			txEntry("", "PATCH", "Patient/"+toPatch, jsonPatch),
			txEntry(obsUUID, "POST", "Observation", obs2),
		)
		// obsUUID+"-first" is not referenced; derivedFrom points at the last entry.
		r := ts.do(t, http.MethodPost, "", tx)
		rb := r.responseBundle(t, "transaction-response")
		if d := diff([]string{"200", "201", "201", "200", "200", "204", "200", "201"}, rb.statuses()); d != "" {
			t.Fatalf("entry statuses (-want +got):\n%s\n%s", d, r.Body)
		}

		// Entry 0, the read, saw the update of entry 4.
		read0, _ := decode(rb.Entry[0].Resource)
		if read0 == nil || versionOf(t, read0) != "2" || read0["name"].([]any)[0].(map[string]any)["family"] != "ToRead-updated" {
			t.Errorf("the GET entry did not run after the PUT: %s", rb.Entry[0].Resource)
		}
		// Created entries carry Type/id/_history/1 locations and W/"1" etags.
		for _, i := range []int{1, 2, 7} {
			e := rb.Entry[i]
			if !strings.HasSuffix(e.Response.Location, "/_history/1") || e.Response.Etag != etag(1) || e.Response.LastModified == "" {
				t.Errorf("entry %d response: location %q etag %q lastModified %q", i, e.Response.Location, e.Response.Etag, e.Response.LastModified)
			}
		}
		newPatient := strings.TrimSuffix(rb.Entry[2].Response.Location, "/_history/1")
		newObs := strings.TrimSuffix(rb.Entry[7].Response.Location, "/_history/1")
		if !strings.HasPrefix(newPatient, "Patient/") || !strings.HasPrefix(newObs, "Observation/") {
			t.Fatalf("locations %q and %q", newPatient, newObs)
		}
		// Entry 3's condition matched: it answers with the existing resource.
		if e := rb.Entry[3]; !strings.Contains(e.Response.Location, "Patient/"+existing) {
			t.Errorf("conditional create location = %q, want Patient/%s", e.Response.Location, existing)
		}
		if e := rb.Entry[4]; e.Response.Etag != etag(2) {
			t.Errorf("update etag = %q, want %s", e.Response.Etag, etag(2))
		}

		// References were rewritten: urn:uuid to the new ids, the condition to its match.
		first := ts.do(t, http.MethodGet, strings.TrimSuffix(rb.Entry[1].Response.Location, "/_history/1"), nil)
		first.wantStatus(t, http.StatusOK)
		got := first.json(t)
		if ref := got["subject"].(map[string]any)["reference"]; ref != newPatient {
			t.Errorf("subject.reference = %v, want %s", ref, newPatient)
		}
		if ref := got["performer"].([]any)[0].(map[string]any)["reference"]; ref != "Patient/"+existing {
			t.Errorf("conditional reference resolved to %v, want Patient/%s", ref, existing)
		}
		if ref := got["derivedFrom"].([]any)[0].(map[string]any)["reference"]; ref != newObs {
			t.Errorf("derivedFrom.reference = %v, want %s", ref, newObs)
		}
		if v := got["extension"].([]any)[0].(map[string]any)["valueUri"]; v != newPatient {
			t.Errorf("extension valueUri = %v, want %s (a uri equal to a fullUrl is rewritten)", v, newPatient)
		}
		if v := got["identifier"].([]any)[0].(map[string]any)["value"]; v != patUUID {
			t.Errorf("identifier value = %v, want %s unchanged (a string is not a link)", v, patUUID)
		}
		if v := got["valueQuantity"].(map[string]any)["value"]; v != json.Number("88.10") {
			t.Errorf("valueQuantity.value = %v, want 88.10 exactly", v)
		}
		ts.do(t, http.MethodGet, "Patient/"+toDelete, nil).wantOutcome(t, http.StatusGone, "")
		if p := ts.do(t, http.MethodGet, "Patient/"+toPatch, nil).json(t); p["active"] != false {
			t.Errorf("patched active = %v, want false", p["active"])
		}
		if n := ts.typeTotal(t, "Patient"); n != 4+1+1+1+1 {
			// 4 creates before, then new Patient, update, deletion, patch.
			t.Errorf("Patient versions = %d, want 8", n)
		}

		t.Run("Prefer return=minimal", func(t *testing.T) {
			tx := bundleOf("transaction", txEntry("urn:uuid:0f6f7a0e-5f1e-4a38-9f07-6c61f0c4b9a1", "POST", "Patient", patient("Minimal")))
			rb := ts.do(t, http.MethodPost, "", tx, "Prefer", "return=minimal").responseBundle(t, "transaction-response")
			if len(rb.Entry) != 1 || rb.Entry[0].Resource != nil || rb.Entry[0].Response.Location == "" {
				t.Errorf("minimal entry: resource %s location %q", rb.Entry[0].Resource, rb.Entry[0].Response.Location)
			}
		})
		t.Run("Prefer return=OperationOutcome", func(t *testing.T) {
			tx := bundleOf("transaction", txEntry("", "POST", "Patient", patient("Outcome")))
			rb := ts.do(t, http.MethodPost, "", tx, "Prefer", "return=OperationOutcome").responseBundle(t, "transaction-response")
			if len(rb.Entry) != 1 || rb.Entry[0].Resource != nil || !strings.Contains(string(rb.Entry[0].Response.Outcome), "OperationOutcome") {
				t.Errorf("entry: resource %s outcome %s", rb.Entry[0].Resource, rb.Entry[0].Response.Outcome)
			}
		})
	})
}

// TestTransactionAtomic covers transactions that fail: every failure is an
// OperationOutcome naming the entry, and nothing of the transaction is written.
func TestTransactionAtomic(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		ts.create(t, patient("Dup", mrn+"|atomic-dup"))
		ts.create(t, patient("Dup", mrn+"|atomic-dup"))
		versioned := patient("Versioned")
		versioned["id"] = "versioned"
		ts.do(t, http.MethodPut, "Patient/versioned", versioned).wantStatus(t, http.StatusCreated)
		before := ts.typeTotal(t, "Patient")

		good := func() map[string]any {
			return txEntry("urn:uuid:4e9c0d55-2f0e-4c36-bf5e-0d1c1a0f0b11", "POST", "Patient", patient("ShouldNotExist"))
		}
		invalid := patient("Invalid")
		invalid["gender"] = "sometimes"
		mismatch := patient("Mismatch")
		mismatch["id"] = "other"
		stale := clone(t, versioned)
		stale["gender"] = "male"
		tests := []struct {
			name   string
			bundle any
			status int
			expr   string
		}{
			{"invalid resource", bundleOf("transaction", good(), txEntry("", "POST", "Patient", invalid)), http.StatusBadRequest, ""},
			{"id mismatch", bundleOf("transaction", good(), txEntry("", "PUT", "Patient/mine", mismatch)), http.StatusBadRequest, "Bundle.entry[1]"},
			{"stale If-Match", bundleOf("transaction", good(), txEntry("", "PUT", "Patient/versioned", stale, "ifMatch", etag(7))), http.StatusPreconditionFailed, "Bundle.entry[1]"},
			{"entry without request", bundleOf("transaction", good(), map[string]any{"resource": patient("NoRequest")}), http.StatusBadRequest, "Bundle.entry[1].request"},
			{"resource type differs from url", bundleOf("transaction", good(), txEntry("", "POST", "Observation", patient("Wrong"))), http.StatusBadRequest, "Bundle.entry[1]"},
			{"unknown resource type", bundleOf("transaction", good(), txEntry("", "DELETE", "Widget/1", nil)), http.StatusNotFound, "Bundle.entry[1].request.url"},
			{"conditional reference matching several", bundleOf("transaction", good(),
				txEntry("", "POST", "Observation", heartRate("70", "Patient?identifier="+mrn+"|atomic-dup"))), http.StatusPreconditionFailed, ""},
			{"conditional reference matching none", bundleOf("transaction", good(),
				txEntry("", "POST", "Observation", heartRate("70", "Patient?identifier="+mrn+"|nobody"))), http.StatusPreconditionFailed, ""},
			{"ifNoneExist matching several", bundleOf("transaction", good(),
				txEntry("", "POST", "Patient", patient("Dup"), "ifNoneExist", "identifier="+mrn+"|atomic-dup")), http.StatusPreconditionFailed, ""},
			{"same resource twice", bundleOf("transaction", good(), txEntry("", "PUT", "Patient/twice", withID(patient("A"), "twice")),
				txEntry("", "PUT", "Patient/twice", withID(patient("B"), "twice"))), http.StatusBadRequest, ""},
			{"patch of a missing resource", bundleOf("transaction", good(), txEntry("", "PATCH", "Patient/nobody", map[string]any{
				"resourceType": "Binary", "contentType": "application/json-patch+json",
				"data": base64.StdEncoding.EncodeToString([]byte(`[{"op":"remove","path":"/active"}]`))})), http.StatusNotFound, ""},
			{"nested transaction", bundleOf("transaction", good(), txEntry("", "POST", "Bundle", bundleOf("transaction"))), http.StatusBadRequest, ""},
			{"not a transaction", map[string]any{"resourceType": "Bundle", "type": "collection"}, http.StatusBadRequest, "Bundle.type"},
			{"not a Bundle", patient("Lost"), http.StatusBadRequest, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ts.do(t, http.MethodPost, "", tc.bundle).wantOutcome(t, tc.status, tc.expr)
				if n := ts.typeTotal(t, "Patient"); n != before {
					t.Errorf("Patient versions = %d after a failed transaction, want %d", n, before)
				}
			})
		}
	})
}

func withID(m map[string]any, id string) map[string]any {
	m["id"] = id
	return m
}

// TestBatch covers batch: entries succeed or fail independently, each with its own status
// and OperationOutcome, and the spec's transaction example run as a batch.
func TestBatch(t *testing.T) {
	forBackends(t, func(t *testing.T, b storetest.Backend) {
		ts := newTestServer(t, b)
		id := ts.create(t, patient("Batch"))
		invalid := patient("Invalid")
		invalid["gender"] = "sometimes"
		batch := bundleOf("batch",
			txEntry("", "POST", "Patient", patient("Good")),
			txEntry("", "POST", "Patient", invalid),
			txEntry("", "GET", "Patient/"+id, nil),
			txEntry("", "GET", "Patient/missing", nil),
			txEntry("", "DELETE", "Patient/"+id, nil),
			map[string]any{"resource": patient("NoRequest")},
			txEntry("", "POST", "Patient/$validate", patient("Valid")),
			txEntry("", "DELETE", "Widget/1", nil),
		)
		rb := ts.do(t, http.MethodPost, "", batch).responseBundle(t, "batch-response")
		if d := diff([]string{"201", "400", "200", "404", "204", "400", "200", "404"}, rb.statuses()); d != "" {
			t.Fatalf("entry statuses (-want +got):\n%s", d)
		}
		for i, e := range rb.Entry {
			failed := !strings.HasPrefix(e.Response.Status, "2")
			if failed != strings.Contains(string(e.Response.Outcome), `"severity":"error"`) {
				t.Errorf("entry %d (%s): outcome %s", i, e.Response.Status, e.Response.Outcome)
			}
		}
		if rb.Entry[2].Resource == nil {
			t.Errorf("GET entry has no resource")
		}
		created := strings.TrimSuffix(rb.Entry[0].Response.Location, "/_history/1")
		ts.do(t, http.MethodGet, created, nil).wantStatus(t, http.StatusOK)
		ts.do(t, http.MethodGet, "Patient/"+id, nil).wantOutcome(t, http.StatusGone, "")

		t.Run("spec transaction example as a batch", func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "testdata", "examples", "Bundle-bundle-transaction.json"))
			if err != nil {
				t.Fatal(err)
			}
			ex, err := decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			ex["type"] = "batch"
			rb := ts.do(t, http.MethodPost, "", ex).responseBundle(t, "batch-response")
			got := rb.statuses()
			if len(got) != 10 {
				t.Fatalf("%d entries, want 10", len(got))
			}
			// Entry 8 is a search (GET Patient?name=peter), outside this test.
			got[8] = "search"
			want := []string{
				"201", // POST Patient
				"201", // POST Patient, ifNoneExist matches nothing
				"201", // PUT Patient/123: update as create
				"201", // PUT Patient?identifier=...: no match, creates
				"412", // PUT Patient/123a with ifMatch W/"2": no such resource
				"204", // DELETE Patient/234: does not exist, nothing to do
				"200", // DELETE Patient?identifier=123456: no match
				"404", // POST ValueSet/$lookup: operation not served
				"search",
				"404", // GET Patient/12334: not found
			}
			if d := diff(want, got); d != "" {
				t.Errorf("entry statuses (-want +got):\n%s", d)
			}
			// Run again: the conditional create and update now match.
			got = ts.do(t, http.MethodPost, "", ex).responseBundle(t, "batch-response").statuses()
			if len(got) == 10 && (got[1] != "200" || got[2] != "200" || got[3] != "200") {
				t.Errorf("second run statuses %v: want the conditional create, the update and the conditional update to answer 200", got)
			}
		})

		t.Run("spec transaction example fails as a whole", func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "testdata", "examples", "Bundle-bundle-transaction.json"))
			if err != nil {
				t.Fatal(err)
			}
			before := ts.typeTotal(t, "Patient")
			// Entry 4 asks for If-Match W/"2" of a Patient that does not exist.
			ts.do(t, http.MethodPost, "", raw).wantOutcome(t, http.StatusPreconditionFailed, "Bundle.entry[4]")
			if n := ts.typeTotal(t, "Patient"); n != before {
				t.Errorf("Patient versions went from %d to %d", before, n)
			}
		})
	})
}
