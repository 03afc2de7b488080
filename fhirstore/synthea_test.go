package fhirstore_test

import (
	"bytes"
	"context"
	"encoding/json"

	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/fhirstore/storetest"
)

// synthea is the Synthea test data, decoded, with references rewritten to Type/id.
type synthea struct {
	// byType lists the resources of each type (rewritten).
	byType map[string][]map[string]any
	// bundles keeps the resources grouped as written (one transaction per bundle).
	bundles [][]map[string]any
}

func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// loadSynthea reads testdata/synthea: the 0-* batch files first (organizations,
// locations, practitioners), then the patient bundles. urn:uuid: references become
// Type/uuid and conditional references (Practitioner?identifier=system|value) become the
// Type/id of the resource with that identifier.
func loadSynthea(t testing.TB) *synthea {
	t.Helper()
	files, err := filepath.Glob("../testdata/synthea/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no synthea files: %v", err)
	}
	sort.Strings(files) // 0-* first
	type entry struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
	}
	var raw [][]entry
	byURN := map[string]string{}   // urn:uuid:x -> Type/x
	byIdent := map[string]string{} // Type?identifier=sys|val -> Type/id
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var bundle struct {
			Entry []entry `json:"entry"`
		}
		if err := decode(b, &bundle); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range bundle.Entry {
			typ := e.Resource["resourceType"].(string)
			id := strings.TrimPrefix(e.FullURL, "urn:uuid:")
			e.Resource["id"] = id
			byURN[e.FullURL] = typ + "/" + id
			if ids, ok := e.Resource["identifier"].([]any); ok {
				for _, x := range ids {
					m := x.(map[string]any)
					sys, _ := m["system"].(string)
					val, _ := m["value"].(string)
					byIdent[typ+"?identifier="+sys+"|"+val] = typ + "/" + id
				}
			}
		}
		raw = append(raw, bundle.Entry)
	}
	var rewrite func(v any)
	rewrite = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && k == "reference" {
					if r, ok := byURN[s]; ok {
						x[k] = r
					} else if r, ok := byIdent[s]; ok {
						x[k] = r
					}
					continue
				}
				rewrite(c)
			}
		case []any:
			for _, c := range x {
				rewrite(c)
			}
		}
	}
	s := &synthea{byType: map[string][]map[string]any{}}
	for _, entries := range raw {
		var bundle []map[string]any
		for _, e := range entries {
			rewrite(e.Resource)
			typ := e.Resource["resourceType"].(string)
			s.byType[typ] = append(s.byType[typ], e.Resource)
			bundle = append(bundle, e.Resource)
		}
		s.bundles = append(s.bundles, bundle)
	}
	return s
}

// write stores every resource through Tx, one transaction per bundle.
func (s *synthea) write(t testing.TB, st *fhirstore.Store) {
	t.Helper()
	ctx := context.Background()
	for _, bundle := range s.bundles {
		err := st.InTx(ctx, func(tx *fhirstore.Tx) error {
			for _, r := range bundle {
				// The store sets meta on the map it is given: write a copy.
				b, _ := json.Marshal(r)
				var c map[string]any
				if err := decode(b, &c); err != nil {
					return err
				}
				if _, err := tx.CreateWithID(ctx, c["resourceType"].(string), c["id"].(string), c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("write synthea: %v", err)
		}
	}
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func getS(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func codings(cc any) [][2]string {
	var out [][2]string
	list, _ := get(cc, "coding").([]any)
	for _, c := range list {
		out = append(out, [2]string{getS(c, "system"), getS(c, "code")})
	}
	return out
}

func hasCoding(cc any, system, code string) bool {
	for _, c := range codings(cc) {
		if c[0] == system && c[1] == code {
			return true
		}
	}
	return false
}

func instant(t testing.TB, s string) time.Time {
	t.Helper()
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm
		}
	}
	t.Fatalf("unparseable date %q", s)
	return time.Time{}
}

func total(t testing.TB, st *fhirstore.Store, typ, q string) int {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	v.Set("_summary", "count")
	res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: typ, Params: v})
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, q, err)
	}
	return *res.Total
}

func TestSyntheaSearch(t *testing.T) {
	data := loadSynthea(t)
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st, _ := storetest.Open(t, b)
			data.write(t, st)
			testSynthea(t, st, data)
		})
	}
}

type countCase struct {
	name string
	typ  string
	q    string
	want int
}

