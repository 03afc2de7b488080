package hl7map_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/hl7map")

const (
	fixtureDir = "../../testdata/hl7"
	goldenDir  = "../../testdata/hl7map"
)

// goldenNow is the clock of the golden runs: shortly after the fixtures'
// readings, so the range and future-time checks run.
var goldenNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var goldenOpts = hl7map.Options{Now: goldenNow}

// mappedFixtures are the fixtures that map to FHIR: those of testdata/hl7
// and adt_a03_discharge (testdata/hl7map), a copy of testdata/hl7/adt_a03.hl7
// with the admit and discharge times in PV1-44 and PV1-45 (the original has
// them one field early; TestMapMessageErrors covers it).
var mappedFixtures = []string{
	"pcd01_oru_r01_monitor",
	"pcd01_oru_r01_6obx",
	"lab_oru_r01",
	"adt_a01",
	"adt_a04",
	"adt_a08",
	"adt_a03_discharge",
}

// goldenEntry is the JSON form of an Entry in the golden files.
type goldenEntry struct {
	FullURL        string         `json:"fullUrl"`
	IfNoneExist    string         `json:"ifNoneExist,omitempty"`
	UpdateIfExists bool           `json:"updateIfExists,omitempty"`
	Resource       map[string]any `json:"resource"`
}

func readMessage(t testing.TB, name string) *hl7v2.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name+".hl7"))
	if os.IsNotExist(err) {
		b, err = os.ReadFile(filepath.Join(goldenDir, name+".hl7"))
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return m
}

func mapFixture(t testing.TB, name string) *hl7map.Result {
	t.Helper()
	res, err := hl7map.MapMessage(readMessage(t, name), goldenOpts)
	if err != nil {
		t.Fatalf("MapMessage(%s): %v", name, err)
	}
	return res
}

// marshalEntries renders a result as indented JSON through encoding/json,
// so json.Number values keep their text.
func marshalEntries(t testing.TB, res *hl7map.Result) []byte {
	t.Helper()
	var out []goldenEntry
	for _, e := range res.Entries {
		out = append(out, goldenEntry{FullURL: e.FullURL, IfNoneExist: e.IfNoneExist, UpdateIfExists: e.UpdateIfExists, Resource: e.Resource})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got):\n%s", file, cmp.Diff(string(want), string(got)))
	}
}

func TestMapMessageGolden(t *testing.T) {
	for _, name := range mappedFixtures {
		t.Run(name, func(t *testing.T) {
			res := mapFixture(t, name)
			checkGolden(t, name+".golden.json", marshalEntries(t, res))
		})
	}
}

// valueTypesMessage is a PCD-01 report with a row of each value type that
// is not a plain number, an unknown MDC code, a reading on another device
// of the same message and codes sent as MDC reference ids alone.
const valueTypesMessage = pcdHeader +
	"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|2|ST|184326^MDC_ECG_ELEC_POTL_LEAD_OFF^MDC|1.1.1.1|lead V2 off||||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|3|CWE|184327^MDC_ECG_RHY^MDC|1.1.1.2|R-NORMAL^normal sinus rhythm^99MDC||||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|4|SN|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|>^99|262688^MDC_DIM_PERCENT^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|5|SN|151562^MDC_RESP_RATE^MDC|1.4.1.1|^12^-^14|264928^MDC_DIM_RESP_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|6|DTM|67981^MDC_ATTR_TIME_ABS^MDC|1.0.0.1|20261125092959+0000||||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|7|NA|131329^MDC_ECG_ELEC_POTL_I^MDC|1.1.1.3|12^-4^^7|266418^MDC_DIM_MILLI_VOLT^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|8|NM|148065^MDC_ECG_AMPL_ST_I^MDC|1.1.1.4|+.5|266418^MDC_DIM_MILLI_VOLT^MDC|||||C|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
	"OBX|9|NM|150344^MDC_TEMP^MDC|2.1.1.1|36.9|268192^MDC_DIM_DEGC^MDC|||||F|||20261125093000+0000||||00A0B1FFFE000002^EUI-64\n" +
	"OBX|10|NM|^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|71|^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n"

