package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Codes and systems of the DetectedIssue resources Vigil raises.
const (
	// CodeSystem is the code system of DetectedIssue.code.
	CodeSystem = "http://vigil.health/fhir/CodeSystem/alert"
	// MitigationSystem codes how an alert was closed (resolved, escalated).
	MitigationSystem = "http://vigil.health/fhir/CodeSystem/alert-mitigation"
	// AlertIdentifierSystem is the system of each alert's unique identifier.
	AlertIdentifierSystem = "urn:vigil:alert"
	// ConditionIdentifierSystem is the system of the identifier that names
	// the condition an alert is about ("vital-out-of-range/heart-rate/high",
	// "news2"); one condition has at most one open alert.
	ConditionIdentifierSystem = "urn:vigil:alert-condition"

	CodeVitalOutOfRange = "vital-out-of-range"
	CodeNEWS2Low        = "news2-low"
	CodeNEWS2LowMedium  = "news2-low-medium"
	CodeNEWS2Medium     = "news2-medium"
	CodeNEWS2High       = "news2-high"

	// ConditionNEWS2 is the condition of every NEWS2 alert.
	ConditionNEWS2 = "news2"
)

var codeDisplay = map[string]string{
	CodeVitalOutOfRange: "Vital sign out of range",
	CodeNEWS2Low:        "NEWS2 low clinical risk (score 1-4)",
	CodeNEWS2LowMedium:  "NEWS2 low-medium clinical risk (3 in a single parameter)",
	CodeNEWS2Medium:     "NEWS2 medium clinical risk (score 5-6)",
	CodeNEWS2High:       "NEWS2 high clinical risk (score 7 or more)",
}

var bandSeverity = map[string]string{
	BandLow: SeverityLow, BandLowMedium: SeverityModerate, BandMedium: SeverityModerate, BandHigh: SeverityHigh,
}

var paramDisplay = map[string]string{
	"heart-rate": "Heart rate", "spo2": "SpO2", "systolic-bp": "Systolic blood pressure",
	"diastolic-bp": "Diastolic blood pressure", "mean-bp": "Mean blood pressure",
	"respiratory-rate": "Respiratory rate", "body-temperature": "Body temperature",
	"blood-glucose": "Blood glucose", "body-weight": "Body weight", "body-height": "Body height",
	"inhaled-oxygen-flow": "Inhaled oxygen flow",
}

// news2Params are the parameters whose arrival re-scores NEWS2.
var news2Params = map[string]bool{
	"respiratory-rate": true, "spo2": true, "systolic-bp": true, "heart-rate": true,
	"body-temperature": true, "inhaled-oxygen-flow": true,
}

// OpenAlert is an alert of the patient that is still open.
type OpenAlert struct {
	ID        string
	Code      string
	Severity  string
	Condition string
	// Resource is the stored DetectedIssue; updates and resolutions are
	// built from it (without it they are rebuilt from the fields above).
	Resource map[string]any
}

// OpenAlertFromResource reads a stored DetectedIssue. ok is false when it
// is not an open Vigil alert (another code system, closed by a mitigation,
// cancelled or entered in error).
func OpenAlertFromResource(res map[string]any) (OpenAlert, bool) {
	if rt, _ := res["resourceType"].(string); rt != "DetectedIssue" {
		return OpenAlert{}, false
	}
	switch st, _ := res["status"].(string); st {
	case "cancelled", "entered-in-error":
		return OpenAlert{}, false
	}
	a := OpenAlert{Resource: res}
	a.ID, _ = res["id"].(string)
	a.Severity, _ = res["severity"].(string)
	if cc, ok := res["code"].(map[string]any); ok {
		for _, c := range asSlice(cc["coding"]) {
			cm, _ := c.(map[string]any)
			if s, _ := cm["system"].(string); s == CodeSystem {
				a.Code, _ = cm["code"].(string)
			}
		}
	}
	for _, id := range asSlice(res["identifier"]) {
		im, _ := id.(map[string]any)
		if s, _ := im["system"].(string); s == ConditionIdentifierSystem {
			a.Condition, _ = im["value"].(string)
		}
	}
	if a.Code == "" || a.Condition == "" {
		return OpenAlert{}, false
	}
	for _, m := range asSlice(res["mitigation"]) {
		mm, _ := m.(map[string]any)
		action, _ := mm["action"].(map[string]any)
		for _, c := range asSlice(action["coding"]) {
			cm, _ := c.(map[string]any)
			if s, _ := cm["system"].(string); s == MitigationSystem {
				return OpenAlert{}, false
			}
		}
	}
	return a, true
}