func testSynthea(t *testing.T, st *fhirstore.Store, d *synthea) {
	var cases []countCase
	obs := d.byType["Observation"]
	patients := d.byType["Patient"]
	if len(patients) < 3 || len(obs) < 100 {
		t.Fatalf("synthea data too small: %d patients, %d observations", len(patients), len(obs))
	}
	gender := map[string]string{}
	for _, p := range patients {
		gender["Patient/"+p["id"].(string)] = getS(p, "gender")
	}
	// Observations per patient, and the chained gender of their patient.
	perPatient := map[string]int{}
	femaleObs := 0
	for _, o := range obs {
		ref := getS(o, "subject", "reference")
		perPatient[ref]++
		if gender[ref] == "female" {
			femaleObs++
		}
	}
	for _, p := range patients {
		ref := "Patient/" + p["id"].(string)
		cases = append(cases, countCase{"observations of " + ref, "Observation", "patient=" + ref, perPatient[ref]})
	}
	cases = append(cases, countCase{"chain patient.gender", "Observation", "patient.gender=female", femaleObs})
	// Every Observation code.
	codeCount := map[[2]string]int{}
	for _, o := range obs {
		seen := map[[2]string]bool{}
		for _, c := range codings(o["code"]) {
			if !seen[c] {
				seen[c] = true
				codeCount[c]++
			}
		}
	}
	for c, n := range codeCount {
		cases = append(cases, countCase{"code " + c[1], "Observation", "code=" + url.QueryEscape(c[0]+"|"+c[1]), n})
	}
	// Category vital-signs in 2015 or later (the resource's instant at or after 2015).
	y2015 := instant(t, "2015-01-01")
	vitals := 0
	bmiOver25 := 0
	for _, o := range obs {
		isVital := false
		for _, c := range get(o, "category").([]any) {
			if hasCoding(c, "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs") {
				isVital = true
			}
		}
		if isVital && !instant(t, getS(o, "effectiveDateTime")).Before(y2015) {
			vitals++
		}
		if getS(o, "valueQuantity", "code") == "kg/m2" {
			v, _ := get(o, "valueQuantity", "value").(json.Number).Float64()
			if v > 25 {
				bmiOver25++
			}
		}
	}
	cases = append(cases,
		countCase{"vital signs since 2015", "Observation", "category=vital-signs&date=ge2015-01-01", vitals},
		countCase{"BMI over 25", "Observation", "value-quantity=gt25|http://unitsofmeasure.org|kg/m2", bmiOver25})
	// Encounters by period end, and per practitioner.
	encSince, encByPract := 0, map[string]int{}
	for _, e := range d.byType["Encounter"] {
		end := getS(e, "period", "end")
		if end == "" {
			end = getS(e, "period", "start")
		}
		if !instant(t, end).Before(y2015) {
			encSince++
		}
		seen := map[string]bool{}
		for _, p := range get(e, "participant").([]any) {
			ref := getS(p, "individual", "reference")
			if strings.HasPrefix(ref, "Practitioner/") && !seen[ref] {
				seen[ref] = true
				encByPract[ref]++
			}
		}
	}
	cases = append(cases, countCase{"encounters since 2015", "Encounter", "date=ge2015", encSince})
	for ref, n := range encByPract {
		cases = append(cases, countCase{"encounters of " + ref, "Encounter", "practitioner=" + ref, n})
	}
	// Patients by gender and birth date, and by their conditions (_has).
	female, before1970 := 0, 0
	for _, p := range patients {
		if getS(p, "gender") == "female" {
			female++
		}
		if instant(t, getS(p, "birthDate")).Before(instant(t, "1970-01-01")) {
			before1970++
		}
	}
	cases = append(cases,
		countCase{"female patients", "Patient", "gender=female", female},
		countCase{"born before 1970", "Patient", "birthdate=lt1970", before1970})
	condPatients := map[[2]string]map[string]bool{}
	for _, c := range d.byType["Condition"] {
		for _, cd := range codings(c["code"]) {
			if condPatients[cd] == nil {
				condPatients[cd] = map[string]bool{}
			}
			condPatients[cd][getS(c, "subject", "reference")] = true
		}
	}
	for cd, ps := range condPatients {
		cases = append(cases, countCase{"_has condition " + cd[1], "Patient", "_has:Condition:patient:code=" + cd[1], len(ps)})
	}
	// Practitioners by NPI, organizations by name prefix.
	for i, p := range d.byType["Practitioner"] {
		if i%20 != 0 {
			continue
		}
		for _, x := range get(p, "identifier").([]any) {
			cases = append(cases, countCase{"practitioner " + getS(x, "value"), "Practitioner", "identifier=" + getS(x, "system") + "|" + getS(x, "value"), 1})
		}
	}
	for _, prefix := range []string{"hospital", "saint", "b", "the"} {
		n := 0
		for _, o := range d.byType["Organization"] {
			if strings.HasPrefix(fhirstore.NormalizeString(getS(o, "name")), prefix) {
				n++
			}
		}
		cases = append(cases, countCase{"organizations named " + prefix, "Organization", "name=" + prefix, n})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := total(t, st, tc.typ, tc.q); got != tc.want {
				t.Errorf("%s?%s: total %d, want %d", tc.typ, tc.q, got, tc.want)
			}
		})
	}

	t.Run("latest body height per patient", func(t *testing.T) {
		for _, p := range patients {
			ref := "Patient/" + p["id"].(string)
			var wantID string
			var latest time.Time
			for _, o := range obs {
				if getS(o, "subject", "reference") == ref && hasCoding(o["code"], "http://loinc.org", "8302-6") {
					if tm := instant(t, getS(o, "effectiveDateTime")); tm.After(latest) {
						latest, wantID = tm, o["id"].(string)
					}
				}
			}
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation",
				Params: url.Values{"patient": {ref}, "code": {"http://loinc.org|8302-6"}, "_sort": {"-date"}, "_count": {"1"}}})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if len(res.Matches) == 1 {
				got = res.Matches[0].ID
			}
			if got != wantID {
				t.Errorf("%s: latest height %q, want %q", ref, got, wantID)
			}
		}
	})

	t.Run("walk all observations by date", func(t *testing.T) {
		seen := map[string]bool{}
		cursor := ""
		var prev int64 = -1 << 62
		for page := 0; ; page++ {
			res, err := st.Search(context.Background(), fhirstore.SearchRequest{Type: "Observation",
				Params: url.Values{"_count": {"50"}, "_sort": {"date"}}, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Matches {
				if seen[r.ID] {
					t.Fatalf("page %d: %s repeated", page, r.ID)
				}
				seen[r.ID] = true
				var body map[string]any
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatal(err)
				}
				lo, _, _ := fhirstore.ParseDateRange(getS(body, "effectiveDateTime"))
				if lo < prev {
					t.Fatalf("page %d: %s out of date order", page, r.ID)
				}
				prev = lo
			}
			if cursor = res.Next; cursor == "" {
				break
			}
		}
		if len(seen) != len(obs) {
			t.Errorf("walk saw %d observations, want %d", len(seen), len(obs))
		}
	})

	t.Run("everything", func(t *testing.T) {
		// Walk the patient's bundle: the patient plus every resource that references it from
		// an element of the compartment's parameters for Synthea's types.
		p := patients[0]
		ref := "Patient/" + p["id"].(string)
		want := 0
		for _, bundle := range d.bundles {
			if len(bundle) == 0 || bundle[0]["id"] != p["id"] {
				continue
			}
			for _, r := range bundle {
				if r["resourceType"] == "Patient" || referencesAs(r, ref) {
					want++
				}
			}
		}
		got := 0
		cursor := ""
		for {
			res, err := st.Everything(context.Background(), p["id"].(string), time.Time{}, nil, 100, cursor)
			if err != nil {
				t.Fatal(err)
			}
			got += len(res.Matches)
			if cursor = res.Next; cursor == "" {
				break
			}
		}
		if got != want {
			t.Errorf("$everything: %d resources, want %d", got, want)
		}
	})
}

