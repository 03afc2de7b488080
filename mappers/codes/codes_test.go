package codes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookupMDC(t *testing.T) {
	tests := []struct {
		name      string
		code      uint32
		refid     string
		metric    string
		component string
		unit      string
		device    string
	}{
		{name: "ecg heart rate", code: 147842, refid: "MDC_ECG_HEART_RATE", metric: "heart-rate"},
		{name: "pulse rate", code: 149530, refid: "MDC_PULS_OXIM_PULS_RATE", metric: "heart-rate"},
		{name: "spo2", code: 150456, refid: "MDC_PULS_OXIM_SAT_O2", metric: "spo2"},
		{name: "nibp panel", code: 150020, refid: "MDC_PRESS_BLD_NONINV", metric: "blood-pressure"},
		{name: "nibp systolic", code: 150021, refid: "MDC_PRESS_BLD_NONINV_SYS", metric: "blood-pressure", component: "systolic"},
		{name: "nibp diastolic", code: 150022, refid: "MDC_PRESS_BLD_NONINV_DIA", metric: "blood-pressure", component: "diastolic"},
		{name: "nibp mean", code: 150023, refid: "MDC_PRESS_BLD_NONINV_MEAN", metric: "blood-pressure", component: "mean"},
		{name: "resp rate", code: 151562, refid: "MDC_RESP_RATE", metric: "respiratory-rate"},
		{name: "body temp", code: 150364, refid: "MDC_TEMP_BODY", metric: "body-temperature"},
		{name: "temp", code: 150344, refid: "MDC_TEMP", metric: "body-temperature"},
		{name: "weight", code: 188736, refid: "MDC_MASS_BODY_ACTUAL", metric: "body-weight"},
		{name: "height", code: 188740, refid: "MDC_LEN_BODY_ACTUAL", metric: "body-height"},
		{name: "glucose", code: 160184, refid: "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", metric: "blood-glucose"},
		{name: "percent", code: 262688, refid: "MDC_DIM_PERCENT", unit: "%"},
		{name: "bpm", code: 264864, refid: "MDC_DIM_BEAT_PER_MIN", unit: "/min"},
		{name: "resp per min", code: 264928, refid: "MDC_DIM_RESP_PER_MIN", unit: "/min"},
		{name: "mmHg", code: 266016, refid: "MDC_DIM_MMHG", unit: "mm[Hg]"},
		{name: "kPa", code: 265987, refid: "MDC_DIM_KILO_PASCAL", unit: "kPa"},
		{name: "degC", code: 268192, refid: "MDC_DIM_DEGC", unit: "Cel"},
		{name: "degF", code: 266560, refid: "MDC_DIM_FAHR", unit: "[degF]"},
		{name: "kg", code: 263875, refid: "MDC_DIM_KILO_G", unit: "kg"},
		{name: "lb", code: 263904, refid: "MDC_DIM_LB", unit: "[lb_av]"},
		{name: "cm", code: 263441, refid: "MDC_DIM_CENTI_M", unit: "cm"},
		{name: "inch", code: 263520, refid: "MDC_DIM_INCH", unit: "[in_i]"},
		{name: "mg/dL", code: 264274, refid: "MDC_DIM_MILLI_G_PER_DL", unit: "mg/dL"},
		{name: "mmol/L", code: 266866, refid: "MDC_DIM_MILLI_MOLE_PER_L", unit: "mmol/L"},
		{name: "pulse oximeter", code: 528388, refid: "MDC_DEV_SPEC_PROFILE_PULS_OXIM", device: "pulse-oximeter"},
		{name: "bp monitor", code: 528391, refid: "MDC_DEV_SPEC_PROFILE_BPM", device: "bp-monitor"},
		{name: "thermometer", code: 528392, refid: "MDC_DEV_SPEC_PROFILE_TEMP", device: "thermometer"},
		{name: "scale", code: 528399, refid: "MDC_DEV_SPEC_PROFILE_SCALE", device: "scale"},
		{name: "glucose meter", code: 528401, refid: "MDC_DEV_SPEC_PROFILE_GLUCOSE", device: "glucose-meter"},
		{name: "monitor", code: 69965, refid: "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", device: "multi-parameter-monitor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, get := range []func() (MDCTerm, bool){
				func() (MDCTerm, bool) { return LookupMDC(tt.code) },
				func() (MDCTerm, bool) { return LookupRefID(tt.refid) },
			} {
				term, ok := get()
				if !ok {
					t.Fatalf("code %d / %s not found", tt.code, tt.refid)
				}
				if term.Code != tt.code || term.RefID != tt.refid {
					t.Errorf("got %d %s, want %d %s", term.Code, term.RefID, tt.code, tt.refid)
				}
				var metric, unit, device string
				if term.Metric != nil {
					metric = term.Metric.Name
				}
				if term.Unit != nil {
					unit = term.Unit.UCUM
				}
				if term.Device != nil {
					device = term.Device.Name
				}
				if metric != tt.metric || term.Component != tt.component || unit != tt.unit || device != tt.device {
					t.Errorf("got metric=%q component=%q unit=%q device=%q", metric, term.Component, unit, device)
				}
			}
		})
	}
}