// Input is what Evaluate needs to know about one new Observation.
type Input struct {
	// Observation is the new Observation, as stored (with its id).
	Observation map[string]any
	// ObservationRef is the reference to it; default "Observation/<id>".
	ObservationRef string
	// Recent are the patient's latest Observations per vital within the
	// window (as stored, with ids); older ones are ignored.
	Recent []map[string]any
	// Open are the patient's open alerts.
	Open []OpenAlert
	// Patient and Device are the references for DetectedIssue.patient and
	// .author; default the Observation's subject and device.
	Patient string
	Device  string
	// Now is the evaluation time.
	Now time.Time
	// OnOxygen, Consciousness (ACVPU) and SpO2Scale are NEWS2 facts known
	// from elsewhere (nursing record); nil / "" / 0 mean unknown / default.
	OnOxygen      *bool
	Consciousness string
	SpO2Scale     int
}

// ActionKind is what to do with a DetectedIssue.
type ActionKind string

// The actions Evaluate returns.
const (
	// Create a new DetectedIssue (Resource has no id).
	ActionCreate ActionKind = "create"
	// Update the open alert AlertID: Resource is its new version.
	ActionUpdate ActionKind = "update"
	// Resolve the open alert AlertID: Resource is its new version with a
	// mitigation saying why it closed.
	ActionResolve ActionKind = "resolve"
)

// Action is one change to the patient's alerts.
type Action struct {
	Kind      ActionKind
	AlertID   string
	Condition string
	Code      string
	Severity  string
	Resource  map[string]any
}

// ErrNoReference is returned when the Observation or patient cannot be referenced.
var ErrNoReference = errors.New("alerts: missing reference")

type trigger struct {
	condition  string
	code       string
	severity   string
	rank       int
	status     string
	detail     string
	implicated []string
	evidence   []any
}

// Evaluate applies the rules to a new Observation and returns the alert
// actions, in a deterministic order; none when nothing changes. An
// Observation entered in error, or older than the rules' window
// (a backfill), raises and resolves nothing.
func (r *Rules) Evaluate(in Input) ([]Action, error) {
	if in.Now.IsZero() {
		return nil, errors.New("alerts: Input.Now is required")
	}
	obs := in.Observation
	obsRef := in.ObservationRef
	if obsRef == "" {
		obsRef = ObservationRef(obs)
	}
	if obsRef == "" {
		return nil, fmt.Errorf("%w: the Observation needs an id or Input.ObservationRef", ErrNoReference)
	}
	patient := in.Patient
	if patient == "" {
		patient = refOf(obs["subject"])
	}
	if patient == "" {
		return nil, fmt.Errorf("%w: no patient (Input.Patient or Observation.subject)", ErrNoReference)
	}
	device := in.Device
	if device == "" {
		device = refOf(obs["device"])
	}
	params := ExtractParams(obs, obsRef)
	if len(params) == 0 || !r.inWindow(params[0].Time, in.Now) {
		return nil, nil
	}
	status := "final"
	if st, _ := obs["status"].(string); st == "preliminary" {
		status = "preliminary"
	}

	e := evaluation{rules: r, now: in.Now, patient: patient, device: device, open: map[string][]OpenAlert{}}
	for _, a := range in.Open {
		e.open[a.Condition] = append(e.open[a.Condition], a)
	}
	for c := range e.open {
		sort.Slice(e.open[c], func(i, j int) bool { return e.open[c][i].ID < e.open[c][j].ID })
	}

	for _, p := range params {
		r.evaluateThresholds(&e, p, status)
	}
	if r.NEWS2.Enabled {
		r.evaluateNEWS2(&e, in, params, obsRef, status)
	}
	return e.actions, nil
}

func (r *Rules) inWindow(t, now time.Time) bool {
	return !t.IsZero() && !t.Before(now.Add(-r.Window))
}

func (r *Rules) evaluateThresholds(e *evaluation, p Param, status string) {
	for _, dir := range []string{"low", "high"} {
		var worst *Threshold
		applies := false
		for i := range r.Thresholds {
			t := &r.Thresholds[i]
			if t.Disabled || t.Parameter != p.Name || t.Unit != p.Unit || t.direction() != dir {
				continue
			}
			applies = true
			hit := (t.Below != nil && p.Value < *t.Below) || (t.Above != nil && p.Value > *t.Above)
			if hit && (worst == nil || severityRank[t.Severity] > severityRank[worst.Severity]) {
				worst = t
			}
		}
		if !applies {
			continue
		}
		cond := CodeVitalOutOfRange + "/" + p.Name + "/" + dir
		name := paramDisplay[p.Name]
		if worst == nil {
			e.clear(cond, "resolved", fmt.Sprintf("%s %s %s is back within range.", name, p.Text, p.Unit))
			continue
		}
		word := "above"
		if dir == "low" {
			word = "below"
		}
		detail := fmt.Sprintf("%s %s %s is %s the %s-severity limit of %s %s", name, p.Text, p.Unit, word, worst.Severity, fmtFloat(worst.limit()), p.Unit)
		if worst.Note != "" {
			detail += " (" + worst.Note + ")"
		}
		e.raise(trigger{
			condition:  cond,
			code:       CodeVitalOutOfRange,
			severity:   worst.Severity,
			rank:       severityRank[worst.Severity],
			status:     status,
			detail:     detail + ".",
			implicated: []string{p.Ref},
			evidence:   []any{evidence(p)},
		})
	}
}