// referencesAs reports whether r refers to ref from an element the Patient compartment
// uses for Synthea's resource types.
func referencesAs(r map[string]any, ref string) bool {
	paths := map[string][][]string{
		"Encounter": {{"subject"}}, "Condition": {{"subject"}}, "Observation": {{"subject"}},
		"DiagnosticReport": {{"subject"}}, "DocumentReference": {{"subject"}}, "Claim": {{"patient"}},
		"ExplanationOfBenefit": {{"patient"}}, "Immunization": {{"patient"}}, "Procedure": {{"subject"}},
		"AllergyIntolerance": {{"patient"}}, "CarePlan": {{"subject"}}, "CareTeam": {{"subject"}},
		"MedicationRequest": {{"subject"}}, "Goal": {{"subject"}}, "ImagingStudy": {{"subject"}},
		"MedicationAdministration": {{"subject"}}, "Device": {}, "SupplyDelivery": {{"patient"}},
		"Provenance": {}, "Coverage": {{"beneficiary"}, {"payor"}},
	}
	for _, p := range paths[r["resourceType"].(string)] {
		if getS(r, append(p, "reference")...) == ref {
			return true
		}
	}
	// Provenance.target[] and Provenance.agent.who can point at the patient.
	if r["resourceType"] == "Provenance" {
		for _, x := range get(r, "target").([]any) {
			if getS(x, "reference") == ref {
				return true
			}
		}
	}
	return false
}
