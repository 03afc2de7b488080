package hl7v2_test

import (
	"fmt"
	"time"

	"github.com/vigil-health/vigil/hl7v2"
)

func ExampleParse() {
	raw := "MSH|^~\\&|MON^0012A1FFFE3C4D5E^EUI-64||VIGIL||20261125093015+0000||ORU^R01^ORU_R01|C1|P|2.6|||NE|AL|||||IHE_PCD_001\r" +
		"PID|||MRN1^^^HOSP^MR||Doe^Jane\r" +
		"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97.0|262688^MDC_DIM_PERCENT^MDC|||||R|||20261125093000+0000||||0012A1FFFE3C4D5E^EUI-64\r"
	m, err := hl7v2.Parse([]byte(raw))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.MessageType().Trigger, m.HasProfile("IHE_PCD_001"), m.Get("PID-3.4"))
	for _, obx := range m.SegmentsNamed("OBX") {
		code := obx.Field(3).CWE()
		value, _ := obx.Field(5).NM()
		when, _ := obx.Field(14).TS()
		device := obx.Field(18).EI()
		fmt.Println(code.Identifier, code.CodingSystem, obx.Get("4"), value.Text, obx.Field(6).CWE().Text,
			when.Time.Format(time.RFC3339), when.Precision == hl7v2.PrecisionSecond, device.EntityIdentifier)
	}
	// Output:
	// R01 true HOSP
	// 150456 MDC 1.2.1.1 97.0 MDC_DIM_PERCENT 2026-11-25T09:30:00Z true 0012A1FFFE3C4D5E
}

func ExampleNewACK() {
	m, _ := hl7v2.Parse([]byte("MSH|^~\\&|LIS|LAB|EHR|HOSP|20261125||ORU^R01^ORU_R01|C7|P|2.5.1\rOBX|1|NM|2345-7^Glucose^LN||high\r"))
	_, err := m.Segment("OBX").Field(5).NM()
	acker := hl7v2.Acker{
		NewControlID: func() string { return "A1" },
		Now:          func() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) },
	}
	code, _ := hl7v2.ResponseCode(m, err)
	ack, _ := acker.NewACK(m, code, hl7v2.AsError(err))
	b, _ := ack.Encode()
	for _, seg := range ack.Segments() {
		fmt.Println(seg)
	}
	fmt.Println(len(b), "bytes")
	// Output:
	// MSH|^~\&|EHR|HOSP|LIS|LAB|20261125100000+0000||ACK^R01^ACK|A1|P|2.5.1
	// MSA|AE|C7
	// ERR||OBX^1^5^1^1|102^Data type error^HL70357|E||||not a number (NM)
	// 148 bytes
}

func ExampleNew() {
	m, _ := hl7v2.New(hl7v2.DefaultDelimiters)
	_ = m.Set("MSH-9.1", "ORU")
	_ = m.Set("MSH-9.2", "R01")
	_ = m.Set("MSH-10", "OUT1")
	_ = m.Set("MSH-12", "2.5.1")
	_ = m.Set("PID-5.1", "O'Brien & Sons")
	_ = m.SetNull("PID-8")
	_ = m.Set("NTE-3", "line 1\nline 2")
	fmt.Printf("%q\n", m.String())
	// Output:
	// "MSH|^~\\&|||||||ORU^R01|OUT1||2.5.1\rPID|||||O'Brien \\T\\ Sons|||\"\"\rNTE|||line 1\\.br\\line 2\r"
}
