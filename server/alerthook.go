package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil/fhirstore"
	"github.com/vigil-health/vigil/mappers/alerts"
)

// AlertHook runs the alert rules on every Observation write, whatever its door (REST,
// transaction, ingest, HL7 v2), inside the write transaction: a breach creates or updates
// a DetectedIssue that commits with the Observation, or neither commits.
type AlertHook struct {
	rules alerts.Rules
	log   *slog.Logger
}

// NewAlertHook builds the hook for rules (alerts.DefaultRules() for the defaults).
func NewAlertHook(rules alerts.Rules, log *slog.Logger) *AlertHook {
	if log == nil {
		log = slog.Default()
	}
	return &AlertHook{rules: rules, log: log}
}

// maxRecent bounds how many recent Observations of a patient one evaluation reads.
const maxRecent = 200

// alertStateKey is the Tx.Memo key of the hook's per-transaction state.
type alertStateKey struct{}

// patientAlerts is what the hook knows of one patient within a transaction: the latest
// Observation per code and the open alerts. It is read from the store once per patient and
// transaction and then kept current as the transaction writes, so a batch of readings (an
// ingest batch, an ORU with several OBX) costs two queries, not two per reading.
type patientAlerts struct {
	recent map[string]map[string]any // code -> latest Observation
	open   []alerts.OpenAlert
}

// AfterWrite implements fhirstore.Hook.
func (h *AlertHook) AfterWrite(ctx context.Context, tx *fhirstore.Tx, c fhirstore.Change) error {
	r := c.Resource
	if r.Type != "Observation" || r.Deleted {
		return nil
	}
	var obs map[string]any
	if err := json.Unmarshal(r.Body, &obs); err != nil {
		return fmt.Errorf("alerts: decode Observation/%s: %w", r.ID, err)
	}
	subject, _ := obs["subject"].(map[string]any)
	patient, _ := subject["reference"].(string)
	if !strings.HasPrefix(patient, "Patient/") {
		return nil // alerts are about patients
	}
	now := tx.Now()
	states := tx.Memo(alertStateKey{}, func() any { return map[string]*patientAlerts{} }).(map[string]*patientAlerts)
	st := states[patient]
	if st == nil {
		var err error
		if st, err = h.load(ctx, tx, patient, r.ID, now); err != nil {
			return err
		}
		states[patient] = st
	}
	recent := make([]map[string]any, 0, len(st.recent))
	for _, o := range st.recent {
		if id, _ := o["id"].(string); id != r.ID {
			recent = append(recent, o)
		}
	}
	acts, err := h.rules.Evaluate(alerts.Input{Observation: obs, Recent: recent, Open: st.open, Now: now})
	// The new Observation is now the patient's latest of its code (if it is not older).
	if key := firstCode(obs); key != "" {
		if prev, ok := st.recent[key]; !ok || !effective(obs).Before(effective(prev)) {
			st.recent[key] = obs
		}
	}
	if err != nil {
		// A reading the rules cannot judge (no value, unknown code) raises nothing; it is
		// stored all the same.
		h.log.Debug("alert rules skipped an observation", "err", err)
		return nil
	}
	for _, a := range acts {
		var stored *fhirstore.Resource
		switch a.Kind {
		case alerts.ActionCreate:
			if stored, err = tx.Create(ctx, "DetectedIssue", a.Resource); err != nil {
				return fmt.Errorf("alerts: create DetectedIssue: %w", err)
			}
		default:
			res := a.Resource
			if stored, _, err = tx.Update(ctx, "DetectedIssue", a.AlertID, "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return res, nil
			}); err != nil {
				return fmt.Errorf("alerts: update DetectedIssue/%s: %w", a.AlertID, err)
			}
		}
		st.track(stored)
	}
	return nil
}

// load reads the patient's latest vitals within the window and open alerts.
func (h *AlertHook) load(ctx context.Context, tx *fhirstore.Tx, patient, skipID string, now time.Time) (*patientAlerts, error) {
	st := &patientAlerts{recent: map[string]map[string]any{}}
	recentRes, err := tx.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: url.Values{
		"subject":  {patient},
		"date":     {"ge" + fhirstore.FormatInstant(now.Add(-h.rules.Window))},
		"_sort":    {"-date"},
		"_count":   {fmt.Sprint(maxRecent)},
		"category": {"vital-signs"},
	}})
	if err != nil {
		return nil, fmt.Errorf("alerts: recent vitals: %w", err)
	}
	// The latest Observation per code (the search is newest first).
	for _, m := range recentRes.Matches {
		if m.ID == skipID {
			continue
		}
		var o map[string]any
		if json.Unmarshal(m.Body, &o) != nil {
			continue
		}
		if key := firstCode(o); key != "" && st.recent[key] == nil {
			st.recent[key] = o
		}
	}
	openRes, err := tx.Search(ctx, fhirstore.SearchRequest{Type: "DetectedIssue", Params: url.Values{
		"patient": {patient},
		"_count":  {"100"},
	}})
	if err != nil {
		return nil, fmt.Errorf("alerts: open alerts: %w", err)
	}
	for _, m := range openRes.Matches {
		var d map[string]any
		if json.Unmarshal(m.Body, &d) != nil {
			continue
		}
		if a, ok := alerts.OpenAlertFromResource(d); ok {
			st.open = append(st.open, a)
		}
	}
	return st, nil
}

// track brings the open-alert list up to date with a DetectedIssue just written.
func (st *patientAlerts) track(r *fhirstore.Resource) {
	var d map[string]any
	if json.Unmarshal(r.Body, &d) != nil {
		return
	}
	st.open = slices.DeleteFunc(st.open, func(a alerts.OpenAlert) bool { return a.ID == r.ID })
	if a, ok := alerts.OpenAlertFromResource(d); ok {
		st.open = append(st.open, a)
	}
}

// effective is an Observation's effective time (dateTime, instant or period start); the
// zero time when it has none or only a partial date.
func effective(o map[string]any) time.Time {
	v, _ := o["effectiveDateTime"].(string)
	if v == "" {
		v, _ = o["effectiveInstant"].(string)
	}
	if p, ok := o["effectivePeriod"].(map[string]any); ok && v == "" {
		v, _ = p["start"].(string)
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// firstCode is the "system|code" of an Observation's first coding.
func firstCode(o map[string]any) string {
	code, _ := o["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	if len(codings) == 0 {
		return ""
	}
	c, _ := codings[0].(map[string]any)
	sys, _ := c["system"].(string)
	v, _ := c["code"].(string)
	return sys + "|" + v
}
