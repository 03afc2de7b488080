package hl7v2

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wellFormed are the fixtures with CR terminators whose encoding must equal their bytes.
var wellFormed = []string{
	"pcd01_oru_r01_monitor.hl7",
	"pcd01_oru_r01_6obx.hl7",
	"lab_oru_r01.hl7",
	"adt_a01.hl7",
	"adt_a04.hl7",
	"adt_a08.hl7",
	"adt_a03.hl7",
	"escapes.hl7",
	"msh2_5char.hl7",
	"charset_windows1252.hl7",
	"charset_8859_1.hl7",
	"ack_aa.hl7",
	"bad_unknown_message_type.hl7",
	"bad_field_types.hl7",
}

func TestRoundTripByteIdentical(t *testing.T) {
	for _, name := range wellFormed {
		t.Run(name, func(t *testing.T) {
			in := readFixture(t, name)
			m, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(in), string(out)); diff != "" {
				t.Errorf("encode(parse(x)) != x (-in +out):\n%s", diff)
			}
		})
	}
}

func TestSegmentSeparators(t *testing.T) {
	for _, tc := range []struct {
		name, file, controlID string
	}{
		{"LF", "separators_lf.hl7", "LF0001"},
		{"CRLF", "separators_crlf.hl7", "CRLF0001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFixture(t, tc.file)
			m, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(m.Segments()); got != 4 {
				t.Errorf("segments = %d, want 4", got)
			}
			if got := m.ControlID(); got != tc.controlID {
				t.Errorf("MSH-10 = %q, want %q", got, tc.controlID)
			}
			out, _ := m.Encode()
			want := strings.NewReplacer("\r\n", "\r", "\n", "\r").Replace(string(in))
			if diff := cmp.Diff(want, string(out)); diff != "" {
				t.Errorf("encoding is not the CR-normalised input (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	big := "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1\r" + strings.Repeat("NTE|1\r", 20)
	for _, tc := range []struct {
		name    string
		in      string
		parser  Parser
		code    ErrorCode
		loc     string
		isLimit bool
	}{
		{name: "no MSH", in: string(readFixture(t, "bad_no_msh.hl7")), code: CodeSegmentSequence, loc: "MSH"},
		{name: "empty", in: "", code: CodeSegmentSequence, loc: "MSH"},
		{name: "bad MSH-2", in: string(readFixture(t, "bad_msh2.hl7")), code: CodeDataType, loc: "MSH-2"},
		{name: "repeated delimiter", in: "MSH|^^\\&|A\r", code: CodeDataType, loc: "MSH-2"},
		{name: "alphanumeric field separator", in: "MSHX^~\\&XA\r", code: CodeDataType, loc: "MSH-1"},
		{name: "truncated MSH", in: "MSH", code: CodeDataType, loc: "MSH-1"},
		{name: "batch header", in: string(readFixture(t, "batch_file.hl7")), code: CodeSegmentSequence, loc: "MSH"},
		{name: "bad segment ID", in: "MSH|^~\\&|A\rpid|1\r", code: CodeSegmentSequence},
		{name: "second MSH", in: "MSH|^~\\&|A\rMSH|^~\\&|B\r", code: CodeSegmentSequence, loc: "MSH(2)"},
		{name: "unsupported charset", in: "MSH|^~\\&|A||||||ADT^A01|1|P|2.5.1||||||ISO IR87\r", code: CodeTableValueNotFound, loc: "MSH-18"},
		{name: "declared UTF-8 but not", in: "MSH|^~\\&|A||||||ADT^A01|1|P|2.5.1||||||UNICODE UTF-8\rPID|||\xff\r", code: CodeDataType, loc: "MSH-18"},
		{name: "too large", in: big, parser: Parser{MaxBytes: 100}, code: CodeInternalError, isLimit: true},
		{name: "too many segments", in: big, parser: Parser{MaxSegments: 10}, code: CodeInternalError, isLimit: true},
		{name: "too many fields", in: "MSH|^~\\&|A\rPID" + strings.Repeat("|", 50) + "\r", parser: Parser{MaxFields: 40}, code: CodeInternalError, isLimit: true},
		{name: "too many repetitions", in: "MSH|^~\\&|A\rPID|||1~2~3~4\r", parser: Parser{MaxRepetitions: 3}, code: CodeInternalError, loc: "PID-3", isLimit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.parser.Parse([]byte(tc.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v, want an *Error", err)
			}
			if e.Code != tc.code || e.Location.String() != tc.loc {
				t.Errorf("error = %d at %q, want %d at %q (%v)", e.Code, e.Location, tc.code, tc.loc, err)
			}
			if got := errors.Is(err, ErrLimit); got != tc.isLimit {
				t.Errorf("errors.Is(err, ErrLimit) = %v, want %v", got, tc.isLimit)
			}
		})
	}
}

func TestGet(t *testing.T) {
	m := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	for _, tc := range []struct{ loc, want string }{
		{"MSH-1", "|"},
		{"MSH-2", `^~\&`},
		{"MSH-3", "VIGIL_MON"},
		{"MSH-3.2", "0012A1FFFE3C4D5E"},
		{"MSH-9", "ORU"},
		{"MSH-9.3", "ORU_R01"},
		{"MSH-21.1", "IHE_PCD_001"},
		{"PID-3", "MRN0012345"},
		{"PID-3(1).4.2", "2.16.840.1.113883.3.9999"},
		{"PID-3(2).1", "998877665"},
		{"PID-3(2).5", "SS"},
		{"PID-3(3).1", ""},
		{"PID-5.2", "Jane"},
		{"OBX-3.1", "69965"},
		{"OBX(4)-3.1", "147842"},
		{"OBX(4)-5", "72"},
		{"OBX(4)-17.1", "AMEAS"},
		{"OBX(16)-5", "37.20"},
		{"OBX(16)-6.2", "MDC_DIM_DEGC"},
		{"OBX(2)-18.2", "EUI-64"},
		{"OBX(99)-5", ""},
		{"ZZZ-1", ""},
		{"PID-99", ""},
		{"not a location", ""},
	} {
		t.Run(tc.loc, func(t *testing.T) {
			if got := m.Get(tc.loc); got != tc.want {
				t.Errorf("Get(%q) = %q, want %q", tc.loc, got, tc.want)
			}
		})
	}
}

func TestModelByIndex(t *testing.T) {
	m := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	pid := m.Segment("PID")
	f := pid.Field(3)
	if got := f.NumReps(); got != 2 {
		t.Fatalf("PID-3 repetitions = %d, want 2", got)
	}
	aa := f.Rep(1).Component(4)
	if got := aa.NumSubcomponents(); got != 3 {
		t.Errorf("PID-3.4 subcomponents = %d, want 3", got)
	}
	var subs []string
	for _, s := range aa.Subs() {
		subs = append(subs, s.Value())
	}
	if diff := cmp.Diff([]string{"VIGIL_HOSP", "2.16.840.1.113883.3.9999", "ISO"}, subs); diff != "" {
		t.Errorf("PID-3.4 subcomponents (-want +got):\n%s", diff)
	}
	if got := aa.Sub(2).Location().String(); got != "PID-3.4.2" {
		t.Errorf("location = %q, want PID-3.4.2", got)
	}
	if got, want := len(m.SegmentsNamed("OBX")), 16; got != want {
		t.Errorf("OBX segments = %d, want %d", got, want)
	}
	obx := m.SegmentN("OBX", 7)
	if obx.Index() != 7 || obx.Get("5") != "97" || obx.Field(5).Location().String() != "OBX(7)-5" {
		t.Errorf("OBX(7): index %d, OBX-5 %q, location %s", obx.Index(), obx.Get("5"), obx.Field(5).Location())
	}
	if got := pid.NumFields(); got != 8 {
		t.Errorf("PID fields = %d, want 8", got)
	}
	if !m.HasProfile("IHE_PCD_001") || m.HasProfile("IHE_PCD_002") {
		t.Error("HasProfile does not read MSH-21")
	}
	if got := m.GetRaw("PID-5"); got != "Doe^Jane^Q^^^^L" {
		t.Errorf("GetRaw(PID-5) = %q", got)
	}
}

func TestNullVersusEmpty(t *testing.T) {
	m, err := Parse([]byte("MSH|^~\\&|A\rPID|1||\"\"||Doe^\"\"^^X\r"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		loc         string
		null, empty bool
	}{
		{"PID-2", false, true},
		{"PID-3", true, false},
		{"PID-5.2", true, false},
		{"PID-5.3", false, true},
		{"PID-5.4", false, false},
		{"PID-40", false, true},
	} {
		t.Run(tc.loc, func(t *testing.T) {
			l, _ := ParseLocation(tc.loc)
			v := m.At(l)
			if v.IsNull() != tc.null || v.IsEmpty() != tc.empty || m.IsNull(tc.loc) != tc.null {
				t.Errorf("%s: null %v empty %v, want %v %v", tc.loc, v.IsNull(), v.IsEmpty(), tc.null, tc.empty)
			}
			if tc.null && v.Value() != "" {
				t.Errorf("%s: null reads as %q, want \"\"", tc.loc, v.Value())
			}
		})
	}
}

func TestCharsets(t *testing.T) {
	for _, tc := range []struct {
		name, file, loc, want, charset string
	}{
		{"windows-1252 fallback", "charset_windows1252.hl7", "PID-5.1", "Müller", ""},
		{"windows-1252 given name", "charset_windows1252.hl7", "PID-5.2", "Zoë", ""},
		{"windows-1252 punctuation", "charset_windows1252.hl7", "NTE-3", "Co-pay € 20 – paid “in full”", ""},
		{"8859/1 family", "charset_8859_1.hl7", "PID-5.1", "Jäger", "8859/1"},
		{"8859/1 city", "charset_8859_1.hl7", "PID-11.3", "Düsseldorf", "8859/1"},
		{"UTF-8", "pcd01_oru_r01_monitor.hl7", "MSH-18", "UNICODE UTF-8", "UNICODE UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.file)
			if got := m.Get(tc.loc); got != tc.want {
				t.Errorf("Get(%s) = %q, want %q", tc.loc, got, tc.want)
			}
			if m.Charset() != tc.charset {
				t.Errorf("Charset() = %q, want %q", m.Charset(), tc.charset)
			}
		})
	}
	t.Run("hex escape in 8859/1", func(t *testing.T) {
		m, err := Parse([]byte("MSH|^~\\&|A||||||ADT^A08|1|P|2.5.1||||||8859/1\rNTE|1||caf\\XE9\\\r"))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Get("NTE-3"); got != "café" {
			t.Errorf("NTE-3 = %q, want café", got)
		}
	})
	t.Run("unrepresentable text", func(t *testing.T) {
		m := mustParse(t, "charset_8859_1.hl7")
		if err := m.Set("PID-5.1", "Jäger €"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Encode(); err == nil {
			t.Error("Encode of € in 8859/1 succeeded, want an error")
		}
	})
}

func TestFiveCharacterEncoding(t *testing.T) {
	m := mustParse(t, "msh2_5char.hl7")
	if got := m.Delimiters().Truncation; got != '#' {
		t.Errorf("truncation character = %q, want '#'", got)
	}
	if got := m.Get("MSH-2"); got != `^~\&#` {
		t.Errorf("MSH-2 = %q", got)
	}
	if got := m.Get("OBX-5"); got != "Room #12 hash" {
		t.Errorf("OBX-5 = %q, want \\P\\ decoded to #", got)
	}
	if err := m.Set("OBX-5", "Bed #4"); err != nil {
		t.Fatal(err)
	}
	if got := m.GetRaw("OBX-5"); got != `Bed \P\4` {
		t.Errorf("raw OBX-5 = %q, want the truncation character escaped", got)
	}
}
