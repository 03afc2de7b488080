package hl7v2

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDTM(t *testing.T) {
	est := time.FixedZone("", -5*3600)
	ist := time.FixedZone("", 5*3600+30*60)
	for _, tc := range []struct {
		in   string
		want DTM
		err  bool
	}{
		{in: "", want: DTM{}},
		{in: "2026", want: DTM{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Precision: PrecisionYear}},
		{in: "202611", want: DTM{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Precision: PrecisionMonth}},
		{in: "20261125", want: DTM{Time: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Precision: PrecisionDay}},
		{in: "2026112509", want: DTM{Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), Precision: PrecisionHour}},
		{in: "202611250930", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Precision: PrecisionMinute}},
		{in: "20261125093015", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 15, 0, time.UTC), Precision: PrecisionSecond}},
		{in: "20261125093015.1", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 15, 100_000_000, time.UTC), Precision: PrecisionFraction, FracDigits: 1}},
		{in: "20261125093015.1234", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 15, 123_400_000, time.UTC), Precision: PrecisionFraction, FracDigits: 4}},
		{in: "20261125093015-0500", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 15, 0, est), Precision: PrecisionSecond, HasOffset: true}},
		{in: "20261125093015.25+0530", want: DTM{Time: time.Date(2026, 11, 25, 9, 30, 15, 250_000_000, ist), Precision: PrecisionFraction, FracDigits: 2, HasOffset: true}},
		{in: "20261125+0000", want: DTM{Time: time.Date(2026, 11, 25, 0, 0, 0, 0, time.FixedZone("", 0)), Precision: PrecisionDay, HasOffset: true}},
		{in: "20240229", want: DTM{Time: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), Precision: PrecisionDay}},
		{in: "20250229", err: true},
		{in: "20261345", err: true},
		{in: "2026112525", err: true},
		{in: "202611250960", err: true},
		{in: "2026-11-25", err: true},
		{in: "20261", err: true},
		{in: "20261125093015.12345", err: true},
		{in: "202611250930.5", err: true},
		{in: "20261125093015.", err: true},
		{in: "20261125093015+05", err: true},
		{in: "20261125093015+2500", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDTM(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("ParseDTM(%q) error = %v, want error %v", tc.in, err, tc.err)
			}
			if tc.err {
				return
			}
			if !got.Time.Equal(tc.want.Time) || got.Precision != tc.want.Precision || got.FracDigits != tc.want.FracDigits || got.HasOffset != tc.want.HasOffset {
				t.Errorf("ParseDTM(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			_, off := got.Time.Zone()
			_, wantOff := tc.want.Time.Zone()
			if off != wantOff {
				t.Errorf("offset = %d, want %d", off, wantOff)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want the input back", s)
			}
		})
	}
}

func TestParseNM(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"98.60", "98.60", false},
		{"-0.5", "-0.5", false},
		{"+12", "+12", false},
		{".5", ".5", false},
		{" 7 ", "7", false},
		{"", "", false},
		{"1.2.3", "", true},
		{"1e3", "", true},
		{"-", "", true},
		{"seventy", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseNM(tc.in)
			if (err != nil) != tc.err || got.Text != tc.want {
				t.Errorf("ParseNM(%q) = %q, %v; want %q, error %v", tc.in, got.Text, err, tc.want, tc.err)
			}
		})
	}
	if f := (NM{Text: "37.20"}).Float64(); f != 37.2 {
		t.Errorf("Float64 = %v", f)
	}
}