func (r *Rules) evaluateNEWS2(e *evaluation, in Input, params []Param, obsRef, status string) {
	relevant := false
	for _, p := range params {
		relevant = relevant || news2Params[p.Name]
	}
	if !relevant {
		return
	}
	latest := map[string]Param{}
	consider := func(p Param) {
		if !news2Params[p.Name] || !r.inWindow(p.Time, in.Now) {
			return
		}
		if cur, ok := latest[p.Name]; !ok || p.Time.After(cur.Time) || (p.Time.Equal(cur.Time) && p.Ref == obsRef) {
			latest[p.Name] = p
		}
	}
	for _, o := range in.Recent {
		ref := ObservationRef(o)
		if ref == "" || ref == obsRef {
			continue
		}
		for _, p := range ExtractParams(o, ref) {
			consider(p)
		}
	}
	for _, p := range params {
		consider(p)
	}
	get := func(name string) *Param {
		if p, ok := latest[name]; ok {
			return &p
		}
		return nil
	}
	ni := NEWS2Input{
		RespiratoryRate: get("respiratory-rate"),
		SpO2:            get("spo2"),
		OnOxygen:        in.OnOxygen,
		Systolic:        get("systolic-bp"),
		Pulse:           get("heart-rate"),
		Consciousness:   in.Consciousness,
		Temperature:     get("body-temperature"),
		Scale:           in.SpO2Scale,
	}
	if ni.Scale == 0 {
		ni.Scale = r.NEWS2.SpO2Scale
	}
	if ni.OnOxygen == nil {
		if flow := get("inhaled-oxygen-flow"); flow != nil {
			on := flow.Value > 0
			ni.OnOxygen = &on
		}
	}
	res := ComputeNEWS2(ni)
	if res.Known < r.NEWS2.MinParameters {
		return
	}
	if bandRank[res.Band] < bandRank[r.NEWS2.MinBand] {
		e.clear(ConditionNEWS2, "resolved", res.Summary())
		return
	}
	t := trigger{
		condition: ConditionNEWS2,
		code:      "news2-" + res.Band,
		severity:  bandSeverity[res.Band],
		rank:      bandRank[res.Band],
		status:    status,
		detail:    res.Summary(),
	}
	seen := map[string]bool{}
	for _, it := range res.Items {
		if it.Param == nil {
			continue
		}
		if !seen[it.Param.Ref] {
			seen[it.Param.Ref] = true
			t.implicated = append(t.implicated, it.Param.Ref)
		}
		t.evidence = append(t.evidence, evidence(*it.Param))
	}
	e.raise(t)
}

func evidence(p Param) map[string]any {
	ev := map[string]any{"detail": []any{map[string]any{"reference": p.Ref}}}
	if p.Coding != nil {
		c := map[string]any{}
		for _, k := range []string{"system", "code", "display"} {
			if v, ok := p.Coding[k]; ok {
				c[k] = v
			}
		}
		ev["code"] = []any{map[string]any{"coding": []any{c}, "text": paramDisplay[p.Name]}}
	}
	return ev
}

type evaluation struct {
	rules   *Rules
	now     time.Time
	patient string
	device  string
	open    map[string][]OpenAlert
	actions []Action
}

func openRank(a OpenAlert) int {
	if a.Condition == ConditionNEWS2 {
		return bandRank[strings.TrimPrefix(a.Code, "news2-")]
	}
	return severityRank[a.Severity]
}

// raise creates, updates or escalates the alert of a condition that holds.
func (e *evaluation) raise(t trigger) {
	opens := e.open[t.condition]
	if len(opens) == 0 {
		e.create(t)
		return
	}
	top := opens[0]
	for _, a := range opens[1:] {
		if openRank(a) > openRank(top) {
			top = a
		}
	}
	if t.rank > openRank(top) {
		e.create(t)
		for _, a := range opens {
			e.resolve(a, "escalated", "Superseded by a higher-severity alert: "+t.detail)
		}
		return
	}
	e.update(top, t)
}

