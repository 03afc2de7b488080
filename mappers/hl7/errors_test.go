package hl7map_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

// problemSummary is what the sender sees of a problem in the ERR segment.
type problemSummary struct {
	Code     hl7v2.ErrorCode
	Location string
}

func summarize(err error) []problemSummary {
	var me *hl7map.MappingError
	if !errors.As(err, &me) {
		return nil
	}
	var out []problemSummary
	for _, p := range me.Problems {
		out = append(out, problemSummary{Code: p.Code, Location: p.Location.String()})
	}
	return out
}

func parseText(t *testing.T, text string) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse([]byte(strings.ReplaceAll(strings.TrimSpace(text), "\n", "\r")))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

const (
	pcdHeader = "MSH|^~\\&|GW^0012A1FFFE3C4D5E^EUI-64|ICU|VIGIL|HOSP|20261125093015+0000||ORU^R01^ORU_R01|E1|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\n" +
		"PID|||MRN1^^^HOSP^MR\n" +
		"OBR|1|E1^GW|E1^GW|182777000^monitoring of patient^SCT|||20261125093000+0000\n"
)

func TestMapMessageErrors(t *testing.T) {
	tests := []struct {
		name    string
		fixture string // a file of testdata/hl7, or
		text    string // a message, segments on lines
		opts    hl7map.Options
		want    []problemSummary
		kind    error
		ack     hl7v2.AckCode
	}{
		{
			name:    "unsupported message type",
			fixture: "bad_unknown_message_type",
			want:    []problemSummary{{200, "MSH-9.1"}},
			kind:    hl7map.ErrUnsupported,
			ack:     hl7v2.AR,
		},
		{
			name: "unsupported ORU event",
			text: strings.Replace(pcdHeader, "ORU^R01^ORU_R01", "ORU^R30^ORU_R30", 1) + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			want: []problemSummary{{201, "MSH-9.2"}},
			kind: hl7map.ErrUnsupported,
			ack:  hl7v2.AR,
		},
		{
			name: "unsupported ADT event",
			text: "MSH|^~\\&|ADT1|HOSP|VIGIL|HOSP|20261125080000||ADT^A02^ADT_A02|A2|P|2.5.1\nPID|1||MRN1^^^HOSP^MR",
			want: []problemSummary{{201, "MSH-9.2"}},
			kind: hl7map.ErrUnsupported,
			ack:  hl7v2.AR,
		},
		{
			name:    "bad field types",
			fixture: "bad_field_types",
			want: []problemSummary{
				{102, "OBR-7.1"},
				{102, "OBX-5.1"},
				{102, "OBX-14.1"},
				{101, "OBX-18"},
				{102, "OBX(2)-5(2)"},
				{101, "OBX(2)-18"},
			},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "bad times",
			text: strings.Replace(pcdHeader, "20261125093000+0000\n", "2026-11-25T09:00\n", 1) +
				"OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261345250000||||0012A1FFFE3C4D5E^EUI-64\n" +
				"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||||||0012A1FFFE3C4D5E^EUI-64",
			want: []problemSummary{
				{102, "OBR-7.1"},
				{102, "OBX-14.1"},
			},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "unknown result status",
			text: pcdHeader + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||Q|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			want: []problemSummary{{103, "OBX-11"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "value outside the physical range",
			text: pcdHeader + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|720|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			opts: goldenOpts,
			want: []problemSummary{{102, "OBX-5"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "reading in the future",
			text: pcdHeader + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20271125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			opts: goldenOpts,
			want: []problemSummary{{102, "OBX-14"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "text reading in the future",
			text: pcdHeader + "OBX|1|ST|184326^MDC_ECG_ELEC_POTL_LEAD_OFF^MDC|1.1.1.1|lead V2 off||||||F|||20271125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			opts: goldenOpts,
			want: []problemSummary{{102, "OBX-14"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "wrong unit for the metric",
			text: pcdHeader + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|266016^MDC_DIM_MMHG^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			opts: goldenOpts,
			want: []problemSummary{{102, "OBX-6"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "no device identity",
			text: strings.Replace(pcdHeader, "GW^0012A1FFFE3C4D5E^EUI-64", "GW", 1) + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000",
			want: []problemSummary{{101, "OBX-18"}},
			kind: hl7map.ErrMissing,
			ack:  hl7v2.AE,
		},
		{
			name: "malformed EUI-64",
			text: pcdHeader + "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1^EUI-64",
			want: []problemSummary{{102, "OBX-18"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "same reading twice",
			text: pcdHeader +
				"OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\n" +
				"OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|73|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64",
			want: []problemSummary{{205, "OBX(2)-3"}},
			kind: hl7map.ErrDuplicate,
			ack:  hl7v2.AE,
		},
		{
			name: "ORU without PID",
			text: "MSH|^~\\&|LIS|LAB|EHR|HOSP|20261125101500||ORU^R01^ORU_R01|L1|P|2.5.1\nOBR|1||F1^LIS|2345-7^Glucose^LN\nOBX|1|NM|2345-7^Glucose^LN||98|mg/dL^^UCUM|||||F",
			want: []problemSummary{{100, "PID"}},
			kind: hl7map.ErrMissing,
			ack:  hl7v2.AE,
		},
		{
			name: "patient without identifier",
			text: "MSH|^~\\&|ADT1|HOSP|VIGIL|HOSP|20261125080000||ADT^A08^ADT_A01|A8|P|2.5.1\nPID|1||||Doe^Jane\nPV1|1|I|||||||||||||||||V1",
			want: []problemSummary{{101, "PID-3"}},
			kind: hl7map.ErrMissing,
			ack:  hl7v2.AE,
		},
		{
			name: "A01 without visit number",
			text: "MSH|^~\\&|ADT1|HOSP|VIGIL|HOSP|20261125080000||ADT^A01^ADT_A01|A1|P|2.5.1\nPID|1||MRN1^^^HOSP^MR\nPV1|1|I",
			want: []problemSummary{{101, "PV1-19"}},
			kind: hl7map.ErrMissing,
			ack:  hl7v2.AE,
		},
		{
			name:    "A03 admitted after its discharge",
			fixture: "adt_a03",
			want:    []problemSummary{{102, "PV1-44"}},
			kind:    hl7map.ErrInvalid,
			ack:     hl7v2.AE,
		},
		{
			name: "unknown administrative sex",
			text: "MSH|^~\\&|ADT1|HOSP|VIGIL|HOSP|20261125080000||ADT^A28^ADT_A05|A28|P|2.5.1\nPID|1||MRN1^^^HOSP^MR||Doe^Jane||19580214|Q",
			want: []problemSummary{{103, "PID-8"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
		{
			name: "lab value type not mapped",
			text: "MSH|^~\\&|LIS|LAB|EHR|HOSP|20261125101500||ORU^R01^ORU_R01|L2|P|2.5.1\nPID|1||MRN1^^^HOSP^MR\nOBR|1||F1^LIS|11502-2^Lab report^LN\nOBX|1|ED|11502-2^Lab report^LN||^application^pdf^Base64^JVBERi0=||||||F",
			want: []problemSummary{{103, "OBX-2"}},
			kind: hl7map.ErrInvalid,
			ack:  hl7v2.AE,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m *hl7v2.Message
			if tc.fixture != "" {
				m = readMessage(t, tc.fixture)
			} else {
				m = parseText(t, tc.text)
			}
			res, err := hl7map.MapMessage(m, tc.opts)
			if err == nil {
				t.Fatalf("MapMessage succeeded with %d entries, want an error", len(res.Entries))
			}
			if diff := cmp.Diff(tc.want, summarize(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nerror: %v", diff, err)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(err, %v) is false: %v", tc.kind, err)
			}
			he := hl7v2.AsError(err)
			if he.Code != tc.want[0].Code {
				t.Errorf("hl7v2.AsError code = %d, want %d", he.Code, tc.want[0].Code)
			}
			if got := hl7v2.AckCodeFor(err); got != tc.ack {
				t.Errorf("AckCodeFor = %s, want %s", got, tc.ack)
			}
			var me *hl7map.MappingError
			errors.As(err, &me)
			ack, err := hl7v2.NewACK(m, tc.ack, me.Problems...)
			if err != nil {
				t.Fatalf("NewACK: %v", err)
			}
			if n := len(ack.SegmentsNamed("ERR")); n != len(tc.want) {
				t.Errorf("ACK has %d ERR segments, want %d", n, len(tc.want))
			}
		})
	}
}
