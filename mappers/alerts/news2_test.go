package alerts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigil-health/vigil/mappers/alerts"
)

func TestNEWS2ParameterScores(t *testing.T) {
	type pt struct {
		v    float64
		want int
	}
	tests := []struct {
		name  string
		score func(float64) int
		cases []pt
	}{
		{"respiration rate", alerts.ScoreRespiratoryRate, []pt{{5, 3}, {8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}, {40, 3}}},
		{"spo2 scale 1", alerts.ScoreSpO2Scale1, []pt{{85, 3}, {91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}, {100, 0}}},
		{"spo2 scale 2 on air", func(v float64) int { return alerts.ScoreSpO2Scale2(v, false) }, []pt{{83, 3}, {84, 2}, {85, 2}, {86, 1}, {87, 1}, {88, 0}, {92, 0}, {93, 0}, {97, 0}, {100, 0}}},
		{"spo2 scale 2 on oxygen", func(v float64) int { return alerts.ScoreSpO2Scale2(v, true) }, []pt{{83, 3}, {88, 0}, {92, 0}, {93, 1}, {94, 1}, {95, 2}, {96, 2}, {97, 3}, {100, 3}}},
		{"systolic", alerts.ScoreSystolic, []pt{{70, 3}, {90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}}},
		{"pulse", alerts.ScorePulse, []pt{{30, 3}, {40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1}, {111, 2}, {130, 2}, {131, 3}}},
		{"temperature", alerts.ScoreTemperature, []pt{{34, 3}, {35.0, 3}, {35.1, 1}, {36.0, 1}, {36.1, 0}, {38.0, 0}, {38.1, 1}, {39.0, 1}, {39.1, 2}, {41, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range tt.cases {
				if got := tt.score(c.v); got != c.want {
					t.Errorf("score(%v) = %d, want %d", c.v, got, c.want)
				}
			}
		})
	}
	for in, want := range map[string]int{"A": 0, "alert": 0, "C": 3, "new confusion": 3, "V": 3, "P": 3, "U": 3} {
		if got, ok := alerts.ScoreConsciousness(in); !ok || got != want {
			t.Errorf("ScoreConsciousness(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	if _, ok := alerts.ScoreConsciousness("sleepy"); ok {
		t.Error("unknown consciousness level scored")
	}
}

func param(name, v, unit string, val float64) *alerts.Param {
	return &alerts.Param{Name: name, Text: v, Value: val, Unit: unit, Ref: "Observation/" + name}
}

func boolp(b bool) *bool { return &b }

// TestNEWS2WorkedCases are scores computed by hand from the RCP 2017 chart.
func TestNEWS2WorkedCases(t *testing.T) {
	normal := func() alerts.NEWS2Input {
		return alerts.NEWS2Input{
			RespiratoryRate: param("respiratory-rate", "16", "/min", 16),
			SpO2:            param("spo2", "97", "%", 97),
			OnOxygen:        boolp(false),
			Systolic:        param("systolic-bp", "120", "mm[Hg]", 120),
			Pulse:           param("heart-rate", "70", "/min", 70),
			Consciousness:   "A",
			Temperature:     param("body-temperature", "37.0", "Cel", 37),
		}
	}
	tests := []struct {
		name   string
		modify func(*alerts.NEWS2Input)
		total  int
		band   string
		known  int
	}{
		{"all normal", func(*alerts.NEWS2Input) {}, 0, alerts.BandNone, 7},
		// RR 10 (1) + SpO2 94 (1) + temp 36.0 (1) = 3, no single 3.
		{"low", func(in *alerts.NEWS2Input) {
			in.RespiratoryRate = param("respiratory-rate", "10", "/min", 10)
			in.SpO2 = param("spo2", "94", "%", 94)
			in.Temperature = param("body-temperature", "36.0", "Cel", 36)
		}, 3, alerts.BandLow, 7},
		// systolic 88 scores 3 alone: total 3 with a single 3.
		{"low-medium from one parameter", func(in *alerts.NEWS2Input) {
			in.Systolic = param("systolic-bp", "88", "mm[Hg]", 88)
		}, 3, alerts.BandLowMedium, 7},
		// new confusion scores 3.
		{"low-medium from consciousness", func(in *alerts.NEWS2Input) { in.Consciousness = "C" }, 3, alerts.BandLowMedium, 7},
		// RR 22 (2) + SpO2 95 (1) + pulse 95 (1) + temp 38.3 (1) = 5.
		{"medium", func(in *alerts.NEWS2Input) {
			in.RespiratoryRate = param("respiratory-rate", "22", "/min", 22)
			in.SpO2 = param("spo2", "95", "%", 95)
			in.Pulse = param("heart-rate", "95", "/min", 95)
			in.Temperature = param("body-temperature", "38.3", "Cel", 38.3)
		}, 5, alerts.BandMedium, 7},
		// RR 26 (3) + SpO2 93 (2) + oxygen (2) + systolic 105 (1) + pulse 115 (2) + temp 38.5 (1) = 11.
		{"high", func(in *alerts.NEWS2Input) {
			in.RespiratoryRate = param("respiratory-rate", "26", "/min", 26)
			in.SpO2 = param("spo2", "93", "%", 93)
			in.OnOxygen = boolp(true)
			in.Systolic = param("systolic-bp", "105", "mm[Hg]", 105)
			in.Pulse = param("heart-rate", "115", "/min", 115)
			in.Temperature = param("body-temperature", "38.5", "Cel", 38.5)
		}, 11, alerts.BandHigh, 7},
		// Scale 2, SpO2 90 on oxygen: SpO2 0 (88-92) + oxygen 2 = 2.
		{"scale 2 in target range on oxygen", func(in *alerts.NEWS2Input) {
			in.Scale = 2
			in.SpO2 = param("spo2", "90", "%", 90)
			in.OnOxygen = boolp(true)
		}, 2, alerts.BandLow, 7},
		// Scale 2, SpO2 97 on oxygen: SpO2 3 + oxygen 2 = 5.
		{"scale 2 over target on oxygen", func(in *alerts.NEWS2Input) {
			in.Scale = 2
			in.SpO2 = param("spo2", "97", "%", 97)
			in.OnOxygen = boolp(true)
		}, 5, alerts.BandMedium, 7},
		// Scale 1 would score SpO2 90 as 3; scale 2 on air scores it 0.
		{"scale 2 on air", func(in *alerts.NEWS2Input) {
			in.Scale = 2
			in.SpO2 = param("spo2", "90", "%", 90)
		}, 0, alerts.BandNone, 7},
		// 102.2 F = 39.0 C scores 1.
		{"fahrenheit", func(in *alerts.NEWS2Input) {
			in.Temperature = param("body-temperature", "102.2", "[degF]", 102.2)
		}, 1, alerts.BandLow, 7},
		// 12 kPa = 90 mmHg scores 3.
		{"kilopascal", func(in *alerts.NEWS2Input) {
			in.Systolic = param("systolic-bp", "12", "kPa", 12)
		}, 3, alerts.BandLowMedium, 7},
		// Unknown oxygen and consciousness are not counted.
		{"partial", func(in *alerts.NEWS2Input) {
			in.OnOxygen = nil
			in.Consciousness = ""
			in.Pulse = param("heart-rate", "135", "/min", 135)
		}, 3, alerts.BandLowMedium, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := normal()
			tt.modify(&in)
			res := alerts.ComputeNEWS2(in)
			if res.Total != tt.total || res.Band != tt.band || res.Known != tt.known {
				t.Errorf("got total %d band %s known %d, want %d %s %d\n%s", res.Total, res.Band, res.Known, tt.total, tt.band, tt.known, res.Summary())
			}
		})
	}
}

func TestBandOf(t *testing.T) {
	tests := []struct {
		total    int
		anyThree bool
		want     string
	}{
		{0, false, alerts.BandNone}, {1, false, alerts.BandLow}, {4, false, alerts.BandLow},
		{3, true, alerts.BandLowMedium}, {4, true, alerts.BandLowMedium}, {5, false, alerts.BandMedium},
		{6, true, alerts.BandMedium}, {7, false, alerts.BandHigh}, {20, true, alerts.BandHigh},
	}
	for _, tt := range tests {
		if got := alerts.BandOf(tt.total, tt.anyThree); got != tt.want {
			t.Errorf("BandOf(%d, %v) = %s, want %s", tt.total, tt.anyThree, got, tt.want)
		}
	}
}

// news2Only are the default rules without thresholds.
func news2Only() alerts.Rules {
	r := alerts.DefaultRules()
	r.Thresholds = nil
	return r
}

func TestNEWS2Alerts(t *testing.T) {
	rules := news2Only()
	m := func(n int) time.Time { return now.Add(time.Duration(n) * time.Minute) }
	// Medium: RR 22 (2), SpO2 95 (1), systolic 120, pulse 95 (1), temp 38.3 (1) = 5.
	recent := []map[string]any{
		vital(t, "rr1", "respiratory-rate", "22", "/min", m(-20)),
		vital(t, "sp1", "spo2", "95", "%", m(-19)),
		vital(t, "bp1", "blood-pressure", "120/80", "mm[Hg]", m(-18)),
		vital(t, "hr1", "heart-rate", "95", "/min", m(-17)),
		vital(t, "old", "respiratory-rate", "30", "/min", m(-120)), // outside the window
	}
	temp := vital(t, "t1", "body-temperature", "38.3", "Cel", m(-1))
	acts := evaluate(t, rules, alerts.Input{Observation: temp, Recent: recent})
	if diff := cmp.Diff([]string{"create news2 news2-medium moderate"}, summary(acts)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	di := acts[0].Resource
	if d := di["detail"].(string); !strings.Contains(d, "NEWS2 total score 5 (medium") || !strings.Contains(d, "consciousness: unknown") {
		t.Errorf("detail = %q", d)
	}
	var imp []string
	for _, r := range di["implicated"].([]any) {
		imp = append(imp, r.(map[string]any)["reference"].(string))
	}
	if diff := cmp.Diff([]string{"Observation/rr1", "Observation/sp1", "Observation/bp1", "Observation/hr1", "Observation/t1"}, imp); diff != "" {
		t.Errorf("implicated (-want +got):\n%s", diff)
	}
	medium := open(t, acts[0], "n1")

	t.Run("same band updates", func(t *testing.T) {
		t2 := vital(t, "t2", "body-temperature", "38.4", "Cel", m(0))
		acts := evaluate(t, rules, alerts.Input{Observation: t2, Recent: append(recent, temp), Open: []alerts.OpenAlert{medium}})
		if diff := cmp.Diff([]string{"update news2 news2-medium moderate n1"}, summary(acts)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("medium to high raises a new alert", func(t *testing.T) {
		// Pulse 135 scores 3 instead of 1: total 7.
		hr := vital(t, "hr2", "heart-rate", "135", "/min", m(0))
		acts := evaluate(t, rules, alerts.Input{Observation: hr, Recent: append(recent, temp), Open: []alerts.OpenAlert{medium}})
		want := []string{"create news2 news2-high high", "resolve news2 news2-medium moderate n1"}
		if diff := cmp.Diff(want, summary(acts)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("score back to zero resolves", func(t *testing.T) {
		fine := []map[string]any{
			vital(t, "rr3", "respiratory-rate", "16", "/min", m(-5)),
			vital(t, "sp3", "spo2", "97", "%", m(-5)),
			vital(t, "bp3", "blood-pressure", "120/80", "mm[Hg]", m(-5)),
			vital(t, "hr3", "heart-rate", "70", "/min", m(-5)),
		}
		t3 := vital(t, "t3", "body-temperature", "37.0", "Cel", m(0))
		acts := evaluate(t, rules, alerts.Input{Observation: t3, Recent: fine, Open: []alerts.OpenAlert{medium}})
		if diff := cmp.Diff([]string{"resolve news2 news2-medium moderate n1"}, summary(acts)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("too few parameters", func(t *testing.T) {
		acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "rr9", "respiratory-rate", "30", "/min", m(0))})
		if len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
	t.Run("oxygen flow component counts as supplemental oxygen", func(t *testing.T) {
		o := vital(t, "sp5", "spo2", "96", "%", m(0))
		o["component"] = []any{map[string]any{
			"code":          map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "3151-8"}}},
			"valueQuantity": map[string]any{"value": 2.0, "unit": "L/min", "system": "http://unitsofmeasure.org", "code": "L/min"},
		}}
		acts := evaluate(t, rules, alerts.Input{Observation: o, Recent: recent[:4]})
		// RR 22 (2) + SpO2 96 (0) + oxygen (2) + pulse 95 (1) = 5.
		if diff := cmp.Diff([]string{"create news2 news2-medium moderate"}, summary(acts)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("min band filters low scores", func(t *testing.T) {
		r := news2Only()
		r.NEWS2.MinBand = alerts.BandMedium
		// RR 22 (2) alone with normal others: 2, low.
		low := []map[string]any{vital(t, "sp6", "spo2", "97", "%", m(-5)), vital(t, "hr6", "heart-rate", "70", "/min", m(-5))}
		acts := evaluate(t, r, alerts.Input{Observation: vital(t, "rr6", "respiratory-rate", "22", "/min", m(0)), Recent: low})
		if len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
	t.Run("unrelated vital does not rescore", func(t *testing.T) {
		acts := evaluate(t, rules, alerts.Input{Observation: vital(t, "w1", "body-weight", "80", "kg", m(0)), Recent: recent, Open: []alerts.OpenAlert{medium}})
		if len(acts) != 0 {
			t.Errorf("actions = %v", summary(acts))
		}
	})
}

// BenchmarkEvaluate is one alert evaluation as the write hook runs it: a
// new heart rate over its limit, four recent vitals for NEWS2 and two open
// alerts (one updated, one escalated).
func BenchmarkEvaluate(b *testing.B) {
	rules := alerts.DefaultRules()
	m := func(n int) time.Time { return now.Add(time.Duration(n) * time.Minute) }
	recent := []map[string]any{
		vital(b, "rr1", "respiratory-rate", "22", "/min", m(-20)),
		vital(b, "sp1", "spo2", "95", "%", m(-19)),
		vital(b, "bp1", "blood-pressure", "120/80", "mm[Hg]", m(-18)),
		vital(b, "t1", "body-temperature", "38.3", "Cel", m(-17)),
	}
	seed, err := rules.Evaluate(alerts.Input{Observation: vital(b, "hr0", "heart-rate", "115", "/min", m(-10)), Recent: recent, Now: now})
	if err != nil || len(seed) != 2 {
		b.Fatalf("seed: %v %v", summary(seed), err)
	}
	open := []alerts.OpenAlert{open(b, seed[0], "a1"), open(b, seed[1], "a2")}
	in := alerts.Input{Observation: vital(b, "hr1", "heart-rate", "135", "/min", m(0)), Recent: recent, Open: open, Now: now}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.Evaluate(in); err != nil {
			b.Fatal(err)
		}
	}
}
