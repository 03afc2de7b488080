package alerts

import (
	"fmt"
	"math"
	"strings"
)

// The NEWS2 scoring tables (Royal College of Physicians, National Early
// Warning Score 2, 2017, chart 1). Values are rounded as charted: whole
// numbers for rates, pressures and saturation, one decimal for temperature.

// ScoreRespiratoryRate scores a respiration rate in breaths per minute.
func ScoreRespiratoryRate(v float64) int {
	switch r := math.Round(v); {
	case r <= 8:
		return 3
	case r <= 11:
		return 1
	case r <= 20:
		return 0
	case r <= 24:
		return 2
	}
	return 3
}

// ScoreSpO2Scale1 scores SpO2 (%) on scale 1, for most patients.
func ScoreSpO2Scale1(v float64) int {
	switch s := math.Round(v); {
	case s <= 91:
		return 3
	case s <= 93:
		return 2
	case s <= 95:
		return 1
	}
	return 0
}

// ScoreSpO2Scale2 scores SpO2 (%) on scale 2, for patients with a
// prescribed target range of 88-92 % (hypercapnic respiratory failure):
// high saturations score only on supplemental oxygen.
func ScoreSpO2Scale2(v float64, onOxygen bool) int {
	switch s := math.Round(v); {
	case s <= 83:
		return 3
	case s <= 85:
		return 2
	case s <= 87:
		return 1
	case s <= 92 || !onOxygen:
		return 0
	case s <= 94:
		return 1
	case s <= 96:
		return 2
	}
	return 3
}

// ScoreAirOrOxygen scores supplemental oxygen: 2 on oxygen, 0 on air.
func ScoreAirOrOxygen(onOxygen bool) int {
	if onOxygen {
		return 2
	}
	return 0
}

// ScoreSystolic scores systolic blood pressure in mmHg.
func ScoreSystolic(v float64) int {
	switch s := math.Round(v); {
	case s <= 90:
		return 3
	case s <= 100:
		return 2
	case s <= 110:
		return 1
	case s <= 219:
		return 0
	}
	return 3
}

// ScorePulse scores the pulse (heart rate) in beats per minute.
func ScorePulse(v float64) int {
	switch p := math.Round(v); {
	case p <= 40:
		return 3
	case p <= 50:
		return 1
	case p <= 90:
		return 0
	case p <= 110:
		return 1
	case p <= 130:
		return 2
	}
	return 3
}

// ScoreTemperature scores body temperature in degrees Celsius.
func ScoreTemperature(celsius float64) int {
	switch t := math.Round(celsius*10) / 10; {
	case t <= 35.0:
		return 3
	case t <= 36.0:
		return 1
	case t <= 38.0:
		return 0
	case t <= 39.0:
		return 1
	}
	return 2
}

// ScoreConsciousness scores the ACVPU level: alert is 0; new confusion,
// voice, pain or unresponsive is 3. ok is false for an unknown level.
func ScoreConsciousness(acvpu string) (score int, ok bool) {
	switch strings.ToLower(strings.TrimSpace(acvpu)) {
	case "a", "alert":
		return 0, true
	case "c", "confusion", "new confusion", "confused", "v", "voice", "p", "pain", "u", "unresponsive":
		return 3, true
	}
	return 0, false
}

// BandOf returns the clinical risk band of a NEWS2 total: 0 none, 1-4 low
// (low-medium when one parameter scores 3), 5-6 medium, 7 or more high.
func BandOf(total int, anyThree bool) string {
	switch {
	case total >= 7:
		return BandHigh
	case total >= 5:
		return BandMedium
	case anyThree:
		return BandLowMedium
	case total >= 1:
		return BandLow
	}
	return BandNone
}

// NEWS2Item is the score of one NEWS2 parameter.
type NEWS2Item struct {
	// Parameter is the NEWS2 parameter name (respiration rate, SpO2, ...).
	Parameter string
	// Known is false when no value was available (scored 0, not counted).
	Known bool
	Score int
	// Value describes the value scored ("26 /min", "on oxygen").
	Value string
	// Param is the vital the score came from, when it came from one.
	Param *Param
}

// NEWS2Result is a computed NEWS2 score.
type NEWS2Result struct {
	Total int
	Band  string
	// AnyThree is true when one parameter scored 3.
	AnyThree bool
	// Known is how many of the seven parameters had a value.
	Known int
	// Scale is the SpO2 scale used (1 or 2).
	Scale int
	Items []NEWS2Item
}

