package hl7v2

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func fixedAcker() *Acker {
	return &Acker{
		NewControlID: func() string { return "ACK42" },
		Now:          func() time.Time { return time.Date(2026, 11, 25, 9, 30, 16, 0, time.UTC) },
	}
}

func TestNewACKOriginalMode(t *testing.T) {
	m := mustParse(t, "lab_oru_r01.hl7") // MSH-15 AL MSH-16 NE: enhanced; make an original one
	m.Header().fields = m.Header().fields[:13]
	ack, err := fixedAcker().NewACK(m, AA)
	if err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|EHR|VIGIL_HOSP|LIS|VIGIL_LAB|20261125093016+0000||ACK^R01^ACK|ACK42|P|2.5.1\rMSA|AA|LAB000123\r"
	if diff := cmp.Diff(want, ack.String()); diff != "" {
		t.Errorf("ACK (-want +got):\n%s", diff)
	}
}

func TestNewACKSwapsHeadersKeepingComponents(t *testing.T) {
	m := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	ack, err := fixedAcker().NewACK(m, AA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ack, received string }{
		{"MSH-3", "MSH-5"}, {"MSH-4", "MSH-6"}, {"MSH-5", "MSH-3"}, {"MSH-6", "MSH-4"},
		{"MSH-11", "MSH-11"}, {"MSH-12", "MSH-12"}, {"MSH-18", "MSH-18"}, {"MSA-2", "MSH-10"},
	} {
		if got, want := ack.GetRaw(tc.ack), m.GetRaw(tc.received); got != want {
			t.Errorf("ACK %s = %q, want received %s %q", tc.ack, got, tc.received, want)
		}
	}
	if got := ack.GetRaw("MSH-5"); got != "VIGIL_MON^0012A1FFFE3C4D5E^EUI-64" {
		t.Errorf("MSH-5 = %q, want every component of the sender", got)
	}
	if got := ack.GetRaw("MSH-9"); got != "ACK^R01^ACK" {
		t.Errorf("MSH-9 = %q", got)
	}
	if !IsACK(ack) || IsACK(m) {
		t.Error("IsACK is wrong")
	}
	// PCD-01: MSH-15 NE, MSH-16 AL: the application acknowledgment is wanted.
	if got := ack.Get("MSA-1"); got != "AA" {
		t.Errorf("MSA-1 = %q, want AA", got)
	}
}

func TestNewACKModes(t *testing.T) {
	base := "MSH|^~\\&|S|SF|R|RF|20261125||ORU^R01^ORU_R01|C1|P|2.5.1|||%s|%s\rPID|1\r"
	for _, tc := range []struct {
		name           string
		msh15, msh16   string
		code           AckCode
		want           AckCode
		notRequested   bool
		responseWant   AckCode
		responseNoneOK bool
	}{
		{name: "original accept", code: AA, want: AA, responseWant: AA},
		{name: "original error", code: AE, want: AE, responseWant: AA},
		{name: "original maps commit codes", code: CR, want: AR, responseWant: AA},
		{name: "enhanced accept ack always", msh15: "AL", msh16: "NE", code: CA, want: CA, responseWant: CA},
		{name: "enhanced accept ack never", msh15: "NE", msh16: "AL", code: CA, notRequested: true, responseWant: AA},
		{name: "enhanced accept ack on error only, success", msh15: "ER", msh16: "NE", code: CA, notRequested: true, responseNoneOK: true},
		{name: "enhanced accept ack on error only, error", msh15: "ER", msh16: "NE", code: CE, want: CE, responseNoneOK: true},
		{name: "enhanced accept ack on success only, reject", msh15: "SU", msh16: "NE", code: CR, notRequested: true, responseWant: CA},
		{name: "enhanced application ack always", msh15: "NE", msh16: "AL", code: AE, want: AE, responseWant: AA},
		{name: "enhanced application ack never", msh15: "AL", msh16: "NE", code: AA, notRequested: true, responseWant: CA},
		{name: "enhanced empty accept type means always", msh15: "", msh16: "AL", code: CA, want: CA, responseWant: CA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(strings.Replace(strings.Replace(base, "%s", tc.msh15, 1), "%s", tc.msh16, 1)))
			if err != nil {
				t.Fatal(err)
			}
			ack, err := fixedAcker().NewACK(m, tc.code)
			if tc.notRequested {
				if !errors.Is(err, ErrNoACKRequested) {
					t.Fatalf("NewACK error = %v, want ErrNoACKRequested", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if got := AckCode(ack.Get("MSA-1")); got != tc.want {
					t.Errorf("MSA-1 = %s, want %s", got, tc.want)
				}
			}
			code, ok := ResponseCode(m, nil)
			if tc.responseNoneOK {
				if ok {
					t.Errorf("ResponseCode = %s, want none", code)
				}
			} else if !ok || code != tc.responseWant {
				t.Errorf("ResponseCode = %s, %v; want %s", code, ok, tc.responseWant)
			}
		})
	}
}

