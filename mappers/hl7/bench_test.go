package hl7map_test

import (
	"testing"

	"github.com/vigil-health/vigil/hl7v2"
	hl7map "github.com/vigil-health/vigil/mappers/hl7"
)

// BenchmarkMapMessage6OBX maps the 6-OBX PCD-01 report (parsed once) with
// the reading checks on.
func BenchmarkMapMessage6OBX(b *testing.B) {
	m := readMessage(b, "pcd01_oru_r01_6obx")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hl7map.MapMessage(m, goldenOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAndMap6OBX includes the parse, as the MLLP listener does.
func BenchmarkParseAndMap6OBX(b *testing.B) {
	m := readMessage(b, "pcd01_oru_r01_6obx")
	raw, err := m.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := hl7v2.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := hl7map.MapMessage(m, goldenOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeORU encodes a heart rate Observation.
func BenchmarkEncodeORU(b *testing.B) {
	c := outCases(b)[0]
	b.ReportAllocs()
	for b.Loop() {
		m, err := hl7map.EncodeORU(c.obs, c.patient, c.device, outOpts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
