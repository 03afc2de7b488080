package hl7v2

import "testing"

func BenchmarkParse6OBX(b *testing.B) {
	data := readFixture(b, "pcd01_oru_r01_6obx.hl7")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndRead6OBX(b *testing.B) {
	data := readFixture(b, "pcd01_oru_r01_6obx.hl7")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		for _, obx := range m.SegmentsNamed("OBX") {
			_ = obx.Field(3).CWE()
			if _, err := obx.Field(5).NM(); err != nil {
				b.Fatal(err)
			}
			_ = obx.Field(18).EI()
		}
	}
}

func BenchmarkEncode6OBX(b *testing.B) {
	data := readFixture(b, "pcd01_oru_r01_6obx.hl7")
	m, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := m.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewACK(b *testing.B) {
	m, err := Parse(readFixture(b, "pcd01_oru_r01_6obx.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ack, err := NewACK(m, AA)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ack.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