func TestNewACKErrors(t *testing.T) {
	m := mustParse(t, "bad_field_types.hl7")
	_, nmErr := m.SegmentN("OBX", 1).Field(5).NM()
	ack, err := fixedAcker().NewACK(m, AckCodeFor(nmErr), AsError(nmErr),
		&Error{Code: CodeRequiredFieldMissing, Severity: SeverityWarning, Location: Location{Segment: "PID", Field: 5}, Message: "name | missing"},
		AsError(errors.New("disk full at /var/lib/secret")))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"MSH|^~\\&|VIGIL|VIGIL_HOSP|VIGIL_GW|HOME|20261125093016+0000||ACK^R01^ACK|ACK42|P|2.6",
		"MSA|AE|BAD0004",
		"ERR||OBX^1^5^1^1|102^Data type error^HL70357|E||||not a number (NM)",
		"ERR||PID^1^5|101^Required field missing^HL70357|W||||name \\F\\ missing",
		"ERR|||207^Application internal error^HL70357|E||||application internal error",
	}, "\r") + "\r"
	if diff := cmp.Diff(want, ack.String()); diff != "" {
		t.Errorf("ACK (-want +got):\n%s", diff)
	}
	if got := ack.SegmentN("ERR", 2).Field(2).Rep(1).Component(3).Value(); got != "5" {
		t.Errorf("ERR(2)-2.3 = %q, want 5", got)
	}
}

func TestNoACKOfACK(t *testing.T) {
	m := mustParse(t, "ack_aa.hl7")
	if !IsACK(m) {
		t.Fatal("IsACK(ack_aa.hl7) = false")
	}
	if _, err := NewACK(m, AE); !errors.Is(err, ErrACKOfACK) {
		t.Errorf("NewACK(ACK) error = %v, want ErrACKOfACK", err)
	}
}

func TestNewACKDefaults(t *testing.T) {
	m := mustParse(t, "adt_a01.hl7")
	a1, err := NewACK(m, AA)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := NewACK(m, AA)
	id1, id2 := a1.ControlID(), a2.ControlID()
	if len(id1) != 20 || id1 == id2 {
		t.Errorf("control IDs %q and %q: want two different 20-character IDs", id1, id2)
	}
	if _, err := ParseDTM(a1.Get("MSH-7")); err != nil {
		t.Errorf("MSH-7 %q: %v", a1.Get("MSH-7"), err)
	}
	if _, err := NewACK(m, "XX"); err == nil {
		t.Error("NewACK with code XX succeeded")
	}
	if _, err := NewACK(&Message{}, AA); err == nil {
		t.Error("NewACK of an empty message succeeded")
	}
}

func TestAckCharsetFollowsReceived(t *testing.T) {
	m := mustParse(t, "charset_8859_1.hl7")
	ack, err := fixedAcker().NewACK(m, AE, &Error{Code: CodeInternalError, Message: "Zoë"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ack.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Zo\xeb") || ack.Get("MSH-18") != "8859/1" {
		t.Errorf("ACK is not in 8859/1: %q", b)
	}
}

func TestAcceptanceCheck(t *testing.T) {
	acc := Acceptance{
		MessageTypes:  map[string][]string{"ORU": {"R01"}, "ADT": nil},
		ProcessingIDs: []string{"P"},
		Versions:      []string{"2.5.1", "2.6"},
	}
	msh := func(typ, id, pid, ver, ackTypes string) string {
		return "MSH|^~\\&|S|SF|R|RF|20261125||" + typ + "|" + id + "|" + pid + "|" + ver + "|||" + ackTypes + "\rPID|1\r"
	}
	for _, tc := range []struct {
		name string
		in   string
		code ErrorCode
		loc  string
	}{
		{"accepted ORU", msh("ORU^R01", "1", "P", "2.6", ""), CodeSuccess, ""},
		{"any ADT event", msh("ADT^A28", "1", "P", "2.5.1", "AL|NE"), CodeSuccess, ""},
		{"fixture unknown type", string(readFixture(t, "bad_unknown_message_type.hl7")), CodeUnsupportedMessageType, "MSH-9.1"},
		{"unknown event", msh("ORU^R30", "1", "P", "2.6", ""), CodeUnsupportedEventCode, "MSH-9.2"},
		{"training processing", msh("ORU^R01", "1", "T", "2.6", ""), CodeUnsupportedProcessingID, "MSH-11.1"},
		{"old version", msh("ORU^R01", "1", "P", "2.3", ""), CodeUnsupportedVersionID, "MSH-12.1"},
		{"no type", msh("", "1", "P", "2.6", ""), CodeRequiredFieldMissing, "MSH-9.1"},
		{"no event", msh("ORU", "1", "P", "2.6", ""), CodeRequiredFieldMissing, "MSH-9.2"},
		{"no control ID", msh("ORU^R01", "", "P", "2.6", ""), CodeRequiredFieldMissing, "MSH-10"},
		{"no processing ID", msh("ORU^R01", "1", "", "2.6", ""), CodeRequiredFieldMissing, "MSH-11.1"},
		{"no version", msh("ORU^R01", "1", "P", "", ""), CodeRequiredFieldMissing, "MSH-12.1"},
		{"bad ack type", msh("ORU^R01", "1", "P", "2.6", "XX"), CodeTableValueNotFound, "MSH-15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			err = acc.Check(m)
			if tc.code == CodeSuccess {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			e := AsError(err)
			if e == nil || e.Code != tc.code || e.Location.String() != tc.loc {
				t.Errorf("Check = %v, want %d at %s", err, tc.code, tc.loc)
			}
			want := AE
			if tc.code >= 200 && tc.code <= 203 {
				want = AR
			}
			if got := AckCodeFor(err); got != want {
				t.Errorf("AckCodeFor = %s, want %s", got, want)
			}
		})
	}
	m := mustParse(t, "bad_unknown_message_type.hl7")
	if err := (Acceptance{}).Check(m); err != nil {
		t.Errorf("the zero Acceptance rejects: %v", err)
	}
}
