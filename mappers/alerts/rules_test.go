package alerts_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/mappers/alerts"
)

func TestDefaultRulesValid(t *testing.T) {
	r := alerts.DefaultRules()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseRules(t *testing.T) {
	find := func(r alerts.Rules, param, unit string, above bool, sev string) *alerts.Threshold {
		for i, th := range r.Thresholds {
			if th.Parameter == param && th.Unit == unit && (th.Above != nil) == above && th.Severity == sev {
				return &r.Thresholds[i]
			}
		}
		return nil
	}
	t.Run("empty file keeps the defaults", func(t *testing.T) {
		r, err := alerts.ParseRules([]byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Thresholds) != len(alerts.DefaultRules().Thresholds) || r.Window != time.Hour || !r.NEWS2.Enabled {
			t.Errorf("defaults changed: %+v", r)
		}
	})
	t.Run("example file", func(t *testing.T) {
		b, err := os.ReadFile("../../testdata/mappers/alert-rules.example.json")
		if err != nil {
			t.Fatal(err)
		}
		r, err := alerts.ParseRules(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Window != 2*time.Hour || r.NEWS2.SpO2Scale != 2 || r.NEWS2.MinBand != alerts.BandLowMedium || r.MaxImplicated != 10 {
			t.Errorf("settings not applied: window %v scale %d band %s max %d", r.Window, r.NEWS2.SpO2Scale, r.NEWS2.MinBand, r.MaxImplicated)
		}
		if th := find(r, "heart-rate", "/min", true, alerts.SeverityHigh); th == nil || *th.Above != 120 {
			t.Errorf("heart-rate high threshold not overridden: %+v", th)
		}
		if th := find(r, "spo2", "%", false, alerts.SeverityModerate); th != nil {
			t.Errorf("disabled threshold still present: %+v", th)
		}
		if th := find(r, "body-weight", "kg", true, alerts.SeverityLow); th == nil {
			t.Error("added threshold missing")
		}
	})
	t.Run("replace thresholds", func(t *testing.T) {
		r, err := alerts.ParseRules([]byte(`{"replaceThresholds": true, "thresholds": [{"parameter": "spo2", "unit": "%", "below": 92, "severity": "high"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Thresholds) != 1 {
			t.Errorf("thresholds = %+v", r.Thresholds)
		}
	})

	bad := []struct {
		name, in, want string
	}{
		{"not json", `{`, "invalid JSON"},
		{"unknown field", `{"windw": "1h"}`, `unknown field "windw"`},
		{"bad window", `{"window": "soon"}`, "window:"},
		{"negative window", `{"window": "-1h"}`, "window:"},
		{"wrong type", `{"maxImplicated": "ten"}`, "maxImplicated"},
		{"bad parameter", `{"thresholds": [{"parameter": "mood", "unit": "%", "below": 1, "severity": "low"}]}`, "thresholds[0].parameter"},
		{"bad unit", `{"thresholds": [{"parameter": "spo2", "unit": "percent", "below": 1, "severity": "low"}]}`, "thresholds[0].unit"},
		{"both limits", `{"thresholds": [{"parameter": "spo2", "unit": "%", "below": 1, "above": 2, "severity": "low"}]}`, "thresholds[0].below"},
		{"no limit", `{"thresholds": [{"parameter": "spo2", "unit": "%", "severity": "low"}]}`, "thresholds[0].below"},
		{"bad severity", `{"thresholds": [{"parameter": "spo2", "unit": "%", "below": 1, "severity": "critical"}]}`, "thresholds[0].severity"},
		{"second threshold", `{"thresholds": [{"parameter": "spo2", "unit": "%", "below": 1, "severity": "low"}, {"parameter": "spo2", "unit": "", "below": 1, "severity": "low"}]}`, "thresholds[1].unit"},
		{"bad scale", `{"news2": {"spo2Scale": 3}}`, "news2.spo2Scale"},
		{"bad band", `{"news2": {"minBand": "extreme"}}`, "news2.minBand"},
		{"bad min parameters", `{"news2": {"minParameters": 0}}`, "news2.minParameters"},
		{"nested unknown", `{"news2": {"scale": 2}}`, `unknown field "scale"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alerts.ParseRules([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRules(%s) error = %v, want it to mention %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestLoadRules(t *testing.T) {
	r, err := alerts.LoadRules(strings.NewReader(`{"autoResolve": false}`))
	if err != nil || r.AutoResolve {
		t.Errorf("LoadRules = %+v, %v", r.AutoResolve, err)
	}
}