func TestLookupUnknown(t *testing.T) {
	if _, ok := LookupMDC(999999); ok {
		t.Error("LookupMDC(999999) found a term")
	}
	if _, ok := LookupMDCString("not-a-number"); ok {
		t.Error("LookupMDCString(text) found a term")
	}
	if _, _, ok := MetricByName("blood-alcohol"); ok {
		t.Error("unknown metric name found")
	}
	if _, ok := NormalizeUnit("furlongs"); ok {
		t.Error("unknown unit normalised")
	}
}

func TestMetricByLOINC(t *testing.T) {
	tests := []struct {
		code, metric, component string
	}{
		{"8867-4", "heart-rate", ""},
		{"2708-6", "spo2", ""},
		{"59408-5", "spo2", ""},
		{"85354-9", "blood-pressure", ""},
		{"8480-6", "blood-pressure", "systolic"},
		{"8462-4", "blood-pressure", "diastolic"},
		{"8478-0", "blood-pressure", "mean"},
		{"9279-1", "respiratory-rate", ""},
		{"8310-5", "body-temperature", ""},
		{"29463-7", "body-weight", ""},
		{"8302-2", "body-height", ""},
		{"2339-0", "blood-glucose", ""},
		{"15074-8", "blood-glucose", ""},
		{"55423-8", "step-count", ""},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			m, comp, ok := MetricByLOINC(tt.code)
			if !ok || m.Name != tt.metric || comp != tt.component {
				t.Fatalf("MetricByLOINC(%s) = %v %q %v", tt.code, m, comp, ok)
			}
		})
	}
}

func TestMetricByName(t *testing.T) {
	tests := []struct {
		name, metric string
		mdc          uint32
	}{
		{"heart-rate", "heart-rate", 0},
		{"pulse-rate", "heart-rate", 149530},
		{"SpO2", "spo2", 0},
		{"blood-pressure", "blood-pressure", 0},
		{"respiratory-rate", "respiratory-rate", 0},
		{"body-temperature", "body-temperature", 0},
		{"body-weight", "body-weight", 0},
		{"body-height", "body-height", 0},
		{"blood-glucose", "blood-glucose", 0},
		{"step-count", "step-count", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, mdc, ok := MetricByName(tt.name)
			if !ok || m.Name != tt.metric || mdc != tt.mdc {
				t.Fatalf("MetricByName(%s) = %v %d %v", tt.name, m, mdc, ok)
			}
		})
	}
}

func TestNormalizeUnit(t *testing.T) {
	tests := map[string]string{
		"beats/min": "/min", "bpm": "/min", "breaths/min": "/min", "/min": "/min",
		"%": "%", "mmHg": "mm[Hg]", "mm[Hg]": "mm[Hg]", "C": "Cel", "°C": "Cel", "F": "[degF]",
		"kg": "kg", "lb": "[lb_av]", "cm": "cm", "in": "[in_i]", "mg/dL": "mg/dL", "mg/dl": "mg/dL",
		"mmol/L": "mmol/L", "steps": "{steps}", "kPa": "kPa", "m": "m",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			got, ok := NormalizeUnit(in)
			if !ok || got != want {
				t.Errorf("NormalizeUnit(%q) = %q %v, want %q", in, got, ok, want)
			}
		})
	}
}

func TestAcceptedUnits(t *testing.T) {
	m, _, _ := MetricByName("body-temperature")
	if diff := cmp.Diff([]string{"Cel", "[degF]"}, m.UnitCodes()); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	g, _, _ := MetricByName("blood-glucose")
	if got := g.LOINCFor("mmol/L"); len(got) != 1 || got[0].Code != "15074-8" {
		t.Errorf("LOINCFor(mmol/L) = %v", got)
	}
	if got := g.LOINCFor("mg/dL"); len(got) != 1 || got[0].Code != "2339-0" {
		t.Errorf("LOINCFor(mg/dL) = %v", got)
	}
}

func TestDeviceTypeByName(t *testing.T) {
	for _, s := range []string{"pulse-oximeter", "MDC_DEV_SPEC_PROFILE_PULS_OXIM", "528388"} {
		d, ok := DeviceTypeByName(s)
		if !ok || d.Code != 528388 {
			t.Errorf("DeviceTypeByName(%q) = %v %v", s, d, ok)
		}
	}
	if _, ok := DeviceTypeByName("toaster"); ok {
		t.Error("unknown device type found")
	}
}
