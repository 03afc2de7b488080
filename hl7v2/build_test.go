package hl7v2

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildMessage(t *testing.T) {
	m, err := New(DefaultDelimiters)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct{ loc, value string }{
		{"MSH-3.1", "VIGIL"},
		{"MSH-3.2", "0012A1FFFE3C4D5E"},
		{"MSH-3.3", "EUI-64"},
		{"MSH-7", "20261125093015+0000"},
		{"MSH-9.1", "ORU"},
		{"MSH-9.2", "R01"},
		{"MSH-9.3", "ORU_R01"},
		{"MSH-10", "B1"},
		{"MSH-11", "P"},
		{"MSH-12", "2.6"},
		{"MSH-21.1", "IHE_PCD_001"},
		{"PID-3(2).1", "998877665"},
		{"PID-3(1).1", "MRN1"},
		{"PID-3(1).4.2", "2.16.840.1.113883.3.9999"},
		{"PID-5.1", "O'Brien & Sons"},
		{"OBX-3", "147842^MDC_ECG_HEART_RATE"},
		{"OBX-5", "72"},
		{"OBX(2)-5", "line1\nline2"},
	}
	for _, s := range steps {
		if err := m.Set(s.loc, s.value); err != nil {
			t.Fatalf("Set(%s): %v", s.loc, err)
		}
	}
	if err := m.SetNull("PID-8"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetRaw("OBX-6", "264864^MDC_DIM_BEAT_PER_MIN^MDC"); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`MSH|^~\&|VIGIL^0012A1FFFE3C4D5E^EUI-64||||20261125093015+0000||ORU^R01^ORU_R01|B1|P|2.6|||||||||IHE_PCD_001`,
		`PID|||MRN1^^^&2.16.840.1.113883.3.9999~998877665||O'Brien \T\ Sons|||""`,
		`OBX|||147842\S\MDC_ECG_HEART_RATE||72|264864^MDC_DIM_BEAT_PER_MIN^MDC`,
		`OBX|||||line1\.br\line2`,
	}, "\r") + "\r"
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("built message (-want +got):\n%s", diff)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.loc == "OBX-3" {
			continue // set as one escaped value: reads back whole only from component 1
		}
		if v := back.Get(s.loc); v != s.value {
			t.Errorf("after a round trip Get(%s) = %q, want %q", s.loc, v, s.value)
		}
	}
}

func TestSetErrors(t *testing.T) {
	m, _ := New(DefaultDelimiters)
	for _, tc := range []struct{ name, loc, value string }{
		{"MSH-1 is fixed", "MSH-1", "!"},
		{"MSH-2 is fixed", "MSH-2", "!"},
		{"no field", "PID", "x"},
		{"skipped segment occurrence", "OBX(3)-5", "x"},
		{"bad location", "pid-3", "x"},
		{"segment terminator", "PID-3", "a\rb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.name == "segment terminator" {
				err = m.SetRaw(tc.loc, tc.value)
			} else {
				err = m.Set(tc.loc, tc.value)
			}
			if err == nil {
				t.Errorf("Set(%s) succeeded, want an error", tc.loc)
			}
		})
	}
	if _, err := m.AddSegment("MSH"); err == nil {
		t.Error("AddSegment(MSH) on a message with an MSH succeeded")
	}
	if _, err := New(Delimiters{Field: '|', Component: '|', Repetition: '~', Escape: '\\', Subcomponent: '&'}); err == nil {
		t.Error("New with repeated delimiters succeeded")
	}
}

func TestSetKeepsOtherParts(t *testing.T) {
	m := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	if err := m.Segment("PID").Set("3(2).1", "111"); err != nil {
		t.Fatal(err)
	}
	if got := m.GetRaw("PID-3"); got != "MRN0012345^^^VIGIL_HOSP&2.16.840.1.113883.3.9999&ISO^MR~111^^^USSSA^SS" {
		t.Errorf("PID-3 = %q", got)
	}
	if err := m.SetCharset("8859/1"); err != nil {
		t.Fatal(err)
	}
	if got := m.Get("MSH-18"); got != "8859/1" {
		t.Errorf("MSH-18 = %q", got)
	}
	if err := m.SetCharset("KLINGON"); err == nil {
		t.Error("SetCharset(KLINGON) succeeded")
	}
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
		err  bool
	}{
		{in: "PID", want: Location{Segment: "PID"}},
		{in: "PID-3", want: Location{Segment: "PID", Field: 3}},
		{in: "PID-3(2).1.2", want: Location{Segment: "PID", Field: 3, Rep: 2, Comp: 1, Sub: 2}},
		{in: "OBX(12)-5", want: Location{Segment: "OBX", SegmentIndex: 12, Field: 5}},
		{in: "ZX1-1", want: Location{Segment: "ZX1", Field: 1}},
		{in: "PI", err: true},
		{in: "PID-", err: true},
		{in: "PID-0", err: true},
		{in: "PID-3(", err: true},
		{in: "PID-3.1.2.3", err: true},
		{in: "PID.3", err: true},
		{in: "PID-99999999", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLocation(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("error = %v, want error %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !tc.err && got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}