// NEWS2Input holds the latest value of each NEWS2 parameter; nil or empty
// means unknown.
type NEWS2Input struct {
	RespiratoryRate *Param
	SpO2            *Param
	// OnOxygen is whether the patient receives supplemental oxygen.
	OnOxygen *bool
	Systolic *Param
	Pulse    *Param
	// Consciousness is the ACVPU level (A, C, V, P, U).
	Consciousness string
	Temperature   *Param
	// Scale is the SpO2 scale, 1 or 2.
	Scale int
}

// ComputeNEWS2 scores the known parameters and sums them.
func ComputeNEWS2(in NEWS2Input) NEWS2Result {
	res := NEWS2Result{Scale: in.Scale}
	if res.Scale != 2 {
		res.Scale = 1
	}
	add := func(item NEWS2Item) {
		if item.Known {
			res.Known++
			res.Total += item.Score
			if item.Score == 3 {
				res.AnyThree = true
			}
		}
		res.Items = append(res.Items, item)
	}
	scoreParam := func(name string, p *Param, score func(float64) int, convert func(*Param) (float64, bool)) {
		if p == nil {
			add(NEWS2Item{Parameter: name})
			return
		}
		v, ok := convert(p)
		if !ok {
			add(NEWS2Item{Parameter: name, Value: p.Text + " " + p.Unit + " (unit not scorable)"})
			return
		}
		add(NEWS2Item{Parameter: name, Known: true, Score: score(v), Value: p.Text + " " + p.Unit, Param: p})
	}

	scoreParam("respiration rate", in.RespiratoryRate, ScoreRespiratoryRate, unitIs("/min"))
	onO2 := in.OnOxygen != nil && *in.OnOxygen
	if res.Scale == 2 {
		scoreParam("SpO2 (scale 2)", in.SpO2, func(v float64) int { return ScoreSpO2Scale2(v, onO2) }, unitIs("%"))
	} else {
		scoreParam("SpO2 (scale 1)", in.SpO2, ScoreSpO2Scale1, unitIs("%"))
	}
	if in.OnOxygen == nil {
		add(NEWS2Item{Parameter: "air or oxygen"})
	} else {
		v := "air"
		if *in.OnOxygen {
			v = "oxygen"
		}
		add(NEWS2Item{Parameter: "air or oxygen", Known: true, Score: ScoreAirOrOxygen(*in.OnOxygen), Value: v})
	}
	scoreParam("systolic blood pressure", in.Systolic, ScoreSystolic, pressureMMHg)
	scoreParam("pulse", in.Pulse, ScorePulse, unitIs("/min"))
	if s, ok := ScoreConsciousness(in.Consciousness); ok {
		add(NEWS2Item{Parameter: "consciousness", Known: true, Score: s, Value: acvpuLetter(s, in.Consciousness)})
	} else {
		add(NEWS2Item{Parameter: "consciousness"})
	}
	scoreParam("temperature", in.Temperature, ScoreTemperature, celsius)
	res.Band = BandOf(res.Total, res.AnyThree)
	return res
}

func acvpuLetter(score int, s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case score == 0:
		return "A"
	case strings.HasPrefix(s, "v"):
		return "V"
	case strings.HasPrefix(s, "p"):
		return "P"
	case strings.HasPrefix(s, "u"):
		return "U"
	}
	return "C"
}

func unitIs(u string) func(*Param) (float64, bool) {
	return func(p *Param) (float64, bool) { return p.Value, p.Unit == u }
}

func pressureMMHg(p *Param) (float64, bool) {
	switch p.Unit {
	case "mm[Hg]":
		return p.Value, true
	case "kPa":
		return p.Value * 7.50062, true
	}
	return 0, false
}

func celsius(p *Param) (float64, bool) {
	switch p.Unit {
	case "Cel":
		return p.Value, true
	case "[degF]":
		return (p.Value - 32) * 5 / 9, true
	}
	return 0, false
}

// Summary describes the score for a DetectedIssue detail, without names.
func (r NEWS2Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "NEWS2 total score %d (%s clinical risk", r.Total, r.Band)
	if r.Band == BandLowMedium {
		b.WriteString(": a single parameter scores 3, urgent ward-based response")
	}
	b.WriteString("). ")
	for i, it := range r.Items {
		if i > 0 {
			b.WriteString("; ")
		}
		if it.Known {
			fmt.Fprintf(&b, "%s: %s scores %d", it.Parameter, it.Value, it.Score)
		} else if it.Value != "" {
			fmt.Fprintf(&b, "%s: %s", it.Parameter, it.Value)
		} else {
			fmt.Fprintf(&b, "%s: unknown, not scored", it.Parameter)
		}
	}
	b.WriteString(".")
	return b.String()
}