func TestTypedAccessors(t *testing.T) {
	pcd := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	lab := mustParse(t, "lab_oru_r01.hl7")
	t.Run("CX", func(t *testing.T) {
		got := pcd.Segment("PID").Field(3).Reps()
		want := []CX{
			{ID: "MRN0012345", AssigningAuthority: HD{"VIGIL_HOSP", "2.16.840.1.113883.3.9999", "ISO"}, IdentifierTypeCode: "MR"},
			{ID: "998877665", AssigningAuthority: HD{NamespaceID: "USSSA"}, IdentifierTypeCode: "SS"},
		}
		var cxs []CX
		for _, r := range got {
			cxs = append(cxs, r.CX())
		}
		if diff := cmp.Diff(want, cxs); diff != "" {
			t.Errorf("PID-3 (-want +got):\n%s", diff)
		}
	})
	t.Run("XPN", func(t *testing.T) {
		want := XPN{FamilyName: "Doe", GivenName: "Jane", MiddleName: "Q", Suffix: "Jr", Prefix: "Dr", Degree: "MD", NameTypeCode: "L"}
		if diff := cmp.Diff(want, lab.Segment("PID").Field(5).XPN()); diff != "" {
			t.Errorf("PID-5 (-want +got):\n%s", diff)
		}
	})
	t.Run("XAD", func(t *testing.T) {
		want := XAD{Street: "100 Main St", OtherDesignation: "Apt 4", City: "Springfield", State: "IL", Zip: "62701", Country: "USA", AddressType: "H"}
		if diff := cmp.Diff(want, lab.Segment("PID").Field(11).XAD()); diff != "" {
			t.Errorf("PID-11 (-want +got):\n%s", diff)
		}
	})
	t.Run("CWE", func(t *testing.T) {
		want := CWE{Identifier: "260385009", Text: "Negative", CodingSystem: "SCT", AltIdentifier: "NEG", AltText: "negative", AltCodingSystem: "L", CodingSystemVersion: "20250301", OriginalText: "Negative"}
		if diff := cmp.Diff(want, lab.SegmentN("OBX", 4).Field(5).CWE()); diff != "" {
			t.Errorf("OBX(4)-5 (-want +got):\n%s", diff)
		}
		mdc := CWE{Identifier: "150456", Text: "MDC_PULS_OXIM_SAT_O2", CodingSystem: "MDC"}
		if diff := cmp.Diff(mdc, pcd.SegmentN("OBX", 7).Field(3).CWE()); diff != "" {
			t.Errorf("OBX(7)-3 (-want +got):\n%s", diff)
		}
	})
	t.Run("EI and HD", func(t *testing.T) {
		if diff := cmp.Diff(EI{EntityIdentifier: "0012A1FFFE3C4D5E", NamespaceID: "EUI-64"}, pcd.SegmentN("OBX", 4).Field(18).EI()); diff != "" {
			t.Errorf("OBX-18 (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(HD{"VIGIL_MON", "0012A1FFFE3C4D5E", "EUI-64"}, pcd.Header().Field(3).HD()); diff != "" {
			t.Errorf("MSH-3 (-want +got):\n%s", diff)
		}
	})
	t.Run("MSG PT VID", func(t *testing.T) {
		h := pcd.Header()
		if diff := cmp.Diff(MSG{"ORU", "R01", "ORU_R01"}, h.Field(9).MSG()); diff != "" {
			t.Errorf("MSH-9 (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(PT{ProcessingID: "P"}, h.Field(11).PT()); diff != "" {
			t.Errorf("MSH-11 (-want +got):\n%s", diff)
		}
		if got := h.Field(12).VID().VersionID; got != "2.6" {
			t.Errorf("MSH-12 = %q", got)
		}
	})
	t.Run("NM keeps text", func(t *testing.T) {
		n, err := pcd.SegmentN("OBX", 16).Field(5).NM()
		if err != nil || n.Text != "37.20" {
			t.Errorf("OBX(16)-5 = %q, %v; want 37.20", n.Text, err)
		}
	})
	t.Run("SN", func(t *testing.T) {
		for _, tc := range []struct {
			seg  int
			want SN
		}{
			{5, SN{Comparator: ">", Num1: NM{"1000"}}},
			{6, SN{Num1: NM{"1"}, Separator: ":", Num2: NM{"128"}}},
		} {
			got, err := lab.SegmentN("OBX", tc.seg).Field(5).SN()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("OBX(%d)-5 (-want +got):\n%s", tc.seg, diff)
			}
		}
	})
	t.Run("CQ", func(t *testing.T) {
		m, err := Parse([]byte("MSH|^~\\&|A\rTQ1|1|2^mL&milliliter&UCUM\r"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Segment("TQ1").Field(2).CQ()
		want := CQ{Quantity: NM{"2"}, Units: CWE{Identifier: "mL", Text: "milliliter", CodingSystem: "UCUM"}}
		if err != nil || !cmp.Equal(want, got) {
			t.Errorf("CQ = %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("TS", func(t *testing.T) {
		ts, err := pcd.SegmentN("OBX", 4).Field(14).TS()
		if err != nil || !ts.HasOffset || ts.Precision != PrecisionSecond || !ts.Time.Equal(time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)) {
			t.Errorf("OBX-14 = %+v, %v", ts, err)
		}
	})
}

func TestTypeErrorsCarryLocation(t *testing.T) {
	m := mustParse(t, "bad_field_types.hl7")
	obx1, obx2 := m.SegmentN("OBX", 1), m.SegmentN("OBX", 2)
	_, errNM := obx1.Field(5).NM()
	_, errTS := obx1.Field(14).TS()
	_, errOBR := m.Segment("OBR").Field(7).TS()
	_, errSN := obx2.Field(5).Rep(2).SN()
	for _, tc := range []struct {
		name string
		err  error
		loc  string
	}{
		{"NM", errNM, "OBX-5.1"},
		{"TS out of range", errTS, "OBX-14.1"},
		{"TS with dashes", errOBR, "OBR-7.1"},
		{"SN", errSN, "OBX(2)-5(2).2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *Error
			if !errors.As(tc.err, &e) {
				t.Fatalf("error = %v, want *Error", tc.err)
			}
			if e.Code != CodeDataType || e.Location.String() != tc.loc {
				t.Errorf("error = %d at %s, want 102 at %s", e.Code, e.Location, tc.loc)
			}
		})
	}
}