// clear resolves the open alerts of a condition that no longer holds.
func (e *evaluation) clear(cond, code, text string) {
	if !e.rules.AutoResolve {
		return
	}
	for _, a := range e.open[cond] {
		e.resolve(a, code, text)
	}
}

func (e *evaluation) create(t trigger) {
	sum := sha256.Sum256([]byte(e.patient + "\x00" + t.condition + "\x00" + t.code + "\x00" + e.now.UTC().Format(time.RFC3339Nano)))
	di := map[string]any{
		"resourceType": "DetectedIssue",
		"identifier": []any{
			map[string]any{"system": AlertIdentifierSystem, "value": hex.EncodeToString(sum[:16])},
			map[string]any{"system": ConditionIdentifierSystem, "value": t.condition},
		},
		"status":             t.status,
		"code":               alertCode(t.code),
		"severity":           t.severity,
		"patient":            map[string]any{"reference": e.patient},
		"identifiedDateTime": e.now.UTC().Format(time.RFC3339),
		"detail":             t.detail,
	}
	if e.device != "" {
		di["author"] = map[string]any{"reference": e.device}
	}
	setImplicated(di, nil, t.implicated, e.rules.MaxImplicated)
	if len(t.evidence) > 0 {
		di["evidence"] = t.evidence
	}
	e.actions = append(e.actions, Action{Kind: ActionCreate, Condition: t.condition, Code: t.code, Severity: t.severity, Resource: di})
}

func (e *evaluation) base(a OpenAlert) map[string]any {
	if a.Resource != nil {
		return deepCopy(a.Resource).(map[string]any)
	}
	di := map[string]any{
		"resourceType": "DetectedIssue",
		"identifier": []any{
			map[string]any{"system": ConditionIdentifierSystem, "value": a.Condition},
		},
		"status":             "final",
		"code":               alertCode(a.Code),
		"patient":            map[string]any{"reference": e.patient},
		"identifiedDateTime": e.now.UTC().Format(time.RFC3339),
	}
	if a.Severity != "" {
		di["severity"] = a.Severity
	}
	if e.device != "" {
		di["author"] = map[string]any{"reference": e.device}
	}
	return di
}

func (e *evaluation) update(a OpenAlert, t trigger) {
	di := e.base(a)
	if a.ID != "" {
		di["id"] = a.ID
	}
	var old []string
	for _, ref := range asSlice(di["implicated"]) {
		if rm, ok := ref.(map[string]any); ok {
			if s, _ := rm["reference"].(string); s != "" {
				old = append(old, s)
			}
		}
	}
	setImplicated(di, old, t.implicated, e.rules.MaxImplicated)
	if len(t.evidence) > 0 {
		di["evidence"] = t.evidence
	}
	di["detail"] = t.detail
	if t.status == "final" {
		di["status"] = "final"
	}
	e.actions = append(e.actions, Action{Kind: ActionUpdate, AlertID: a.ID, Condition: a.Condition, Code: a.Code, Severity: a.Severity, Resource: di})
}

var mitigationDisplay = map[string]string{
	"resolved":  "Condition resolved",
	"escalated": "Superseded by a higher-severity alert",
}

func (e *evaluation) resolve(a OpenAlert, code, text string) {
	di := e.base(a)
	if a.ID != "" {
		di["id"] = a.ID
	}
	mit := asSlice(di["mitigation"])
	mit = append(mit, map[string]any{
		"action": map[string]any{
			"coding": []any{map[string]any{"system": MitigationSystem, "code": code, "display": mitigationDisplay[code]}},
			"text":   text,
		},
		"date": e.now.UTC().Format(time.RFC3339),
	})
	di["mitigation"] = mit
	e.actions = append(e.actions, Action{Kind: ActionResolve, AlertID: a.ID, Condition: a.Condition, Code: a.Code, Severity: a.Severity, Resource: di})
}

// setImplicated merges references, dropping duplicates; past max it keeps
// the first (the observation that raised the alert) and the latest ones.
func setImplicated(di map[string]any, old, add []string, max int) {
	seen := map[string]bool{}
	var refs []string
	for _, r := range append(append([]string(nil), old...), add...) {
		if r != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	if max >= 2 && len(refs) > max {
		refs = append(refs[:1], refs[len(refs)-(max-1):]...)
	}
	if len(refs) == 0 {
		return
	}
	out := make([]any, len(refs))
	for i, r := range refs {
		out[i] = map[string]any{"reference": r}
	}
	di["implicated"] = out
}

func alertCode(code string) map[string]any {
	return map[string]any{
		"coding": []any{map[string]any{"system": CodeSystem, "code": code, "display": codeDisplay[code]}},
		"text":   codeDisplay[code],
	}
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

func fmtFloat(v float64) string { return fmt.Sprintf("%g", v) }
