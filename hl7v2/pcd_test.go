package hl7v2

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseContainment(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Containment
		level string
		err   bool
	}{
		{in: "1.0.0.0", want: Containment{1, 0, 0, 0}, level: "MDS"},
		{in: "1.2.0.0", want: Containment{1, 2, 0, 0}, level: "VMD"},
		{in: "1.2.1.0", want: Containment{1, 2, 1, 0}, level: "CHAN"},
		{in: "1.2.1.3", want: Containment{1, 2, 1, 3}, level: "METRIC"},
		{in: "1", want: Containment{1, 0, 0, 0}, level: "MDS"},
		{in: "", err: true},
		{in: "1.2.3.4.5", err: true},
		{in: "1..3", err: true},
		{in: "a.b", err: true},
		{in: "-1.0", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseContainment(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("error = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if got != tc.want || got.Level() != tc.level {
				t.Errorf("ParseContainment(%q) = %+v (%s), want %+v (%s)", tc.in, got, got.Level(), tc.want, tc.level)
			}
		})
	}
}

func TestPCD01MonitorContainmentTree(t *testing.T) {
	m := mustParse(t, "pcd01_oru_r01_monitor.hl7")
	if !m.HasProfile(ProfilePCD01) {
		t.Fatal("fixture lacks the PCD-01 profile")
	}
	var rows []string
	for _, obx := range m.SegmentsNamed("OBX") {
		c, err := obx.Field(4).Containment()
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, c.Level()+":"+obx.Field(3).CWE().Identifier)
	}
	want := "MDS:69965 VMD:69798 CHAN:69799 METRIC:147842 VMD:69642 CHAN:69643 METRIC:150456 " +
		"VMD:69854 CHAN:70710 METRIC:150021 METRIC:150022 METRIC:150023 VMD:70666 METRIC:151562 VMD:69902 METRIC:150344"
	if diff := cmp.Diff(want, strings.Join(rows, " ")); diff != "" {
		t.Errorf("containment rows (-want +got):\n%s", diff)
	}
	if _, err := mustParse(t, "lab_oru_r01.hl7").Segment("OBX").Field(4).Containment(); err == nil {
		t.Error("an empty OBX-4 read as a containment")
	}
}