func mapText(t testing.TB, text string) *hl7map.Result {
	t.Helper()
	m, err := hl7v2.Parse([]byte(strings.ReplaceAll(strings.TrimSpace(text), "\n", "\r")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := hl7map.MapMessage(m, goldenOpts)
	if err != nil {
		t.Fatalf("MapMessage: %v", err)
	}
	return res
}

func TestMapValueTypesGolden(t *testing.T) {
	checkGolden(t, "value_types.golden.json", marshalEntries(t, mapText(t, valueTypesMessage)))
}

func TestMapOptionsAndReferences(t *testing.T) {
	const adt = "MSH|^~\\&|ADT1|VIGIL_HOSP|VIGIL|VIGIL_HOSP|20261125080000||ADT^A01^ADT_A01|A1|P|2.5.1\n" +
		"EVN|A01|20261125080000\n" +
		"PID|1||MRN1^^^VIGIL_HOSP^MR||Doe^Jane||19580214|F\n" +
		"PV1|1|E|ER^^^VIGIL_HOSP||||||||||||||||V9^^^VIGIL_HOSP^VN|||||||||||||||||||||||||20261125075500"
	oru := pcdHeader[:len(pcdHeader)-len("OBR|1|E1^GW|E1^GW|182777000^monitoring of patient^SCT|||20261125093000+0000\n")] +
		"PV1||I|ICU^W12^1^HOSP||||||||||||||||V7\n" +
		"OBR|1|E1^GW|E1^GW|182777000^monitoring of patient^SCT|||20261125093000+0000\n" +
		"OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64"
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	tests := []struct {
		name  string
		text  string
		opts  hl7map.Options
		check func(t *testing.T, res *hl7map.Result)
	}{
		{
			name: "assigning authority mapped by Options.Systems",
			text: adt,
			opts: hl7map.Options{Systems: map[string]string{"VIGIL_HOSP": "urn:oid:2.16.840.1.113883.3.9999"}},
			check: func(t *testing.T, res *hl7map.Result) {
				want := []string{
					"identifier=urn:oid:2.16.840.1.113883.3.9999|MRN1",
					"identifier=urn:oid:2.16.840.1.113883.3.9999|V9",
				}
				var got []string
				for _, e := range res.Entries {
					got = append(got, e.IfNoneExist)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("match queries (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "local times in Options.Location",
			text: adt,
			opts: hl7map.Options{Location: paris},
			check: func(t *testing.T, res *hl7map.Result) {
				enc := byType(res, "Encounter")[0]
				if got := enc["period"].(map[string]any)["start"]; got != "2026-11-25T07:55:00+01:00" {
					t.Errorf("period.start = %v, want 2026-11-25T07:55:00+01:00", got)
				}
				if got := enc["class"].(map[string]any)["code"]; got != "EMER" {
					t.Errorf("class = %v, want EMER", got)
				}
			},
		},
		{
			name: "ORU with a visit number references its Encounter",
			text: oru,
			opts: goldenOpts,
			check: func(t *testing.T, res *hl7map.Result) {
				var kinds []string
				for _, e := range res.Entries {
					kinds = append(kinds, e.Resource["resourceType"].(string))
					if e.UpdateIfExists {
						t.Errorf("%v of an ORU updates an existing one", e.Resource["resourceType"])
					}
				}
				if diff := cmp.Diff([]string{"Patient", "Encounter", "Device", "Observation"}, kinds); diff != "" {
					t.Fatalf("entries (-want +got):\n%s", diff)
				}
				enc, obs := res.Entries[1], res.Entries[3].Resource
				if got := obs["encounter"].(map[string]any)["reference"]; got != enc.FullURL {
					t.Errorf("Observation.encounter = %v, want %s", got, enc.FullURL)
				}
				if got := obs["subject"].(map[string]any)["reference"]; got != res.Entries[0].FullURL {
					t.Errorf("Observation.subject = %v, want the Patient entry", got)
				}
				if got := obs["device"].(map[string]any)["reference"]; got != res.Entries[2].FullURL {
					t.Errorf("Observation.device = %v, want the Device entry", got)
				}
				// No assigning authority: the sending facility (MSH-4) assigned it.
				if enc.IfNoneExist != "identifier=urn:vigil:hl7:ICU|V7" {
					t.Errorf("Encounter match = %q", enc.IfNoneExist)
				}
			},
		},
		{
			name: "same message maps to the same result",
			text: oru,
			opts: goldenOpts,
			check: func(t *testing.T, res *hl7map.Result) {
				again := mapText(t, oru)
				if diff := cmp.Diff(marshalEntries(t, again), marshalEntries(t, res)); diff != "" {
					t.Errorf("second mapping differs:\n%s", diff)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hl7v2.Parse([]byte(strings.ReplaceAll(tc.text, "\n", "\r")))
			if err != nil {
				t.Fatal(err)
			}
			res, err := hl7map.MapMessage(m, tc.opts)
			if err != nil {
				t.Fatalf("MapMessage: %v", err)
			}
			tc.check(t, res)
		})
	}
}
