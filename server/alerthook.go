package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

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
	recentRes, err := tx.Search(ctx, fhirstore.SearchRequest{Type: "Observation", Params: url.Values{
		"subject":  {patient},
		"date":     {"ge" + fhirstore.FormatInstant(now.Add(-h.rules.Window))},
		"_sort":    {"-date"},
		"_count":   {fmt.Sprint(maxRecent)},
		"category": {"vital-signs"},
	}})
	if err != nil {
		return fmt.Errorf("alerts: recent vitals: %w", err)
	}
	// The latest Observation per code (the search is newest first).
	seen := map[string]bool{}
	var recent []map[string]any
	for _, m := range recentRes.Matches {
		if m.ID == r.ID {
			continue
		}
		var o map[string]any
		if json.Unmarshal(m.Body, &o) != nil {
			continue
		}
		key := firstCode(o)
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		recent = append(recent, o)
	}
	openRes, err := tx.Search(ctx, fhirstore.SearchRequest{Type: "DetectedIssue", Params: url.Values{
		"patient": {patient},
		"_count":  {"100"},
	}})
	if err != nil {
		return fmt.Errorf("alerts: open alerts: %w", err)
	}
	var open []alerts.OpenAlert
	for _, m := range openRes.Matches {
		var d map[string]any
		if json.Unmarshal(m.Body, &d) != nil {
			continue
		}
		if a, ok := alerts.OpenAlertFromResource(d); ok {
			open = append(open, a)
		}
	}
	acts, err := h.rules.Evaluate(alerts.Input{Observation: obs, Recent: recent, Open: open, Now: now})
	if err != nil {
		// A reading the rules cannot judge (no value, unknown code) raises nothing; it is
		// stored all the same.
		h.log.Debug("alert rules skipped an observation", "err", err)
		return nil
	}
	for _, a := range acts {
		switch a.Kind {
		case alerts.ActionCreate:
			if _, err := tx.Create(ctx, "DetectedIssue", a.Resource); err != nil {
				return fmt.Errorf("alerts: create DetectedIssue: %w", err)
			}
		default:
			res := a.Resource
			if _, _, err := tx.Update(ctx, "DetectedIssue", a.AlertID, "PUT", func(*fhirstore.Resource) (map[string]any, error) {
				return res, nil
			}); err != nil {
				return fmt.Errorf("alerts: update DetectedIssue/%s: %w", a.AlertID, err)
			}
		}
	}
	return nil
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
